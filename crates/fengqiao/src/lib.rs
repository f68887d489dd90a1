//! A Fengqiao node: configuration, identity, the service that ties cases to storage, the HTTP
//! API, and the command line that drives it.

pub mod admission;
pub mod api;
pub mod backup;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod federation;
pub mod identity;
pub mod import;
pub mod metrics;
pub mod rebuild;
pub mod service;
pub mod unknown_fields;
pub mod wall_clock;
