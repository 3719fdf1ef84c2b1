//! The commands: trace a running process, or start one and trace it.

use std::{fs, io::Write as _};

use anyhow::Context as _;

use crate::{
    cli::{Cli, Command, TraceArgs},
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
        (Some(pid), None) => trace_pid(pid, &cli.trace),
        (None, Some(Command::Run { trace, command })) => trace_command(&command, &trace),
        (None, None) => anyhow::bail!("nothing to trace: give `--pid PID`, or `run -- COMMAND`"),
        (Some(_), Some(_)) => unreachable!("clap rejects `--pid` with a subcommand"),
    }
}

fn options(args: &TraceArgs) -> Options {
    Options {
        interval: args.interval,
        duration: args.duration,
        quiet: args.quiet,
        sizes: MapSizes {
            ring_buffer_bytes: args.ring_buffer_mib << 20,
            stack_entries: args.stack_map_entries,
        },
    }
}

fn trace_pid(pid: u32, args: &TraceArgs) -> anyhow::Result<i32> {
    let command = target::check_pid(pid)?;
    probes::check_privileges()?;
    let mut plan = target::plan_for_pid(pid)?;
    if args.probe_at_entry {
        plan.place_at_entries();
    }
    let options = options(args);
    session::install_signal_handlers()?;

    let mut tracer = Tracer::attach(pid, command, plan, options.sizes).map_err(|err| {
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
    let report = session::run(&mut tracer, &options, &mut PidWatch { pid })?;
    write_report(&report, args)?;
    drop(tracer);
    Ok(0)
}

/// Watches a process memtrace attached to.
struct PidWatch {
    pid: u32,
}

impl Watch for PidWatch {
    fn target_gone(&mut self, _: &mut Tracer) -> bool {
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

fn trace_command(argv: &[std::ffi::OsString], args: &TraceArgs) -> anyhow::Result<i32> {
    let mut prepared = launch::prepare(argv)?;
    if args.probe_at_entry {
        prepared.plan.place_at_entries();
    }
    probes::check_privileges()?;
    let options = options(args);
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
            options.sizes,
        )?);
        Ok(())
    })?;
    let mut tracer = tracer.expect("attached before the command started");
    let mut watch = CommandWatch { launch, exit: None };
    let report = session::run(&mut tracer, &options, &mut watch)?;
    watch.launch.join();
    write_report(&report, args)?;
    drop(tracer);
    Ok(watch.exit.map_or(0, |status| status.shell_code()))
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

fn write_report(report: &Report, args: &TraceArgs) -> anyhow::Result<()> {
    let json_to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = args.json.as_deref().filter(|_| !json_to_stdout) {
        let text = serde_json::to_string_pretty(report)?;
        fs::write(path, text + "\n")
            .with_context(|| format!("failed to write the JSON report to `{}`", path.display()))?;
    }
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
