//! The `strata` binary: parses the command line, sets up logging and the
//! thread pool, runs a command, and turns the outcome into an exit code a
//! scheduler can act on: 0 success, 1 assurance tests failed, 2 a problem
//! the user can fix (rule file, data, paths, arguments), 3 an internal error
//! (a bug in strata).

mod cli;
#[cfg(target_os = "linux")]
mod memory;

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: memory::HugeForLarge = memory::HugeForLarge::new();

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_logging(args.quiet);
    std::panic::set_hook(Box::new(report_panic));
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
        // The hook has said what and where; a panic in a worker thread
        // reaches here through rayon, after the other workers have stopped.
        Err(_) => ExitCode::from(cli::INTERNAL_ERROR),
    }
}

/// A panic, wherever it happens, as one internal-error message: what
/// panicked, in which thread, at which line of strata. Panic messages are
/// strata's own (`expect`s and bounds checks), never patient data.
fn report_panic(info: &std::panic::PanicHookInfo) {
    // Other workers may panic the same way before the run stops: the first
    // says it.
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let thread = std::thread::current();
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    eprintln!(
        "error: internal error: strata {} panicked in thread `{}`{at}: {message}\n  help: this is a bug in strata, not a problem with your data: please report it with this message; an output this run had not yet published is left as it was",
        env!("CARGO_PKG_VERSION"),
        thread.name().unwrap_or("unnamed")
    );
}

/// Logs go to stderr. On a terminal the screen is for the progress bars and
/// the summary: only warnings and errors are logged there, without
/// timestamps. When asked (`STRATA_LOG`, e.g. `info` or `debug`) or when
/// stderr is not a terminal (a scheduler's log file), every line carries a
/// timestamp and the level is `info` unless `STRATA_LOG` says otherwise.
fn init_logging(quiet: bool) {
    let asked = std::env::var_os("STRATA_LOG").is_some();
    let terminal = std::io::stderr().is_terminal();
    let default = if quiet || (terminal && !asked) {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal)
        .with_target(false);
    if terminal && !asked {
        logs.without_time().init();
    } else {
        logs.init();
    }
}
