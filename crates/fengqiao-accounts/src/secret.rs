//! Sessions, bearer tokens and the node's CLI token: random secrets the caller draws (32 bytes),
//! handed out once and kept only as SHA-256 hashes, so a copy of the store signs nobody in. The
//! secrets are long and random, so a fast hash is enough (unlike passwords). Also the CSRF rule:
//! a browser's state-changing request carries its session's CSRF token in a header, which another
//! site's page cannot set.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::account::Account;

/// Random bytes in every secret.
pub const SECRET_BYTES: usize = 32;

/// How long a session lasts without a request, unless the node's config says otherwise.
pub const DEFAULT_SESSION_IDLE: TimeDelta = TimeDelta::hours(8);

/// The header a browser sends its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fengqiao_session";

/// The value of the cookie `name` in a request's `Cookie` header lines (`a=1; b=2`), the one
/// reading the API's session check and the console's pages share; an empty value is none.
pub fn cookie_value<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<String> {
    cookie_headers
        .into_iter()
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            let (key, value) = cookie.trim().split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// What a secret is for; its text says so, so one kind cannot be used as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Session,
    Csrf,
    Token,
    /// The node's own CLI token, in the node directory.
    Cli,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::Session => "fqs_",
            SecretKind::Csrf => "fqx_",
            SecretKind::Token => "fqt_",
            SecretKind::Cli => "fqc_",
        }
    }
}

/// The secret's text, as handed out: a prefix naming its kind, then its bytes in hex.
pub fn encode_secret(kind: SecretKind, random: &[u8; SECRET_BYTES]) -> String {
    format!("{}{}", kind.prefix(), hex::encode(random))
}

/// Whether `secret` looks like a secret of `kind` (before looking it up).
pub fn is_secret_of(kind: SecretKind, secret: &str) -> bool {
    secret.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 2 * SECRET_BYTES && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// What the store keeps of a secret: SHA-256 of its text, in hex.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compare two secret hashes in constant time.
pub fn hashes_match(first: &str, second: &str) -> bool {
    first.as_bytes().ct_eq(second.as_bytes()).into()
}

/// A signed-in browser session, kept under the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub login: String,
    /// Hash of the CSRF token handed out with the session.
    pub csrf_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Why a session no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionEnded {
    #[error("the session expired after a time without use: sign in again")]
    Idle,
    #[error(
        "the session ended when the account's password was reset or it was disabled: sign in again"
    )]
    Revoked,
    #[error("the account is disabled")]
    Disabled,
}

impl Session {
    pub fn new(login: &str, csrf_hash: String, now: DateTime<Utc>) -> Session {
        Session {
            login: login.to_owned(),
            csrf_hash,
            created_at: now,
            last_seen_at: now,
        }
    }

    /// Whether the session still counts at `now` for `account`, given the idle limit.
    pub fn check_live(
        &self,
        account: &Account,
        now: DateTime<Utc>,
        idle_limit: TimeDelta,
    ) -> Result<(), SessionEnded> {
        if account.is_disabled() {
            return Err(SessionEnded::Disabled);
        }
        if self.created_at < account.sessions_valid_from {
            return Err(SessionEnded::Revoked);
        }
        if now - self.last_seen_at > idle_limit {
            return Err(SessionEnded::Idle);
        }
        Ok(())
    }
}

/// Why a browser's state-changing request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRefusal {
    #[error(
        "missing CSRF token: a change made with a session cookie carries the session's CSRF token in the {CSRF_HEADER} header"
    )]
    Missing,
    #[error("wrong CSRF token: it is not the one handed out with this session")]
    Wrong,
}

/// The CSRF rule: a request that changes state and is authenticated by a session cookie must
/// carry the session's CSRF token. Reads, and requests with a bearer token (which a browser
/// never attaches by itself), need none.
pub fn check_csrf(
    session: &Session,
    changes_state: bool,
    presented: Option<&str>,
) -> Result<(), CsrfRefusal> {
    if !changes_state {
        return Ok(());
    }
    let presented = presented.ok_or(CsrfRefusal::Missing)?;
    if hashes_match(&secret_hash(presented), &session.csrf_hash) {
        Ok(())
    } else {
        Err(CsrfRefusal::Wrong)
    }
}

/// A bearer token for scripts, kept under the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// The first 12 hex digits of the secret's hash: how people list and revoke it.
    pub id: String,
    /// What it is for, e.g. `ledger-sync`.
    pub name: String,
    /// The account it acts as.
    pub login: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Token {
    pub fn new(secret_hash: &str, name: &str, login: &str, now: DateTime<Utc>) -> Token {
        Token {
            id: secret_hash.chars().take(12).collect(),
            name: name.to_owned(),
            login: login.to_owned(),
            created_at: now,
            revoked_at: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::roles::{Role, RoleSet};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_770_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn secrets_name_their_kind_and_are_kept_as_hashes() {
        let secret = encode_secret(SecretKind::Token, &[9; SECRET_BYTES]);
        assert!(is_secret_of(SecretKind::Token, &secret));
        assert!(!is_secret_of(SecretKind::Session, &secret));
        assert!(!is_secret_of(SecretKind::Token, "fqt_zz"));
        let hash = secret_hash(&secret);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&secret[4..]));
        assert!(hashes_match(&hash, &secret_hash(&secret)));
        assert!(!hashes_match(&hash, &secret_hash("fqt_other")));
        assert_eq!(
            Token::new(&hash, "ledger-sync", "lizt", at(0)).id,
            hash[..12]
        );
    }

    #[test]
    fn sessions_end_when_idle_reset_or_disabled() {
        let roles = RoleSet::of(&[Role::Operator]);
        let mut account = Account::new("lizt", "李调解", roles, "h".into(), at(0)).unwrap();
        let mut session = Session::new("lizt", "c".into(), at(100));
        let idle = TimeDelta::seconds(60);
        assert_eq!(session.check_live(&account, at(160), idle), Ok(()));
        assert_eq!(
            session.check_live(&account, at(161), idle),
            Err(SessionEnded::Idle)
        );
        session.last_seen_at = at(150);
        assert_eq!(session.check_live(&account, at(161), idle), Ok(()));
        account.reset_password("h2".into(), at(155));
        assert_eq!(
            session.check_live(&account, at(161), idle),
            Err(SessionEnded::Revoked)
        );
        let later = Session::new("lizt", "c".into(), at(156));
        assert_eq!(later.check_live(&account, at(161), idle), Ok(()));
        account.disable(at(170));
        assert_eq!(
            later.check_live(&account, at(171), idle),
            Err(SessionEnded::Disabled)
        );
    }

    #[test]
    fn a_change_by_cookie_needs_the_sessions_csrf_token() {
        let csrf = encode_secret(SecretKind::Csrf, &[3; SECRET_BYTES]);
        let session = Session::new("lizt", secret_hash(&csrf), at(0));
        assert_eq!(check_csrf(&session, false, None), Ok(()));
        assert_eq!(check_csrf(&session, true, None), Err(CsrfRefusal::Missing));
        assert_eq!(
            check_csrf(&session, true, Some("fqx_00")),
            Err(CsrfRefusal::Wrong)
        );
        assert_eq!(check_csrf(&session, true, Some(&csrf)), Ok(()));
    }
}
