//! `hookfleet`: one binary, a subcommand per role. Parse the command line, hand
//! the subcommand to its module under `cmd/` (which loads the configuration when
//! it needs one), and turn the outcome into an exit code (see [`exit`]).
#![forbid(unsafe_code)]

use clap::Parser as _;
use std::process::ExitCode;

/// Prints a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod cmd;
mod exit;
mod logging;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookfleet: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = rt.block_on(cmd::run(cli));
    // The runtime still runs: the last spans go out through it.
    logging::shutdown();
    match result {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            eprintln!("hookfleet: {e:#}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}
