//! The one integration-test binary: every end-to-end test, one module per area.
