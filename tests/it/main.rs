//! The one integration-test binary: every end-to-end test, one module per area.
//!
//! Each test starts real `fengqiao` processes on 127.0.0.1 (port 0) in its own temporary
//! directory, so the tests run in parallel without sharing state.

mod accounts;
mod audit;
mod backdating;
mod backup;
mod cli_lifecycle;
mod console;
mod crash;
mod cut_links;
mod demo;
mod disk;
mod excel;
mod federation;
mod hostile_input;
mod import;
mod input;
mod metrics;
mod nemesis;
mod openapi;
mod package;
mod policy;
mod rebuild;
mod stats;
mod tiers;
