//! Helpers for the end-to-end tests: find the binary, start nodes on port 0, run CLI commands.
