//! The node's accounts, sessions and tokens, each in its own sled tree, apart from the cases.
//! Values are `[ACCOUNT_FORMAT_VERSION] ++ JSON` of the `fengqiao_accounts` types; sessions and
//! tokens are keyed by the hash of their secret, never the secret. Account writes are flushed;
//! a session's last-seen time is bookkeeping (losing the latest in a crash only shortens or
//! lengthens an idle session by that much) and is written without a flush. Every write goes
//! through the free-space guard like the case writes.

use fengqiao_accounts::Account;
use fengqiao_accounts::account::ACCOUNT_FORMAT_VERSION;
use fengqiao_accounts::secret::{Session, Token};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{corrupt, decode_versioned, encode_versioned};
use crate::{Store, StoreError};

/// The trees: `accounts` (login → account), `sessions` (secret hash → session), `tokens`
/// (secret hash → token).
#[derive(Debug)]
pub(crate) struct AccountTrees {
    accounts: sled::Tree,
    sessions: sled::Tree,
    tokens: sled::Tree,
}

impl AccountTrees {
    pub(crate) fn open(database: &sled::Db) -> Result<AccountTrees, StoreError> {
        Ok(AccountTrees {
            accounts: database.open_tree("accounts")?,
            sessions: database.open_tree("sessions")?,
            tokens: database.open_tree("tokens")?,
        })
    }
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(value).map_err(|error| corrupt(what, error.to_string()))?;
    Ok(encode_versioned(ACCOUNT_FORMAT_VERSION, &json))
}

fn decode<T: DeserializeOwned>(what: &str, record: &[u8]) -> Result<T, StoreError> {
    let payload = decode_versioned(what, ACCOUNT_FORMAT_VERSION, record)?;
    serde_json::from_slice(payload).map_err(|error| corrupt(what, error.to_string()))
}

impl Store {
    fn account_trees(&self) -> &AccountTrees {
        &self.account_trees
    }

    pub fn account(&self, login: &str) -> Result<Option<Account>, StoreError> {
        self.account_trees()
            .accounts
            .get(login.as_bytes())?
            .map(|record| decode(&format!("account {login}"), &record))
            .transpose()
    }

    /// Every account, by login.
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.account_trees()
            .accounts
            .iter()
            .map(|entry| {
                let (key, record) = entry?;
                decode(
                    &format!("account {}", String::from_utf8_lossy(&key)),
                    &record,
                )
            })
            .collect()
    }

    pub fn account_count(&self) -> usize {
        self.account_trees().accounts.len()
    }

    /// Store a new account; `AccountExists` (nothing written) if the login is taken.
    pub fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        self.check_free_space()?;
        let record = encode(&format!("account {}", account.login), account)?;
        let swapped = self.account_trees().accounts.compare_and_swap(
            account.login.as_bytes(),
            None as Option<&[u8]>,
            Some(record),
        )?;
        if swapped.is_err() {
            return Err(StoreError::AccountExists(account.login.clone()));
        }
        self.flush()
    }

    /// Replace a stored account (its login names it), durably.
    pub fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        self.put_account_unflushed(account)?;
        self.flush()
    }

    /// Replace a stored account without a disk sync: for its failed sign-in counter, which a
    /// sign-in must not wait on (an unknown login writes nothing, and a flush would show which
    /// logins exist by the answer's time).
    pub fn put_account_unflushed(&self, account: &Account) -> Result<(), StoreError> {
        self.check_free_space()?;
        let record = encode(&format!("account {}", account.login), account)?;
        self.account_trees()
            .accounts
            .insert(account.login.as_bytes(), record)?;
        Ok(())
    }

    pub fn session(&self, secret_hash: &str) -> Result<Option<Session>, StoreError> {
        self.account_trees()
            .sessions
            .get(secret_hash.as_bytes())?
            .map(|record| decode("session", &record))
            .transpose()
    }

    /// Store a session, durably (a new one), or without a sync (`durable: false`: its last-seen
    /// time moving on).
    pub fn put_session(
        &self,
        secret_hash: &str,
        session: &Session,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.check_free_space()?;
        let record = encode("session", session)?;
        self.account_trees()
            .sessions
            .insert(secret_hash.as_bytes(), record)?;
        if durable { self.flush() } else { Ok(()) }
    }

    pub fn delete_session(&self, secret_hash: &str) -> Result<(), StoreError> {
        self.account_trees()
            .sessions
            .remove(secret_hash.as_bytes())?;
        self.flush()
    }

    /// Forget every session `is_over` says has ended (sign-outs remove their own; this clears
    /// the ones that expired). Returns how many went.
    pub fn prune_sessions(
        &self,
        mut is_over: impl FnMut(&Session) -> bool,
    ) -> Result<usize, StoreError> {
        let mut ended = Vec::new();
        for entry in self.account_trees().sessions.iter() {
            let (key, record) = entry?;
            match decode::<Session>("session", &record) {
                Ok(session) if !is_over(&session) => {}
                _ => ended.push(key),
            }
        }
        for key in &ended {
            self.account_trees().sessions.remove(key)?;
        }
        Ok(ended.len())
    }

    pub fn token(&self, secret_hash: &str) -> Result<Option<Token>, StoreError> {
        self.account_trees()
            .tokens
            .get(secret_hash.as_bytes())?
            .map(|record| decode("token", &record))
            .transpose()
    }

    /// Every token with the hash it is kept under, oldest first.
    pub fn tokens(&self) -> Result<Vec<(String, Token)>, StoreError> {
        let mut tokens = self
            .account_trees()
            .tokens
            .iter()
            .map(|entry| {
                let (key, record) = entry?;
                let token: Token = decode("token", &record)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), token))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        tokens.sort_by_key(|(_, token)| token.created_at);
        Ok(tokens)
    }

    pub fn put_token(&self, secret_hash: &str, token: &Token) -> Result<(), StoreError> {
        self.check_free_space()?;
        let record = encode("token", token)?;
        self.account_trees()
            .tokens
            .insert(secret_hash.as_bytes(), record)?;
        self.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{DateTime, Utc};
    use fengqiao_accounts::{Role, RoleSet};

    use super::*;
    use crate::StoreOptions;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + seconds, 0).unwrap()
    }

    fn open(dir: &std::path::Path) -> Store {
        let options = StoreOptions {
            min_free_bytes: 0,
            ..StoreOptions::new(16, vec![1; 16])
        };
        Store::open(&dir.join("store"), options).unwrap()
    }

    #[test]
    fn accounts_sessions_and_tokens_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let roles = RoleSet::of(&[Role::Operator]);
        let account = Account::new("lizt", "李调解", roles, "$argon2id$x".into(), at(0)).unwrap();
        {
            let store = open(dir.path());
            store.create_account(&account).unwrap();
            assert!(matches!(
                store.create_account(&account),
                Err(StoreError::AccountExists(login)) if login == "lizt"
            ));
            store
                .put_session("s1", &Session::new("lizt", "c".into(), at(1)), true)
                .unwrap();
            store
                .put_token("t1", &Token::new("t1abc", "ledger-sync", "lizt", at(2)))
                .unwrap();
        }
        let store = open(dir.path());
        assert_eq!(store.account("lizt").unwrap(), Some(account.clone()));
        assert_eq!(store.accounts().unwrap(), vec![account]);
        assert_eq!(store.account("nobody").unwrap(), None);
        assert_eq!(store.session("s1").unwrap().unwrap().login, "lizt");
        assert_eq!(store.tokens().unwrap()[0].1.name, "ledger-sync");
        assert_eq!(store.prune_sessions(|_| true).unwrap(), 1);
        assert_eq!(store.session("s1").unwrap(), None);
    }

    #[test]
    fn a_record_of_another_version_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store
            .account_trees()
            .accounts
            .insert("lizt", &b"\x09{}"[..])
            .unwrap();
        assert!(matches!(
            store.account("lizt"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
