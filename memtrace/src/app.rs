//! The commands: trace a running process, start one and trace it, render a
//! saved report, and check a run against a memory budget.

use std::{
    ffi::OsString,
    fs,
    io::{BufWriter, Write as _},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    check::{CheckArgs, Judge},
    cli::{Cli, Command, OutputArgs, TraceArgs},
    config,
    formats::{self, Format},
    launch::{self, Launch, Launched},
    probes::{self, MapSizes},
    procfs,
    report::{ExitStatus, Report},
    session::{self, Options, Signal, Tracer, Watch},
    target,
};

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match (cli.pid, cli.command) {
        (Some(pid), None) => {
            trace_pid(pid, &cli.trace, |report| print_report(report, &cli.trace))?;
            Ok(0)
        }
        (None, Some(Command::Run { trace, command })) => {
            let exit = trace_command(&command, &trace, |report| print_report(report, &trace))?;
            Ok(exit.map_or(0, |status| status.shell_code()))
        }
        (None, Some(Command::Report(args))) => formats::run_report(&args).map(|()| 0),
        (
            None,
            Some(Command::Check {
                check,
                pid,
                trace,
                command,
            }),
        ) => run_check(&check, pid, &trace, &command),
        (None, None) => bail!("nothing to trace: give `--pid PID`, or `run -- COMMAND`"),
        (Some(_), Some(_)) => unreachable!("clap rejects `--pid` with a subcommand"),
    }
}

fn options(args: &TraceArgs) -> anyhow::Result<Options> {
    Ok(Options {
        interval: args.interval,
        duration: args.duration,
        quiet: args.quiet,
        sizes: MapSizes {
            ring_buffer_bytes: args.ring_buffer_mib << 20,
            stack_entries: args.stack_map_entries,
        },
        monitor: config::load(&args.monitor)?,
    })
}

/// Traces a running process until it exits, a signal, or `--duration`;
/// hands the report to `finish` before detaching (which is slow).
fn trace_pid(
    pid: u32,
    args: &TraceArgs,
    finish: impl FnOnce(&Report) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let command = target::check_pid(pid)?;
    probes::check_privileges()?;
    let mut plan = target::plan_for_pid(pid)?;
    if args.probe_at_entry {
        plan.place_at_entries();
    }
    let mut options = options(args)?;
    // Memory allocated before the attach is outside the traced heap, so the
    // untracked and RSS/heap thresholds would fire on every attach: with
    // `--pid` they apply only when given on the command line.
    if args.monitor.untracked_threshold.is_none() {
        options.monitor.alerts.untracked_bytes = None;
    }
    if args.monitor.ratio_threshold.is_none() {
        options.monitor.alerts.rss_heap_ratio = None;
    }
    session::install_signal_handlers()?;

    let mut tracer = Tracer::attach(pid, command, plan, &options).map_err(|err| {
        if procfs::is_alive(pid) {
            err
        } else {
            err.context(format!(
                "process `{pid}` exited while memtrace was attaching"
            ))
        }
    })?;
    if !args.quiet {
        eprintln!("memtrace: attached to pid {pid}; Ctrl-C stops tracing and prints the report");
    }
    let mut watch = PidWatch {
        pid,
        last_check: Instant::now(),
    };
    let report = session::run(&mut tracer, &options, &mut watch)?;
    finish(&report)?;
    drop(tracer);
    Ok(())
}

/// How often a process memtrace attached to is checked for having exited.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

/// Watches a process memtrace attached to.
struct PidWatch {
    pid: u32,
    last_check: Instant,
}

impl Watch for PidWatch {
    fn target_gone(&mut self, _: &mut Tracer) -> bool {
        // The loop turns every few milliseconds; `/proc` need not be read as often.
        if self.last_check.elapsed() < LIVENESS_CHECK {
            return false;
        }
        self.last_check = Instant::now();
        !procfs::is_alive(self.pid)
    }

    fn on_signal(&mut self, _: Signal) -> bool {
        true
    }

    fn on_deadline(&mut self) -> bool {
        true
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        None
    }
}

/// Starts `argv` with the probes in place and traces it until it exits;
/// hands the report to `finish` before detaching. Returns how it ended.
fn trace_command(
    argv: &[OsString],
    args: &TraceArgs,
    finish: impl FnOnce(&Report) -> anyhow::Result<()>,
) -> anyhow::Result<Option<ExitStatus>> {
    let mut prepared = launch::prepare(argv)?;
    if args.probe_at_entry {
        prepared.plan.place_at_entries();
    }
    probes::check_privileges()?;
    let options = options(args)?;
    session::install_signal_handlers()?;

    let command = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut tracer = None;
    let launch = launch::start(&prepared, |pid| {
        tracer = Some(Tracer::attach(
            pid,
            command,
            prepared.plan.clone(),
            &options,
        )?);
        Ok(())
    })?;
    let mut tracer = tracer.expect("attached before the command started");
    let mut watch = CommandWatch { launch, exit: None };
    let report = session::run(&mut tracer, &options, &mut watch)?;
    watch.launch.join();
    finish(&report)?;
    drop(tracer);
    Ok(watch.exit)
}

/// Watches a command memtrace started.
struct CommandWatch {
    launch: Launch,
    exit: Option<ExitStatus>,
}

impl Watch for CommandWatch {
    fn target_gone(&mut self, tracer: &mut Tracer) -> bool {
        while let Some(news) = self.launch.poll() {
            match news {
                Launched::Exiting => {
                    // The command is held at its exit with its memory map intact.
                    tracer.refresh_memory_map();
                    tracer.drain();
                    self.launch.release_exit();
                }
                Launched::Exited(status) => {
                    self.exit = Some(status);
                    return true;
                }
            }
        }
        false
    }

    fn on_signal(&mut self, signal: Signal) -> bool {
        // The terminal already signalled the command, which shares its process group.
        if !signal.from_terminal {
            self.launch.signal(signal.number);
        }
        false
    }

    fn on_deadline(&mut self) -> bool {
        log::info!("--duration has passed: stopping the command");
        self.launch.signal(libc::SIGTERM);
        false
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }
}

/// `memtrace check`: trace (or load) a report, then judge it.
fn run_check(
    check: &CheckArgs,
    pid: Option<u32>,
    trace: &TraceArgs,
    command: &[OsString],
) -> anyhow::Result<i32> {
    // Read the suppressions and baseline before a possibly long run.
    let judge = Judge::new(check, pid.is_some())?;
    let mut verdict = None;
    let mut judge_report = |report: &Report| -> anyhow::Result<()> {
        write_outputs(report, &trace.outputs)?;
        verdict = Some(judge.judge(report)?);
        Ok(())
    };
    match (&check.input, pid, command.is_empty()) {
        (Some(path), None, true) => judge_report(&formats::load_report(path)?)?,
        (None, Some(pid), true) => {
            if trace.duration.is_none() {
                bail!(
                    "`check --pid` watches for a window: give `--duration`, e.g. `--duration 10m`"
                );
            }
            if check.max_growth.is_none() {
                bail!("`check --pid` judges growth: give `--max-growth`, e.g. `--max-growth 1MiB`");
            }
            trace_pid(pid, trace, judge_report)?;
        }
        (None, None, false) => {
            let exit = trace_command(command, trace, judge_report)?;
            if let Some(status) = exit.filter(|s| s.shell_code() != 0) {
                eprintln!(
                    "memtrace: note: the command itself failed (status {}); the verdict is about memory only",
                    status.shell_code()
                );
            }
        }
        _ => bail!("check what? give one of `-- COMMAND`, `--pid PID`, or `--report FILE`"),
    }
    Ok(verdict.expect("judged before returning"))
}

/// Prints the text report (or JSON, with `--json -`) and writes every output file.
fn print_report(report: &Report, args: &TraceArgs) -> anyhow::Result<()> {
    write_outputs(report, &args.outputs)?;
    let json_to_stdout = args
        .outputs
        .json
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let mut stdout = std::io::stdout().lock();
    if json_to_stdout {
        serde_json::to_writer_pretty(&mut stdout, report)?;
        writeln!(stdout)?;
    } else {
        report.write_text(&mut stdout, args.top)?;
    }
    stdout.flush()?;
    Ok(())
}

/// Writes the report to every file the output flags name.
fn write_outputs(report: &Report, outputs: &OutputArgs) -> anyhow::Result<()> {
    let OutputArgs {
        json,
        folded,
        flamegraph,
        pprof,
        speedscope,
        markdown,
        measure,
    } = outputs;
    let files = [
        (json, Format::Json),
        (folded, Format::Folded),
        (flamegraph, Format::Svg),
        (pprof, Format::Pprof),
        (speedscope, Format::Speedscope),
        (markdown, Format::Markdown),
    ];
    for (path, format) in files {
        let Some(path) = path.as_deref().filter(|p| p.as_os_str() != "-") else {
            continue;
        };
        write_file(path, |out| formats::render(report, format, *measure, out))?;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    render: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file =
        fs::File::create(path).with_context(|| format!("failed to create `{}`", path.display()))?;
    let mut out = BufWriter::new(file);
    render(&mut out).with_context(|| format!("failed to write `{}`", path.display()))?;
    out.flush()
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
}
