//! An account kept by a node: who a person is (login, display name), what they may do (roles),
//! how they prove it (a password hash), and since when their sessions count. The on-disk type is
//! versioned ([`ACCOUNT_FORMAT_VERSION`], written by the store before the JSON).

use chrono::{DateTime, Utc};
use fengqiao_case::input_bounds;
use serde::{Deserialize, Serialize};

use crate::roles::{self, Action, RoleError, RoleSet};

/// The layout of [`Account`], [`crate::secret::Session`] and [`crate::secret::Token`] on disk;
/// changing one bumps it.
pub const ACCOUNT_FORMAT_VERSION: u8 = 1;

/// Logins are short ASCII names people type at a sign-in form: `lizt`, `wang.fang`, `admin`.
pub const MAX_LOGIN_CHARS: usize = 32;

/// So that `display name (login)` stays within the operator bound events carry.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Why an account's fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error(
        "invalid login {0:?}: 1 to {MAX_LOGIN_CHARS} of a-z, 0-9, '.', '_' or '-', starting with a \
         letter or digit"
    )]
    InvalidLogin(String),
    #[error("invalid display name: {0}")]
    InvalidDisplayName(String),
    #[error("an account needs at least one role (operator, supervisor, admin)")]
    NoRole,
}

/// One person's account, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub login: String,
    /// The name recorded in events, e.g. 李调解.
    pub display_name: String,
    pub roles: RoleSet,
    /// argon2id in PHC form (`$argon2id$v=19$m=…`), with this account's own salt.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Failed sign-ins since the last successful one.
    pub failed_sign_ins: u32,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Sessions begun before this instant no longer count: set when the password is reset or
    /// the account disabled.
    pub sessions_valid_from: DateTime<Utc>,
}

impl Account {
    /// A new account, its fields checked.
    pub fn new(
        login: &str,
        display_name: &str,
        roles: RoleSet,
        password_hash: String,
        now: DateTime<Utc>,
    ) -> Result<Account, AccountError> {
        check_login(login)?;
        check_display_name(display_name)?;
        if roles.is_empty() {
            return Err(AccountError::NoRole);
        }
        Ok(Account {
            login: login.to_owned(),
            display_name: display_name.trim().to_owned(),
            roles,
            password_hash,
            created_at: now,
            disabled_at: None,
            failed_sign_ins: 0,
            last_sign_in_at: None,
            sessions_valid_from: now,
        })
    }

    /// The operator recorded in the events this account makes: display name and login.
    pub fn operator_label(&self) -> String {
        operator_label(&self.display_name, &self.login)
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// Disable the account; its sessions end at once.
    pub fn disable(&mut self, now: DateTime<Utc>) {
        self.disabled_at.get_or_insert(now);
        self.sessions_valid_from = now;
    }

    /// A new password; its sessions end at once.
    pub fn reset_password(&mut self, password_hash: String, now: DateTime<Utc>) {
        self.password_hash = password_hash;
        self.failed_sign_ins = 0;
        self.sessions_valid_from = now;
    }

    pub fn set_roles(&mut self, roles: RoleSet) -> Result<(), AccountError> {
        if roles.is_empty() {
            return Err(AccountError::NoRole);
        }
        self.roles = roles;
        Ok(())
    }

    pub fn actor(&self) -> Actor {
        Actor {
            operator: self.operator_label(),
            roles: self.roles,
        }
    }

    pub fn view(&self) -> AccountView {
        AccountView {
            login: self.login.clone(),
            display_name: self.display_name.clone(),
            roles: self.roles,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
            failed_sign_ins: self.failed_sign_ins,
            last_sign_in_at: self.last_sign_in_at,
        }
    }
}

/// An account as the API lists it: everything but the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountView {
    pub login: String,
    pub display_name: String,
    pub roles: RoleSet,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub failed_sign_ins: u32,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// Who makes a change: the operator label recorded in its events and the roles it is judged by.
/// Built by the server from the authenticated account (or, for the node's own escalation rules,
/// from the rule), never from anything the caller names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub roles: RoleSet,
}

impl Actor {
    /// Whether this actor may take `action` (the role table).
    pub fn permit(&self, action: Action) -> Result<(), RoleError> {
        roles::permit(&self.operator, self.roles, action)
    }
}

/// `李调解 (lizt)`.
pub fn operator_label(display_name: &str, login: &str) -> String {
    format!("{display_name} ({login})")
}

pub fn check_login(login: &str) -> Result<(), AccountError> {
    let well_formed = !login.is_empty()
        && login.chars().count() <= MAX_LOGIN_CHARS
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && login
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(AccountError::InvalidLogin(login.to_owned()))
    }
}

/// The display name goes into events as part of the operator: the operator rule (text, length,
/// the names reserved for escalation rules) applies to it, within a shorter bound.
pub fn check_display_name(display_name: &str) -> Result<(), AccountError> {
    let name = display_name.trim();
    if name.is_empty() {
        return Err(AccountError::InvalidDisplayName("it is empty".to_owned()));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(AccountError::InvalidDisplayName(format!(
            "at most {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    input_bounds::check_operator("display_name", name)
        .map_err(|error| AccountError::InvalidDisplayName(error.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::roles::Role;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn logins_and_display_names_are_checked() {
        assert!(check_login("lizt").is_ok());
        assert!(check_login("wang.fang-2").is_ok());
        for bad in ["", "Lizt", "李", ".x", "a b", &"a".repeat(33)] {
            assert!(check_login(bad).is_err(), "{bad:?}");
        }
        assert!(check_display_name("李调解").is_ok());
        assert!(check_display_name("rule:overdue").is_err());
        assert!(check_display_name("a\u{202e}b").is_err());
        assert!(check_display_name(&"长".repeat(65)).is_err());
        let longest = operator_label(&"长".repeat(64), &"a".repeat(32));
        assert!(input_bounds::check_operator("operator", &longest).is_ok());
    }

    #[test]
    fn reset_and_disable_end_earlier_sessions() {
        let roles = RoleSet::of(&[Role::Operator]);
        let mut account = Account::new("lizt", "李调解", roles, "h".into(), at(0)).unwrap();
        assert_eq!(account.operator_label(), "李调解 (lizt)");
        assert_eq!(account.sessions_valid_from, at(0));
        account.failed_sign_ins = 3;
        account.reset_password("h2".into(), at(10));
        assert_eq!(
            (account.sessions_valid_from, account.failed_sign_ins),
            (at(10), 0)
        );
        account.disable(at(20));
        account.disable(at(30));
        assert_eq!(account.disabled_at, Some(at(20)));
        assert_eq!(account.sessions_valid_from, at(30));
        assert_eq!(
            Account::new("x", "X", RoleSet::EMPTY, "h".into(), at(0)),
            Err(AccountError::NoRole)
        );
    }
}
