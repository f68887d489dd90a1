//! Tests of the sync core: frames, routing, sessions between two nodes, and a multi-node harness.

mod agreement;
mod clock_skew;
mod federation;
mod frames;
mod harness;
mod policy;
mod properties;
mod roster;
mod routing_rules;
mod sessions;
mod succession;
mod support;
