//! The `fengqiao` binary: parse the command line and hand over to [`fengqiao::cli`].

fn main() -> std::process::ExitCode {
    fengqiao::cli::main()
}
