//! The case: an automerge document per case, its events, and everything derived from them. No IO.
//!
//! Nothing in this crate reads a clock, touches a file or a socket: callers pass `now` in. That is
//! what lets every replica derive the same state from the same events, and lets the lifecycle be
//! tested with a virtual clock.

pub mod appending;
pub mod authority;
pub mod bounds;
pub mod case_error;
pub mod causal_past;
pub mod clock;
pub mod deadlines;
pub mod derive;
pub mod document;
pub mod escalation_rules;
pub mod event_time;
pub mod import;
pub mod input_bounds;
pub mod lifecycle;
pub mod measures;
pub mod model;
pub mod personal_data;
pub mod policy;
pub mod receipt;
pub mod rollup;
#[cfg(feature = "schema")]
pub mod schema;
pub mod signature;
pub mod succession;
pub mod summary;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod warnings;

pub use case_error::CaseError;
pub use derive::derive;
pub use document::{CaseDocument, DocumentError};
pub use lifecycle::NewEvent;
pub use model::*;
