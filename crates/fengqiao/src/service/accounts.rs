//! The node's people: signing in (passwords, throttling, sessions), authenticating a request
//! (a session, a bearer token, or the node's CLI token acting as an account), and the admin's
//! account and token commands. The rules are `fengqiao_accounts`'; this applies them to the
//! store, with the random bytes and `now` they are handed.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use fengqiao_accounts::account::operator_label;
use fengqiao_accounts::password::{
    check_new_password, dummy_hash, generated_password, hash_password, verify_password,
};
use fengqiao_accounts::secret::{
    SECRET_BYTES, SecretKind, Session, Token, encode_secret, hashes_match, is_secret_of,
    secret_hash,
};
use fengqiao_accounts::throttle::SignInThrottle;
use fengqiao_accounts::wire::{AccountWithPassword, NewAccount, TokenCreated};
use fengqiao_accounts::{Account, AccountView, Actor, Role, RoleSet};
use fengqiao_store::Store;

use super::{Node, ServiceError, lock_ignoring_poison};

/// The login `init` gives the node's first admin.
pub const FIRST_ADMIN_LOGIN: &str = "admin";

/// What the node keeps in memory about its people: the sign-in throttle and the CLI token.
#[derive(Debug)]
pub struct AccountBook {
    throttle: Mutex<SignInThrottle>,
    /// Hash of the node directory's CLI token; `None` when the node has none (made before
    /// accounts existed: `fengqiao init` makes one, or `fengqiao cli-token DIR`).
    cli_token_hash: Option<String>,
    session_idle: TimeDelta,
}

impl AccountBook {
    pub(super) fn open(cli_token_path: &Path, session_idle_seconds: u64) -> anyhow::Result<Self> {
        let cli_token_hash = match std::fs::read_to_string(cli_token_path) {
            Ok(text) => Some(secret_hash(text.trim())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read {}", cli_token_path.display()));
            }
        };
        Ok(AccountBook {
            throttle: Mutex::new(SignInThrottle::default()),
            cli_token_hash,
            session_idle: TimeDelta::seconds(
                i64::try_from(session_idle_seconds).unwrap_or(i64::MAX / 1000),
            ),
        })
    }

    pub fn session_idle(&self) -> TimeDelta {
        self.session_idle
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session (cookie); the session as stored, for the CSRF rule.
    Session(Session),
    /// A bearer token; its id.
    Token(String),
    /// The node's CLI token, acting as the account.
    Cli,
}

impl Credential {
    pub fn name(&self) -> &'static str {
        match self {
            Credential::Session(_) => "session",
            Credential::Token(_) => "token",
            Credential::Cli => "cli",
        }
    }
}

/// The account a request acts as, and how it proved it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: Account,
    pub credential: Credential,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        self.account.actor()
    }

    pub fn operator(&self) -> String {
        self.account.operator_label()
    }
}

/// A new session's secrets, handed to the browser once.
#[derive(Clone)]
pub struct SignedIn {
    pub principal: Principal,
    pub session_secret: String,
    pub csrf_token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SignedIn")
            .field("login", &self.principal.account.login)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ServiceError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| ServiceError::Internal(format!("no randomness: {error}")))?;
    Ok(bytes)
}

fn new_secret(kind: SecretKind) -> Result<String, ServiceError> {
    Ok(encode_secret(kind, &random_bytes::<SECRET_BYTES>()?))
}

/// The hash of `password` (or of a password made here, returned) with a fresh salt.
fn password_and_hash(password: Option<&str>) -> Result<(Option<String>, String), ServiceError> {
    let (chosen, generated) = match password {
        Some(password) => {
            check_new_password(password)
                .map_err(|error| ServiceError::InvalidInput(error.to_string()))?;
            (password.to_owned(), None)
        }
        None => {
            let made = generated_password(&random_bytes::<16>()?);
            (made.clone(), Some(made))
        }
    };
    let hash = hash_password(&chosen, &random_bytes::<16>()?)
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
    Ok((generated, hash))
}

fn invalid(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidInput(error.to_string())
}

/// The first admin of a new node, with a one-time password (returned, to be printed once).
pub fn create_first_admin(store: &Store, now: DateTime<Utc>) -> Result<String, ServiceError> {
    let (generated, hash) = password_and_hash(None)?;
    let account = Account::new(
        FIRST_ADMIN_LOGIN,
        "管理员",
        RoleSet::of(&[Role::Admin]),
        hash,
        now,
    )
    .map_err(invalid)?;
    store.create_account(&account)?;
    generated.ok_or_else(|| ServiceError::Internal("no password was made".to_owned()))
}

/// A new CLI token's text, for `init` to write to the node directory.
pub fn new_cli_token() -> Result<String, ServiceError> {
    new_secret(SecretKind::Cli)
}

fn unauthenticated(why: &str) -> ServiceError {
    ServiceError::Unauthenticated(why.to_owned())
}

impl Node {
    pub fn account_book(&self) -> &AccountBook {
        &self.accounts
    }

    /// Sign in with a password from `source` (the client's address). Throttled per login and
    /// per address before the password is looked at; an unknown login costs the same argon2
    /// verification as a known one and is answered alike.
    pub fn sign_in(
        &self,
        login: &str,
        password: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, ServiceError> {
        self.check_throttle(login, source, now)?;
        let stored = self.store.account(login)?;
        let hash = stored
            .as_ref()
            .map_or(dummy_hash(), |account| account.password_hash.as_str());
        let matches = verify_password(password, hash);
        let refused = || unauthenticated("wrong login or password");
        let Some(mut account) = stored else {
            lock_ignoring_poison(&self.accounts.throttle).record_failure(login, source, now);
            return Err(refused());
        };
        if !matches {
            lock_ignoring_poison(&self.accounts.throttle).record_failure(login, source, now);
            account.failed_sign_ins = account.failed_sign_ins.saturating_add(1);
            self.store.put_account_unflushed(&account)?;
            return Err(refused());
        }
        if account.is_disabled() {
            // Only someone who knows the password learns that the account is disabled.
            return Err(unauthenticated("this account is disabled"));
        }
        lock_ignoring_poison(&self.accounts.throttle).record_success(login);
        account.failed_sign_ins = 0;
        account.last_sign_in_at = Some(now);
        let session_secret = new_secret(SecretKind::Session)?;
        let csrf_token = new_secret(SecretKind::Csrf)?;
        let session = Session::new(login, secret_hash(&csrf_token), now);
        self.store.put_account(&account)?;
        self.store
            .put_session(&secret_hash(&session_secret), &session, true)?;
        self.prune_ended_sessions(now);
        Ok(SignedIn {
            principal: Principal {
                account,
                credential: Credential::Session(session),
            },
            session_secret,
            csrf_token,
        })
    }

    /// Forget sessions that have ended, so the sessions tree does not grow with every sign-in
    /// that never signed out.
    fn prune_ended_sessions(&self, now: DateTime<Utc>) {
        let idle = self.accounts.session_idle;
        if let Err(error) = self
            .store
            .prune_sessions(|session| now - session.last_seen_at > idle)
        {
            tracing::warn!(%error, "cannot prune ended sessions");
        }
    }

    /// The account behind a session cookie, if the session still counts; its last-seen time
    /// moves to `now`.
    pub fn authenticate_session(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, ServiceError> {
        let ended = || unauthenticated("no such session (signed out or expired): sign in again");
        if !is_secret_of(SecretKind::Session, secret) {
            return Err(ended());
        }
        let hash = secret_hash(secret);
        let mut session = self.store.session(&hash)?.ok_or_else(ended)?;
        let account = self.store.account(&session.login)?.ok_or_else(ended)?;
        if let Err(why) = session.check_live(&account, now, self.accounts.session_idle) {
            self.store.delete_session(&hash)?;
            return Err(ServiceError::Unauthenticated(why.to_string()));
        }
        session.last_seen_at = now;
        self.store.put_session(&hash, &session, false)?;
        Ok(Principal {
            account,
            credential: Credential::Session(session),
        })
    }

    /// End a session (sign out). An unknown one is already ended.
    pub fn sign_out(&self, secret: &str) -> Result<(), ServiceError> {
        self.store.delete_session(&secret_hash(secret))?;
        Ok(())
    }

    /// The account behind `Authorization: Bearer SECRET`: an account's token, or the node's
    /// CLI token acting as `act_as`. A token acts only as its own account.
    pub fn authenticate_bearer(
        &self,
        secret: &str,
        act_as: Option<&str>,
    ) -> Result<Principal, ServiceError> {
        let hash = secret_hash(secret);
        if is_secret_of(SecretKind::Cli, secret) {
            let known = self
                .accounts
                .cli_token_hash
                .as_deref()
                .is_some_and(|cli| hashes_match(cli, &hash));
            if !known {
                return Err(unauthenticated(
                    "this is not the node's CLI token (was the node directory made again?)",
                ));
            }
            let login = act_as.ok_or_else(|| {
                unauthenticated(
                    "the node's CLI token acts as an account: name it with --as NAME or \
                     FENGQIAO_USER",
                )
            })?;
            let account = self.live_account(login)?;
            return Ok(Principal {
                account,
                credential: Credential::Cli,
            });
        }
        let refused = || unauthenticated("unknown or revoked token");
        if !is_secret_of(SecretKind::Token, secret) {
            return Err(refused());
        }
        let token = self.store.token(&hash)?.ok_or_else(refused)?;
        if token.revoked_at.is_some() {
            return Err(refused());
        }
        if act_as.is_some_and(|login| login != token.login) {
            return Err(ServiceError::Unauthenticated(format!(
                "this token acts as {} only; only the node's CLI token acts as another account",
                token.login
            )));
        }
        let account = self.live_account(&token.login)?;
        Ok(Principal {
            account,
            credential: Credential::Token(token.id),
        })
    }

    fn live_account(&self, login: &str) -> Result<Account, ServiceError> {
        let account = self
            .store
            .account(login)?
            .ok_or_else(|| ServiceError::Unauthenticated(format!("no account {login}")))?;
        if account.is_disabled() {
            return Err(ServiceError::Unauthenticated(format!(
                "account {login} is disabled"
            )));
        }
        Ok(account)
    }

    fn stored_account(&self, login: &str) -> Result<Account, ServiceError> {
        self.store
            .account(login)?
            .ok_or_else(|| ServiceError::NoSuchAccount(login.to_owned()))
    }

    pub fn add_account(
        &self,
        request: &NewAccount,
        now: DateTime<Utc>,
    ) -> Result<AccountWithPassword, ServiceError> {
        // Checked before the (slow) hash, so a typo answers at once.
        Account::new(
            &request.login,
            &request.display_name,
            request.roles,
            String::new(),
            now,
        )
        .map_err(invalid)?;
        let (one_time_password, hash) = password_and_hash(request.password.as_deref())?;
        let account = Account::new(
            &request.login,
            &request.display_name,
            request.roles,
            hash,
            now,
        )
        .map_err(invalid)?;
        self.store.create_account(&account)?;
        tracing::info!(login = %account.login, roles = %account.roles, "account created");
        Ok(AccountWithPassword {
            account: account.view(),
            one_time_password,
        })
    }

    pub fn account_views(&self) -> Result<Vec<AccountView>, ServiceError> {
        Ok(self.store.accounts()?.iter().map(Account::view).collect())
    }

    pub fn disable_account(
        &self,
        login: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountView, ServiceError> {
        let mut account = self.stored_account(login)?;
        account.disable(now);
        self.store.put_account(&account)?;
        tracing::info!(%login, "account disabled");
        Ok(account.view())
    }

    pub fn reset_password(
        &self,
        login: &str,
        password: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<AccountWithPassword, ServiceError> {
        let mut account = self.stored_account(login)?;
        let (one_time_password, hash) = password_and_hash(password)?;
        account.reset_password(hash, now);
        self.store.put_account(&account)?;
        tracing::info!(%login, "password reset");
        Ok(AccountWithPassword {
            account: account.view(),
            one_time_password,
        })
    }

    /// Refused while `login` or `source` has failed too often lately: a password is looked at
    /// only after this.
    fn check_throttle(
        &self,
        login: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        match lock_ignoring_poison(&self.accounts.throttle).check(login, source, now) {
            Ok(()) => Ok(()),
            Err(wait) => Err(ServiceError::Throttled {
                retry_after_seconds: u64::try_from(wait.num_milliseconds().max(0))
                    .unwrap_or(0)
                    .div_ceil(1000),
            }),
        }
    }

    /// A person changes their own password: the current one is checked as a sign-in checks it
    /// (throttled per login and per `source` address, failures counted), the new one must meet
    /// the rule, and every session of the account ends, this one included.
    pub fn change_own_password(
        &self,
        login: &str,
        current: &str,
        new: &str,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        self.check_throttle(login, source, now)?;
        let mut account = self.stored_account(login)?;
        if !verify_password(current, &account.password_hash) {
            lock_ignoring_poison(&self.accounts.throttle).record_failure(login, source, now);
            account.failed_sign_ins = account.failed_sign_ins.saturating_add(1);
            self.store.put_account_unflushed(&account)?;
            return Err(unauthenticated("the current password is wrong"));
        }
        if current == new {
            return Err(ServiceError::InvalidInput(
                "the new password is the current one".to_owned(),
            ));
        }
        let (_, hash) = password_and_hash(Some(new))?;
        account.reset_password(hash, now);
        self.store.put_account(&account)?;
        lock_ignoring_poison(&self.accounts.throttle).record_success(login);
        tracing::info!(%login, "password changed by its owner");
        Ok(())
    }

    pub fn set_roles(&self, login: &str, roles: RoleSet) -> Result<AccountView, ServiceError> {
        let mut account = self.stored_account(login)?;
        account.set_roles(roles).map_err(invalid)?;
        self.store.put_account(&account)?;
        tracing::info!(%login, %roles, "roles changed");
        Ok(account.view())
    }

    pub fn create_token(
        &self,
        login: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenCreated, ServiceError> {
        let name = name.trim();
        fengqiao_case::input_bounds::check_text(
            "name",
            name,
            fengqiao_case::input_bounds::TextKind::Name,
        )
        .map_err(invalid)?;
        if name.is_empty() {
            return Err(invalid("a token needs a name saying what it is for"));
        }
        self.stored_account(login)?;
        let secret = new_secret(SecretKind::Token)?;
        let hash = secret_hash(&secret);
        let token = Token::new(&hash, name, login, now);
        self.store.put_token(&hash, &token)?;
        tracing::info!(%login, token = %token.id, name = %token.name, "token created");
        Ok(TokenCreated { token, secret })
    }

    pub fn tokens(&self) -> Result<Vec<Token>, ServiceError> {
        Ok(self
            .store
            .tokens()?
            .into_iter()
            .map(|(_, token)| token)
            .collect())
    }

    pub fn revoke_token(&self, id: &str, now: DateTime<Utc>) -> Result<Token, ServiceError> {
        let (hash, mut token) = self
            .store
            .tokens()?
            .into_iter()
            .find(|(_, token)| token.id == id)
            .ok_or_else(|| ServiceError::InvalidInput(format!("no token {id}")))?;
        token.revoked_at.get_or_insert(now);
        self.store.put_token(&hash, &token)?;
        tracing::info!(token = %token.id, "token revoked");
        Ok(token)
    }
}

/// The operator label of an account, for messages that name one without loading it.
pub fn label(display_name: &str, login: &str) -> String {
    operator_label(display_name, login)
}
