//! Received cases prepared (whole documents of new cases loaded, checked and summarized;
//! changes merged into a copy of a held case) by a thread that runs ahead of the session, and
//! handed to the session's `apply` when it reaches their frames.
//!
//! Each case has at most one slot. A preparing thread claims the cases it will do; `apply` takes
//! a finished result, waits for one being prepared, or marks the case as its own so that no
//! preparing thread starts on it meanwhile. Nothing here is needed for correctness: a result is
//! used only for the very bytes it was prepared from, and without one `apply` does the work
//! itself.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use fengqiao_case::CaseId;

enum Slot<T> {
    /// A preparing thread is on it.
    Preparing,
    /// The session is applying it without a prepared result.
    Applying,
    Ready {
        bytes: Vec<u8>,
        prepared: T,
        /// When it was published, counted in publications: the oldest go first when full.
        published: u64,
    },
}

struct Slots<T> {
    by_case: HashMap<CaseId, Slot<T>>,
    publications: u64,
}

/// The slots, shared by the sessions of a node and their preparing threads.
pub(super) struct PreparedCases<T> {
    slots: Mutex<Slots<T>>,
    /// Signalled whenever a slot leaves `Preparing`.
    settled: Condvar,
    /// At most this many slots: bounds what frames that are never applied (a session ending)
    /// leave behind. Beyond it, cases are not prepared and `apply` does the work.
    limit: usize,
}

impl<T> PreparedCases<T> {
    pub(super) fn new(limit: usize) -> PreparedCases<T> {
        PreparedCases {
            slots: Mutex::new(Slots {
                by_case: HashMap::new(),
                publications: 0,
            }),
            settled: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claim those of `cases` that nobody has claimed and that `wanted` accepts (for changes, a
    /// held case; whole documents are claimed without asking the store). When full, results
    /// that `wanted` no longer accepts make room first, then the oldest results: left by frames
    /// that were never applied, or applied by another session. The claim's drop releases
    /// whatever it did not publish, so a preparing thread that fails or panics never leaves the
    /// session waiting.
    pub(super) fn claim(
        &self,
        cases: Vec<(CaseId, Vec<u8>)>,
        wanted: impl Fn(&str) -> bool,
    ) -> Claim<'_, T> {
        let mut guard = self.lock();
        let slots = &mut guard.by_case;
        if slots.len() + cases.len() > self.limit {
            slots.retain(|case, slot| !matches!(slot, Slot::Ready { .. }) || wanted(case));
        }
        let excess = (slots.len() + cases.len()).saturating_sub(self.limit);
        if excess > 0 {
            let mut ready: Vec<(u64, CaseId)> = slots
                .iter()
                .filter_map(|(case, slot)| match slot {
                    Slot::Ready { published, .. } => Some((*published, case.clone())),
                    _ => None,
                })
                .collect();
            ready.sort_unstable();
            for (_, case) in ready.into_iter().take(excess) {
                slots.remove(&case);
            }
        }
        let mut claimed = Vec::with_capacity(cases.len());
        for (case, bytes) in cases {
            if slots.len() >= self.limit || slots.contains_key(&case) || !wanted(&case) {
                continue;
            }
            slots.insert(case.clone(), Slot::Preparing);
            claimed.push((case, bytes));
        }
        Claim {
            prepared: self,
            claimed,
        }
    }

    /// The result prepared from exactly `bytes` for `case`, waiting if a preparing thread is on
    /// it; `None` if there is none, and then the case is marked as the caller's until the
    /// returned guard drops.
    pub(super) fn take(&self, case: &str, bytes: &[u8]) -> (Option<T>, Applying<'_, T>) {
        let mut slots = self.lock();
        while matches!(slots.by_case.get(case), Some(Slot::Preparing)) {
            slots = self
                .settled
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let prepared = match slots.by_case.insert(case.to_owned(), Slot::Applying) {
            Some(Slot::Ready {
                bytes: prepared_from,
                prepared,
                ..
            }) if prepared_from == bytes => Some(prepared),
            _ => None,
        };
        (
            prepared,
            Applying {
                prepared: self,
                case: case.to_owned(),
            },
        )
    }

    /// `look` at the result ready for `case`, if one is.
    #[cfg(test)]
    pub(super) fn look_at_ready<R>(&self, case: &str, look: impl FnOnce(&T) -> R) -> Option<R> {
        match self.lock().by_case.get(case) {
            Some(Slot::Ready { prepared, .. }) => Some(look(prepared)),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().by_case.len()
    }
}

/// Cases a preparing thread has claimed and not yet published.
pub(super) struct Claim<'a, T> {
    prepared: &'a PreparedCases<T>,
    claimed: Vec<(CaseId, Vec<u8>)>,
}

impl<T> Claim<'_, T> {
    /// The claimed cases and their bytes, in the order given.
    pub(super) fn cases(&self) -> &[(CaseId, Vec<u8>)] {
        &self.claimed
    }

    /// Hand over the results, one per claimed case in order, and wake whoever waits for them.
    pub(super) fn publish(mut self, results: Vec<T>) {
        let mut slots = self.prepared.lock();
        slots.publications += 1;
        let published = slots.publications;
        for ((case, bytes), prepared) in self.claimed.drain(..).zip(results) {
            slots.by_case.insert(
                case,
                Slot::Ready {
                    bytes,
                    prepared,
                    published,
                },
            );
        }
        drop(slots);
        self.prepared.settled.notify_all();
    }
}

impl<T> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        if self.claimed.is_empty() {
            return;
        }
        let mut slots = self.prepared.lock();
        for (case, _) in self.claimed.drain(..) {
            if matches!(slots.by_case.get(&case), Some(Slot::Preparing)) {
                slots.by_case.remove(&case);
            }
        }
        drop(slots);
        self.prepared.settled.notify_all();
    }
}

/// A case the session applies: while it lives, no preparing thread starts on the case.
pub(super) struct Applying<'a, T> {
    prepared: &'a PreparedCases<T>,
    case: CaseId,
}

impl<T> Drop for Applying<'_, T> {
    fn drop(&mut self) {
        let mut slots = self.prepared.lock();
        if matches!(slots.by_case.get(&self.case), Some(Slot::Applying)) {
            slots.by_case.remove(&self.case);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn case(number: &str) -> (CaseId, Vec<u8>) {
        (number.to_owned(), number.as_bytes().to_vec())
    }

    #[test]
    fn a_result_is_taken_once_and_only_for_its_own_bytes() {
        let prepared = PreparedCases::new(8);
        let claim = prepared.claim(vec![case("a"), case("b")], |_| true);
        assert_eq!(claim.cases().len(), 2);
        claim.publish(vec![1, 2]);

        let (taken, applying) = prepared.take("a", b"a");
        assert_eq!(taken, Some(1));
        drop(applying);
        assert_eq!(prepared.take("a", b"a").0, None);
        // Other bytes than those prepared from: no result.
        assert_eq!(prepared.take("b", b"changed").0, None);
        assert_eq!(prepared.len(), 0);
    }

    #[test]
    fn a_case_claimed_applied_or_held_is_not_claimed_again() {
        let prepared: PreparedCases<u32> = PreparedCases::new(8);
        let first = prepared.claim(vec![case("a")], |_| true);
        let second = prepared.claim(vec![case("a"), case("held")], |case| case != "held");
        assert!(second.cases().is_empty());
        drop(first);

        let (_, applying) = prepared.take("c", b"c");
        assert!(prepared.claim(vec![case("c")], |_| true).cases().is_empty());
        drop(applying);
        assert_eq!(prepared.claim(vec![case("c")], |_| true).cases().len(), 1);
    }

    #[test]
    fn an_unpublished_claim_is_released_when_dropped() {
        let prepared: PreparedCases<u32> = PreparedCases::new(8);
        drop(prepared.claim(vec![case("a")], |_| true));
        assert_eq!(prepared.len(), 0);
        assert_eq!(prepared.take("a", b"a").0, None);
    }

    #[test]
    fn no_more_than_the_limit_is_claimed_and_stale_results_make_room() {
        let prepared = PreparedCases::new(2);
        let claim = prepared.claim(vec![case("a"), case("b"), case("c")], |_| true);
        assert_eq!(claim.cases().len(), 2);
        claim.publish(vec![1, 2]);
        // "a" and "b" were applied by another session: their results make room.
        let claim = prepared.claim(vec![case("c")], |case| case == "c");
        assert_eq!(claim.cases().len(), 1);
    }

    #[test]
    fn when_full_the_oldest_results_still_wanted_make_room() {
        let prepared = PreparedCases::new(3);
        prepared.claim(vec![case("a")], |_| true).publish(vec![1]);
        prepared
            .claim(vec![case("b"), case("c")], |_| true)
            .publish(vec![2, 3]);
        // Every result is still wanted (changes to held cases): the oldest, "a", goes.
        let claim = prepared.claim(vec![case("d")], |_| true);
        assert_eq!(claim.cases().len(), 1);
        claim.publish(vec![4]);
        assert_eq!(prepared.take("a", b"a").0, None);
        assert_eq!(prepared.take("b", b"b").0, Some(2));
        assert_eq!(prepared.take("d", b"d").0, Some(4));
    }

    #[test]
    fn take_waits_for_the_preparing_thread() {
        let prepared = Arc::new(PreparedCases::new(8));
        let claim = prepared.claim(vec![case("b")], |_| true);
        // Claimed before the session looks: it finds "b" preparing, or ready if it looks late.
        let session = {
            let prepared = Arc::clone(&prepared);
            std::thread::spawn(move || prepared.take("b", b"b").0)
        };
        claim.publish(vec![7]);
        assert_eq!(session.join().expect("the session thread ends"), Some(7));
    }
}
