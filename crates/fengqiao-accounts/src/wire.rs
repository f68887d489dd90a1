//! The bodies of the account API (`/api/session`, `/api/users`, `/api/tokens`), shared by the
//! node and the CLI. A password or secret appears only in a request, or once in the answer that
//! creates it; none of these types is ever logged.

use serde::{Deserialize, Serialize};

use crate::account::AccountView;
use crate::roles::RoleSet;
use crate::secret::Token;

/// `POST /api/session`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub login: String,
    pub password: String,
}

/// Never printed with its password.
impl std::fmt::Debug for SignIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SignIn")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

/// The answer to a sign-in (the session itself travels in the cookie), and to
/// `GET /api/session`: who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionView {
    pub account: AccountView,
    /// The operator recorded in the events this account makes.
    pub operator: String,
    /// How the request was authenticated: `session`, `token` or `cli`.
    pub via: String,
    /// Only in the answer to a sign-in: send it in `x-csrf-token` with every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// A session ends after this many seconds without a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_expiry_seconds: Option<u64>,
}

/// `POST /api/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub login: String,
    pub display_name: String,
    pub roles: RoleSet,
    /// Without one, the node makes a one-time password and answers it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NewAccount")
            .field("login", &self.login)
            .field("display_name", &self.display_name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// `POST /api/users/{login}/password`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(length(
            min = crate::password::MIN_PASSWORD_CHARS,
            max = crate::password::MAX_PASSWORD_CHARS
        ))
    )]
    pub password: Option<String>,
}

impl std::fmt::Debug for PasswordReset {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PasswordReset")
    }
}

/// The answer to creating an account or resetting its password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AccountWithPassword {
    pub account: AccountView,
    /// The password the node made, shown this once; absent when the caller chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_password: Option<String>,
}

impl std::fmt::Debug for AccountWithPassword {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccountWithPassword")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// `POST /api/users/{login}/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RolesChange {
    pub roles: RoleSet,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The account the token acts as.
    pub login: String,
    /// What it is for, e.g. `ledger-sync`.
    pub name: String,
}

/// The answer to `POST /api/tokens`: the secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenCreated {
    pub token: Token,
    pub secret: String,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenCreated")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}
