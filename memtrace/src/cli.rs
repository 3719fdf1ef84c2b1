//! Command-line arguments.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    check::CheckArgs,
    config::MonitorArgs,
    formats::{Measure, ReportArgs},
};

/// Traces a process's native allocations with eBPF and reports who holds memory.
#[derive(Debug, Parser)]
#[command(name = "memtrace", version, args_conflicts_with_subcommands = true)]
#[command(after_help = "\
Examples:
  sudo memtrace --pid 4242
  sudo memtrace run -- ./server --port 8080
  sudo memtrace check --max-leaked-bytes 0 -- ./run-tests
  memtrace report saved.json --format svg -o flame.svg

Exit status: 0 on success (with `run`, the command's own status), 1 when
`check` finds the budget broken, 2 when memtrace itself fails.")]
pub struct Cli {
    /// Attach to this running process.
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,

    #[command(flatten)]
    pub trace: TraceArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The `-v` count of whichever command was given.
    pub fn verbosity(&self) -> u8 {
        match &self.command {
            Some(Command::Run { trace, .. } | Command::Check { trace, .. }) => trace.verbose,
            Some(Command::Report(_)) => 0,
            None => self.trace.verbose,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a command and trace it from its first allocation; exits with its status.
    Run {
        #[command(flatten)]
        trace: TraceArgs,
        /// The command and its arguments.
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Render a saved JSON report as folded stacks, SVG, pprof, speedscope or markdown.
    Report(ReportArgs),
    /// Fail (exit 1) when a command leaves memory allocated, or a process grows, past a budget.
    Check {
        #[command(flatten)]
        check: CheckArgs,
        /// Watch this running process (with `--duration`) and judge its growth.
        #[arg(short, long, value_name = "PID", conflicts_with = "input")]
        pid: Option<u32>,
        #[command(flatten)]
        trace: TraceArgs,
        /// The command to run under tracing, and its arguments.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
}

/// Options shared by every way of tracing.
#[derive(Clone, Debug, Args)]
pub struct TraceArgs {
    /// How often to print the live status line (e.g. `1s`, `500ms`).
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,

    /// Stop tracing after this long (e.g. `30s`, `10m`); with `run`, the command is sent SIGTERM.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// How many consumers and modules the text report shows.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// Do not print the live status line.
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Size of the kernel's event ring buffer, in MiB (a power of two).
    #[arg(long, default_value_t = memtrace_common::DEFAULT_RING_BUFFER_BYTES >> 20, value_parser = parse_ring_buffer_mib, value_name = "MIB")]
    pub ring_buffer_mib: u32,

    /// Buckets in the kernel's stack-trace map (distinct stacks it can hold).
    #[arg(long, default_value_t = memtrace_common::DEFAULT_STACK_MAP_ENTRIES, value_parser = clap::value_parser!(u32).range(256..=1_048_576), value_name = "N")]
    pub stack_map_entries: u32,

    /// Probe every function at its first instruction instead of the cheapest
    /// site (for measuring the difference).
    #[arg(long, hide = true)]
    pub probe_at_entry: bool,

    /// More diagnostics on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(flatten)]
    pub monitor: MonitorArgs,
}

/// Files the final report is written to, besides the text on stdout.
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// Write the report as JSON (`-` for stdout, instead of the text report).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write folded stacks (flamegraph.pl, inferno).
    #[arg(long, value_name = "FILE")]
    pub folded: Option<PathBuf>,

    /// Write an SVG flame graph.
    #[arg(long, value_name = "FILE.svg")]
    pub flamegraph: Option<PathBuf>,

    /// Write a gzipped pprof profile (go tool pprof, Pyroscope, Parca).
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,

    /// Write a speedscope profile.
    #[arg(long, value_name = "FILE")]
    pub speedscope: Option<PathBuf>,

    /// Write a markdown report.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// What the folded, SVG and speedscope outputs weigh stacks by.
    #[arg(long, value_enum, default_value_t = Measure::LiveBytes)]
    pub measure: Measure,
}

/// Parses `250ms`, `30s`, `10m`, `2h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a number with a unit, like `30s` or `10m`")
    })?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ));
        }
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_ring_buffer_mib(text: &str) -> Result<u32, String> {
    let mib: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of MiB"))?;
    if !mib.is_power_of_two() || mib > 1024 {
        return Err(format!(
            "`{mib}` MiB: the ring buffer must be a power of two, at most 1024"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_mins(10)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn pid_and_run_do_not_mix() {
        assert!(Cli::try_parse_from(["memtrace", "--pid", "1", "run", "--", "true"]).is_err());
        let cli = Cli::try_parse_from(["memtrace", "run", "--top", "3", "--", "ls", "-l"]).unwrap();
        let Some(Command::Run { trace, command }) = cli.command else {
            panic!("run parsed")
        };
        assert_eq!(trace.top, 3);
        assert_eq!(command, ["ls", "-l"]);
    }

    #[test]
    fn check_takes_budgets_and_a_command() {
        let cli = Cli::try_parse_from([
            "memtrace",
            "check",
            "--max-leaked-bytes",
            "1KiB",
            "--json",
            "r.json",
            "--",
            "make",
            "test",
        ])
        .unwrap();
        let Some(Command::Check {
            check,
            pid,
            trace,
            command,
        }) = cli.command
        else {
            panic!("check parsed")
        };
        assert_eq!(check.max_leaked_bytes, Some(1024));
        assert_eq!(pid, None);
        assert_eq!(
            trace.outputs.json.as_deref(),
            Some(std::path::Path::new("r.json"))
        );
        assert_eq!(command, ["make", "test"]);
    }

    #[test]
    fn ring_buffer_must_be_a_power_of_two() {
        assert!(Cli::try_parse_from(["memtrace", "--pid", "1", "--ring-buffer-mib", "3"]).is_err());
        assert!(Cli::try_parse_from(["memtrace", "--pid", "1", "--ring-buffer-mib", "4"]).is_ok());
    }
}
