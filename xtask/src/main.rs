//! `cargo xtask`: memtrace's project tasks.
//!
//! Every set-up step the project needs is here, so a fresh clone on a fresh
//! machine needs nothing installed by hand: `cargo xtask demo` and
//! `cargo xtask test` bootstrap first.

mod bench;
mod bootstrap;
mod tasks;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  bootstrap   install what building and testing need (rust-src, bpf-linker, test tools)
  build       build the release binary at target/release/memtrace
  demo        build, then trace the bundled leaky demo and print its report
  test        fmt check, clippy, unit tests, and the root-only eBPF integration tests
  bench       measure tracing overhead, probe costs and aggregation throughput";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bootstrap") => bootstrap::run().map(drop),
        Some("build") => tasks::build().map(drop),
        Some("demo") => tasks::demo(),
        Some("test") => tasks::test(),
        Some("bench") => bench::run(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown task `{other}`\n\n{USAGE}")),
        None => Err(anyhow::anyhow!("no task given\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
