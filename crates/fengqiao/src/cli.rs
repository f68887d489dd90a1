//! The command line: `init`, `run`, `demo`, `import`, and the case / directive / stats commands
//! that talk to a running node through its HTTP API.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
