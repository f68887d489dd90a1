//! The people of a node: accounts, their roles, password hashing, sessions, tokens and sign-in
//! throttling, as pure rules. No IO: no clock reads (`now` is passed in), no randomness of its own
//! (the caller hands in random bytes), no files or sockets; the store keeps what is here, the API
//! applies it.

pub mod account;
pub mod password;
pub mod roles;
pub mod secret;
pub mod throttle;
pub mod wire;

pub use account::{Account, AccountError, AccountView, Actor};
pub use roles::{Action, Role, RoleError, RoleSet};
