//! Tests of the case document, derive and the lifecycle rules, driven through the public API.

mod authority;
mod clock_skew;
mod directives;
mod documents;
mod lifecycle_paths;
mod properties;
mod receipt;
mod replicas;
mod rollup;
mod signatures;
mod succession;
mod support;
