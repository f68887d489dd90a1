//! Sign-in throttling, per account and per source address: after a few failures each further
//! attempt must wait, the wait doubling up to a cap, and failures fade with time. The cap bounds
//! what a stranger can do to a colleague (make them wait at most [`ThrottleRules::max_delay`]
//! between attempts, never lock them out), and the number of keys kept is bounded, so a flood of
//! made-up logins or addresses cannot fill memory. A login nobody has is throttled like one that
//! exists, so the answers do not tell them apart.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleRules {
    /// Failures allowed before attempts must wait.
    pub free_failures: f64,
    /// The wait after the first failure beyond the free ones; it doubles with each further one.
    pub base_delay: TimeDelta,
    pub max_delay: TimeDelta,
    /// Remembered failures halve over this time.
    pub half_life: TimeDelta,
    /// At most this many keys are remembered; when full, the most faded is forgotten.
    pub max_entries: usize,
}

/// Per account: a person mistyping a few times is not slowed down; a guesser is, to one attempt
/// every 30 s at worst.
pub const ACCOUNT_RULES: ThrottleRules = ThrottleRules {
    free_failures: 5.0,
    base_delay: TimeDelta::seconds(1),
    max_delay: TimeDelta::seconds(30),
    half_life: TimeDelta::minutes(10),
    max_entries: 10_000,
};

/// Per source address: a whole office may share one address behind NAT, so more failures are
/// free; a guesser spraying many accounts from one address is slowed down all the same.
pub const ADDRESS_RULES: ThrottleRules = ThrottleRules {
    free_failures: 20.0,
    base_delay: TimeDelta::seconds(1),
    max_delay: TimeDelta::seconds(60),
    half_life: TimeDelta::minutes(10),
    max_entries: 10_000,
};

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: f64,
    updated: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

/// Failures remembered per key.
#[derive(Debug, Clone)]
pub struct Throttle<K> {
    rules: ThrottleRules,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    pub fn new(rules: ThrottleRules) -> Throttle<K> {
        Throttle {
            rules,
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn faded(&self, entry: &Entry, now: DateTime<Utc>) -> f64 {
        let elapsed = (now - entry.updated).num_milliseconds().max(0) as f64;
        let half_life = self.rules.half_life.num_milliseconds().max(1) as f64;
        entry.failures * 0.5_f64.powf(elapsed / half_life)
    }

    /// `Err(wait)` while `key` must wait before its next attempt.
    pub fn check(&self, key: &K, now: DateTime<Utc>) -> Result<(), TimeDelta> {
        match self.entries.get(key) {
            Some(entry) if entry.blocked_until > now => Err(entry.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// One more failure for `key`.
    pub fn record_failure(&mut self, key: &K, now: DateTime<Utc>) {
        let failures = self
            .entries
            .get(key)
            .map_or(0.0, |entry| self.faded(entry, now))
            + 1.0;
        let beyond = failures - self.rules.free_failures;
        let delay = if beyond > 0.0 {
            let doublings = (beyond.ceil() - 1.0).clamp(0.0, 30.0);
            let wanted = self.rules.base_delay.num_milliseconds() as f64 * 2.0_f64.powf(doublings);
            TimeDelta::milliseconds(
                wanted.min(self.rules.max_delay.num_milliseconds() as f64) as i64
            )
        } else {
            TimeDelta::zero()
        };
        if !self.entries.contains_key(key) && self.entries.len() >= self.rules.max_entries {
            self.forget_most_faded(now);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                failures,
                updated: now,
                blocked_until: now + delay,
            },
        );
    }

    /// A successful sign-in clears the key's failures.
    pub fn record_success(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn forget_most_faded(&mut self, now: DateTime<Utc>) {
        let most_faded = self
            .entries
            .iter()
            .min_by(|(_, first), (_, second)| {
                self.faded(first, now).total_cmp(&self.faded(second, now))
            })
            .map(|(key, _)| key.clone());
        if let Some(key) = most_faded {
            self.entries.remove(&key);
        }
    }
}

/// Both throttles a node keeps for its sign-ins.
#[derive(Debug, Clone)]
pub struct SignInThrottle {
    pub accounts: Throttle<String>,
    pub addresses: Throttle<String>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            accounts: Throttle::new(ACCOUNT_RULES),
            addresses: Throttle::new(ADDRESS_RULES),
        }
    }
}

impl SignInThrottle {
    /// `Err(wait)` while either the login or the address must wait; checked before the password
    /// is, so waiting cannot be skipped by guessing faster.
    pub fn check(&self, login: &str, address: &str, now: DateTime<Utc>) -> Result<(), TimeDelta> {
        let account = self.accounts.check(&login.to_owned(), now);
        let address = self.addresses.check(&address.to_owned(), now);
        match (account, address) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(first), Err(second)) => Err(first.max(second)),
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
        }
    }

    pub fn record_failure(&mut self, login: &str, address: &str, now: DateTime<Utc>) {
        self.accounts.record_failure(&login.to_owned(), now);
        self.addresses.record_failure(&address.to_owned(), now);
    }

    /// Clears the account's failures, not the address's: one good password must not buy an
    /// address more guesses at other accounts.
    pub fn record_success(&mut self, login: &str) {
        self.accounts.record_success(&login.to_owned());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_770_000_000_000 + millis).unwrap()
    }

    #[test]
    fn waits_begin_after_the_free_failures_double_and_are_capped() {
        let mut throttle = Throttle::new(ACCOUNT_RULES);
        let key = "lizt".to_owned();
        for _ in 0..5 {
            assert_eq!(throttle.check(&key, at(0)), Ok(()));
            throttle.record_failure(&key, at(0));
        }
        assert_eq!(throttle.check(&key, at(0)), Ok(()));
        throttle.record_failure(&key, at(0));
        assert_eq!(throttle.check(&key, at(0)), Err(TimeDelta::seconds(1)));
        throttle.record_failure(&key, at(0));
        assert_eq!(throttle.check(&key, at(0)), Err(TimeDelta::seconds(2)));
        for _ in 0..50 {
            throttle.record_failure(&key, at(0));
        }
        // Never a lockout: at most the cap, then an attempt is allowed.
        assert_eq!(throttle.check(&key, at(0)), Err(TimeDelta::seconds(30)));
        assert_eq!(throttle.check(&key, at(30_000)), Ok(()));
        throttle.record_success(&key);
        assert_eq!(throttle.check(&key, at(30_000)), Ok(()));
    }

    #[test]
    fn failures_fade_with_time() {
        let mut throttle = Throttle::new(ACCOUNT_RULES);
        let key = "lizt".to_owned();
        for _ in 0..6 {
            throttle.record_failure(&key, at(0));
        }
        assert!(throttle.check(&key, at(0)).is_err());
        // Two hours later the six failures weigh less than one: the next failure is free.
        throttle.record_failure(&key, at(2 * 3_600_000));
        assert_eq!(throttle.check(&key, at(2 * 3_600_000)), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_the_most_faded_key_goes_first() {
        let rules = ThrottleRules {
            max_entries: 3,
            ..ACCOUNT_RULES
        };
        let mut throttle = Throttle::new(rules);
        for _ in 0..7 {
            throttle.record_failure(&"guessed".to_owned(), at(1_000));
        }
        for key in ["a", "b", "c", "d", "e"] {
            throttle.record_failure(&key.to_owned(), at(0));
        }
        assert_eq!(throttle.len(), 3);
        assert!(throttle.check(&"guessed".to_owned(), at(1_000)).is_err());
    }

    #[test]
    fn an_address_is_throttled_across_accounts_and_a_success_clears_only_the_account() {
        let mut throttle = SignInThrottle::default();
        for index in 0..21 {
            throttle.record_failure(&format!("user{index}"), "10.0.0.9", at(0));
        }
        assert!(throttle.check("someone-else", "10.0.0.9", at(0)).is_err());
        assert_eq!(throttle.check("someone-else", "10.0.0.10", at(0)), Ok(()));
        throttle.record_success("user1");
        assert!(throttle.check("user1", "10.0.0.9", at(0)).is_err());
    }
}
