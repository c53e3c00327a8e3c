//! The `strata` binary: parses the command line, sets up logging and the
//! thread pool, runs a command, and turns the outcome into an exit code a
//! scheduler can act on: 0 success, 1 assurance tests failed, 2 a problem
//! the user can fix (rule file, data, paths, arguments), 3 an internal error
//! (a bug in strata).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_logging(args.quiet);
    let outcome = std::panic::catch_unwind(|| cli::run(&args));
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("{}", e.render());
            if e.is_user_error() {
                ExitCode::from(cli::USER_ERROR)
            } else {
                ExitCode::from(cli::INTERNAL_ERROR)
            }
        }
        Err(_) => {
            eprintln!(
                "error: internal error (a panic, reported above). This is likely a bug in strata, please report it"
            );
            ExitCode::from(cli::INTERNAL_ERROR)
        }
    }
}

/// Logs go to stderr; `STRATA_LOG` (e.g. `debug`) overrides the level.
fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
