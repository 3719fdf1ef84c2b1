//! The `memtrace` command: parses arguments, sets up logging, and turns
//! errors into one line on stderr and exit status 2.

use std::{io, process::ExitCode};

use clap::Parser as _;
use memtrace::cli::Cli;

/// Exit code for memtrace's own failures (a traced command's own code passes through).
const FAILURE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbosity() {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_timestamp(None)
        .format_target(false)
        .init();

    match memtrace::app::run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(FAILURE)),
        Err(err) => {
            if err.chain().any(|cause| {
                cause
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("memtrace: error: {err:#}");
            ExitCode::from(FAILURE)
        }
    }
}
