//! `fengqiao user …`, `fengqiao token …` and `fengqiao whoami`: the node's accounts and bearer
//! tokens, through the running node's API (its store is locked by the running node), as an admin
//! (`--dir NODE_DIR --as admin` on the node's machine).

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fengqiao_accounts::secret::Token;
use fengqiao_accounts::wire::{
    AccountWithPassword, NewAccount, NewToken, PasswordReset, RolesChange, SessionView,
    TokenCreated,
};
use fengqiao_accounts::{AccountView, RoleSet};

use super::output::{emit, print_json};
use crate::client::NodeClient;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; prints a one-time password unless --password-stdin gives one
    Add(AddUserArgs),
    /// Every account, with its roles and state
    List,
    /// Disable an account: it can no longer sign in, its sessions end, its tokens stop
    Disable { login: String },
    /// Set a new password (printed once, or read with --password-stdin); its sessions end
    ResetPassword {
        login: String,
        /// Read the new password from the first line of stdin instead of making one
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's roles: operator, supervisor, admin (comma-separated)
    SetRole {
        login: String,
        #[arg(long = "role", value_parser = parse_roles, value_name = "ROLES")]
        roles: RoleSet,
    },
}

#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// The login: a-z, 0-9, '.', '_', '-'
    pub login: String,
    /// The name recorded in events, e.g. 李调解
    #[arg(long)]
    pub display_name: String,
    /// operator (登记员/调解员), supervisor (督查), admin (管理员); several comma-separated
    #[arg(long = "role", value_parser = parse_roles, value_name = "ROLES")]
    pub roles: RoleSet,
    /// Read the password from the first line of stdin instead of making a one-time one
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token acting as an account; the secret is printed once
    Create {
        /// The account the token acts as
        #[arg(long = "user", value_name = "LOGIN")]
        login: String,
        /// What it is for, e.g. ledger-sync
        #[arg(long)]
        name: String,
    },
    /// Every token, without its secret
    List,
    /// Revoke a token by its id: it stops working at once
    Revoke { id: String },
}

fn parse_roles(text: &str) -> Result<RoleSet, String> {
    RoleSet::parse(text).map_err(|error| error.to_string())
}

fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password)
}

fn account_line(account: &AccountView) -> String {
    let state = match account.disabled_at {
        Some(at) => format!("disabled 已停用 {}", at.format("%Y-%m-%d %H:%M UTC")),
        None => "active".to_owned(),
    };
    format!(
        "{:<20} {:<12} {:<26} failed sign-ins: {:<4} {state}",
        account.login,
        account.display_name,
        account.roles.to_string(),
        account.failed_sign_ins
    )
}

fn with_password_text(verb: &str, answer: &AccountWithPassword) -> String {
    let mut text = format!(
        "{verb} account {} ({}), roles {}",
        answer.account.login, answer.account.display_name, answer.account.roles
    );
    if let Some(password) = &answer.one_time_password {
        text.push_str(&format!("\none-time password (shown only now): {password}"));
    }
    text
}

pub fn run_user(command: UserCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => {
            let password = args.password_stdin.then(password_from_stdin).transpose()?;
            let request = NewAccount {
                login: args.login,
                display_name: args.display_name,
                roles: args.roles,
                password,
            };
            let answer = client.post("/api/users", &request)?;
            if json {
                return print_json(&answer);
            }
            let answer: AccountWithPassword =
                serde_json::from_value(answer).context("unexpected answer from /api/users")?;
            emit(with_password_text("created", &answer))
        }
        UserCommand::List => {
            let answer = client.get("/api/users", &[])?;
            if json {
                return print_json(&answer);
            }
            let accounts: Vec<AccountView> =
                serde_json::from_value(answer).context("unexpected answer from /api/users")?;
            emit(
                accounts
                    .iter()
                    .map(account_line)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        UserCommand::Disable { login } => {
            let answer = client.post(
                &format!("/api/users/{login}/disable"),
                &serde_json::json!({}),
            )?;
            if json {
                return print_json(&answer);
            }
            let account: AccountView = serde_json::from_value(answer)
                .context("unexpected answer from /api/users/…/disable")?;
            emit(format!(
                "disabled account {} ({}): its sessions ended",
                account.login, account.display_name
            ))
        }
        UserCommand::ResetPassword {
            login,
            password_stdin,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let answer = client.post(
                &format!("/api/users/{login}/password"),
                &PasswordReset { password },
            )?;
            if json {
                return print_json(&answer);
            }
            let answer: AccountWithPassword = serde_json::from_value(answer)
                .context("unexpected answer from /api/users/…/password")?;
            emit(with_password_text("new password for", &answer))
        }
        UserCommand::SetRole { login, roles } => {
            let answer =
                client.post(&format!("/api/users/{login}/roles"), &RolesChange { roles })?;
            if json {
                return print_json(&answer);
            }
            let account: AccountView = serde_json::from_value(answer)
                .context("unexpected answer from /api/users/…/roles")?;
            emit(format!("{} now holds {}", account.login, account.roles))
        }
    }
}

pub fn run_token(command: TokenCommand, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { login, name } => {
            let answer = client.post("/api/tokens", &NewToken { login, name })?;
            if json {
                return print_json(&answer);
            }
            let created: TokenCreated =
                serde_json::from_value(answer).context("unexpected answer from /api/tokens")?;
            emit(format!(
                "token {} ({}) acts as {}\nsecret (shown only now; send it as \
                 `Authorization: Bearer …`, or set FENGQIAO_TOKEN): {}",
                created.token.id, created.token.name, created.token.login, created.secret
            ))
        }
        TokenCommand::List => {
            let answer = client.get("/api/tokens", &[])?;
            if json {
                return print_json(&answer);
            }
            let tokens: Vec<Token> =
                serde_json::from_value(answer).context("unexpected answer from /api/tokens")?;
            emit(
                tokens
                    .iter()
                    .map(|token| {
                        let state = token.revoked_at.map_or_else(
                            || "active".to_owned(),
                            |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M UTC")),
                        );
                        format!(
                            "{:<13} {:<24} {:<20} {state}",
                            token.id, token.name, token.login
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        TokenCommand::Revoke { id } => {
            let answer =
                client.post(&format!("/api/tokens/{id}/revoke"), &serde_json::json!({}))?;
            if json {
                return print_json(&answer);
            }
            let token: Token = serde_json::from_value(answer)
                .context("unexpected answer from /api/tokens/…/revoke")?;
            emit(format!("revoked token {} ({})", token.id, token.name))
        }
    }
}

pub fn whoami(client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let answer = client.get("/api/session", &[])?;
    if json {
        return print_json(&answer);
    }
    let view: SessionView =
        serde_json::from_value(answer).context("unexpected answer from /api/session")?;
    emit(format!(
        "{} ({}) via {}",
        view.operator, view.account.roles, view.via
    ))
}
