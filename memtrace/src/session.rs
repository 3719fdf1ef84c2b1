//! One tracing session: attach, drain events, tick, stop, report.
//!
//! A single thread runs the whole loop. It drains the ring buffer into the
//! [`Aggregator`], copies each new stack out of the kernel's stack map the
//! first time a site shows it, samples the target's memory every interval,
//! and stops on a signal, at the end of `--duration`, or when the target
//! exits.

use std::{
    fmt::Write as _,
    io::{IsTerminal as _, Write as _},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf, StackTraceMap};
use memtrace_common::Event;
use rustc_hash::FxHashMap;

use crate::{
    aggregate::{AGE_BUCKETS_S, Aggregator, Site, SiteKey},
    allocator::Plan,
    config::MonitorConfig,
    consumers,
    memory_map::MemoryMap,
    monitor::{Monitor, TickInput},
    probes::{KernelCounters, MapSizes, Probes},
    procfs,
    report::{self, ExitStatus, MemorySample, ProbePointSummary, Report},
    symbolize::Symbolizer,
};

/// How often the memory map may be re-read when unknown code shows up.
const MAP_REFRESH_MIN_GAP: Duration = Duration::from_millis(10);
/// Longest wait for events before draining anyway and checking timers and
/// the target. The kernel side wakes the reader only once a backlog builds
/// up, so this also bounds how late events are seen.
const POLL_SLICE: Duration = Duration::from_millis(10);
/// The window over which growth per minute is measured.
const GROWTH_WINDOW_S: f64 = 60.0;
/// The shortest span a growth rate is shown for: shorter ones extrapolate noise.
const GROWTH_MIN_SPAN_S: f64 = 10.0;

/// Settings of a session.
#[derive(Clone, Debug)]
pub struct Options {
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub quiet: bool,
    pub sizes: MapSizes,
    pub monitor: MonitorConfig,
}

/// What a session learns about the target from outside the event stream.
pub trait Watch {
    /// Called once per loop turn; returns true when the target is gone.
    fn target_gone(&mut self, tracer: &mut Tracer) -> bool;
    /// Called on SIGINT or SIGTERM; returns true to stop tracing now.
    fn on_signal(&mut self, signal: Signal) -> bool;
    /// Called once when `--duration` has passed; returns true to stop tracing now.
    fn on_deadline(&mut self) -> bool;
    /// How the target ended, if known.
    fn exit_status(&self) -> Option<ExitStatus>;
}

/// The last signal memtrace received (SIGINT or SIGTERM), or 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);
/// Whether that signal came from the terminal (the kernel) rather than `kill`.
static FROM_TERMINAL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    FROM_TERMINAL.store(code == libc::SI_KERNEL, Ordering::SeqCst);
    SIGNALLED.store(signal, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag the loop checks.
pub fn install_signal_handlers() -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe;
        // no SA_RESTART, so a blocked poll returns early.
        let done = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut())
        };
        anyhow::ensure!(done == 0, "failed to install a signal handler");
    }
    Ok(())
}

/// A signal memtrace received.
#[derive(Clone, Copy, Debug)]
pub struct Signal {
    pub number: i32,
    /// Sent by the terminal to the whole foreground process group.
    pub from_terminal: bool,
}

/// The state of a running trace.
pub struct Tracer {
    pid: u32,
    command: String,
    plan: Plan,
    probes: Probes,
    events: RingBuf<MapData>,
    stack_map: StackTraceMap<MapData>,
    aggregator: Aggregator,
    stacks: FxHashMap<i32, Vec<u64>>,
    stacks_unreadable: u64,
    memory_map: MemoryMap,
    last_map_refresh: Instant,
    /// Code was seen that the memory map does not place: re-read it soon.
    map_stale: bool,
    samples: Vec<MemorySample>,
    started: Instant,
    last_rss: u64,
    symbolizer: Symbolizer,
    analysis_window: Duration,
    /// Taken out while it runs its tick.
    monitor: Option<Monitor>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("pid", &self.pid)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// Attaches to process `pid` with the probes `plan` describes, and
    /// starts monitoring it as `options` say.
    pub fn attach(
        pid: u32,
        command: String,
        plan: Plan,
        options: &Options,
    ) -> anyhow::Result<Self> {
        let monitor = Monitor::new(options.monitor.clone(), pid)?;
        let mut probes = Probes::attach(pid, &plan, options.sizes)?;
        let events = probes.take_events()?;
        let stack_map = probes.take_stacks()?;
        let mut memory_map = MemoryMap::default();
        memory_map.refresh(pid);
        Ok(Self {
            pid,
            command,
            plan,
            probes,
            events,
            stack_map,
            aggregator: Aggregator::new(procfs::page_size()),
            stacks: FxHashMap::default(),
            stacks_unreadable: 0,
            memory_map,
            last_map_refresh: Instant::now(),
            map_stale: false,
            samples: Vec::new(),
            started: Instant::now(),
            last_rss: 0,
            symbolizer: Symbolizer::new(),
            analysis_window: options.monitor.analysis_window,
            monitor: Some(monitor),
        })
    }

    /// Gives the monitor its tick; when a snapshot is due, samples every
    /// live consumer first.
    fn monitor_tick(&mut self) {
        let Some(mut monitor) = self.monitor.take() else {
            return;
        };
        let now_s = self.started.elapsed().as_secs_f64();
        let mut sampled = Vec::new();
        if monitor.snapshot_due(now_s) {
            if self.map_stale {
                self.refresh_memory_map();
            }
            let cutoff = procfs::monotonic_ns().saturating_sub(
                self.analysis_window
                    .as_nanos()
                    .try_into()
                    .unwrap_or(u64::MAX),
            );
            let old_bytes = self.aggregator.old_bytes(cutoff);
            let samples = consumers::samples(
                self.aggregator.sites(),
                &old_bytes,
                &self.stacks,
                &self.memory_map,
                &mut self.symbolizer,
            );
            for (id, frames) in samples.frames {
                monitor.set_frames(id, frames);
            }
            sampled = samples.consumers;
        }

        let totals = self.aggregator.totals();
        let pid = self.pid;
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        monitor.tick(
            now_s,
            unix_s,
            TickInput {
                heap_bytes: totals.live_bytes,
                mapped_bytes: totals.mapped_bytes,
                status: &mut || procfs::read_status(pid).ok(),
                consumers: &mut || std::mem::take(&mut sampled),
            },
        );
        self.monitor = Some(monitor);
    }

    /// Applies every event waiting in the ring buffer; returns how many.
    pub fn drain(&mut self) -> u64 {
        let mut drained = 0;
        let mut new_sites = Vec::new();
        loop {
            // Stacks are copied out in batches, between reads, so a burst of
            // new sites does not hold up the ring buffer for long.
            let mut more = false;
            while let Some(item) = self.events.next() {
                drained += 1;
                if item.len() < size_of::<Event>() {
                    continue;
                }
                // SAFETY: the kernel side writes whole `Event`s; the length was checked.
                let event = unsafe { item.as_ptr().cast::<Event>().read_unaligned() };
                if let Some(key) = self.aggregator.apply(&event) {
                    new_sites.push(key);
                    if new_sites.len() >= 64 {
                        more = true;
                        break;
                    }
                }
            }
            self.copy_stacks(&mut new_sites);
            if !more {
                return drained;
            }
        }
    }

    fn copy_stacks(&mut self, sites: &mut Vec<SiteKey>) {
        let mut unknown_code = self.map_stale;
        for key in sites.drain(..) {
            unknown_code |= !self.memory_map.is_code(key.caller.saturating_sub(1));
            if key.stack_id < 0 || self.stacks.contains_key(&key.stack_id) {
                continue;
            }
            match self.stack_map.get(&(key.stack_id as u32), 0) {
                Ok(trace) => {
                    let frames = trace.frames().iter().map(|f| f.ip).collect();
                    self.stacks.insert(key.stack_id, frames);
                }
                Err(_) => self.stacks_unreadable += 1,
            }
        }
        self.map_stale = unknown_code;
        self.refresh_stale_map();
    }

    /// Re-reads the memory map if unplaced code was seen, at most once per
    /// [`MAP_REFRESH_MIN_GAP`].
    fn refresh_stale_map(&mut self) {
        if self.map_stale && self.last_map_refresh.elapsed() >= MAP_REFRESH_MIN_GAP {
            self.refresh_memory_map();
        }
    }

    /// Re-reads the target's memory map (a library may have been loaded).
    pub fn refresh_memory_map(&mut self) {
        self.memory_map.refresh(self.pid);
        self.last_map_refresh = Instant::now();
        self.map_stale = false;
    }

    /// Records a memory sample and returns it.
    fn sample(&mut self) -> MemorySample {
        let totals = self.aggregator.totals();
        if let Ok(status) = procfs::read_status(self.pid) {
            self.last_rss = status.rss;
        }
        let sample = MemorySample {
            t_s: self.started.elapsed().as_secs_f64(),
            rss_bytes: self.last_rss,
            heap_bytes: totals.live_bytes,
            mapped_bytes: totals.mapped_bytes,
        };
        self.samples.push(sample);
        sample
    }

    /// Traced bytes (heap and mappings) gained per minute over the last
    /// window, once enough time has passed to tell.
    fn growth_per_minute(&self) -> Option<f64> {
        let last = self.samples.last()?;
        // Samples are in time order: find the window's start without a scan.
        let start = self
            .samples
            .partition_point(|s| last.t_s - s.t_s > GROWTH_WINDOW_S);
        let first = &self.samples[start.min(self.samples.len() - 1)];
        let span = last.t_s - first.t_s;
        if span < GROWTH_MIN_SPAN_S {
            return None;
        }
        let traced = |s: &MemorySample| (s.heap_bytes + s.mapped_bytes) as f64;
        Some((traced(last) - traced(first)) / span * 60.0)
    }

    fn kernel_counters(&self) -> KernelCounters {
        self.probes.counters()
    }

    fn lost(&self) -> report::Lost {
        let KernelCounters {
            ring_buffer_full,
            stack_collisions,
            stack_failures,
            pending_full,
            returns_without_entry,
            results_unreadable,
            nested_calls: _,
            stale_calls,
        } = self.kernel_counters();
        report::Lost {
            events: ring_buffer_full + pending_full + returns_without_entry + results_unreadable,
            stacks: stack_collisions + stack_failures + self.stacks_unreadable,
            ring_buffer_full,
            calls_untracked: pending_full,
            results_unreadable,
            returns_without_entry,
            stack_collisions,
            stack_failures,
            stacks_unreadable: self.stacks_unreadable,
            stale_calls,
        }
    }

    fn status_line(&mut self, events_per_s: f64) -> String {
        let sample = self.sample();
        let totals = self.aggregator.totals();
        let lost = self.lost();
        let mut line = format!(
            "memtrace: pid {} | rss {} | heap {} ({} blocks) | mapped {} | growth {} | {:.0} events/s | lost {}",
            self.pid,
            report::bytes(sample.rss_bytes),
            report::bytes(sample.heap_bytes),
            report::count(totals.live_count),
            report::bytes(sample.mapped_bytes),
            self.growth_per_minute().map_or_else(
                || "measuring".to_owned(),
                |g| format!("{}/min", report::signed_bytes(g))
            ),
            events_per_s,
            report::count(lost.events),
        );
        if lost.stacks > 0 {
            let _ = write!(line, " (+{} stacks)", report::count(lost.stacks));
        }
        line
    }

    /// Builds the final report.
    pub fn report(&mut self, exit: Option<ExitStatus>) -> Report {
        let now_ns = procfs::monotonic_ns();
        let sites = self.aggregator.sites();
        let ages = self.aggregator.age_histograms(now_ns);
        let stacks = &self.stacks;
        let stack_of = |site: &Site| consumers::full_stack(stacks, site.key);
        let groups = consumers::group(sites, &ages, &self.memory_map, &stack_of);

        let (consumers, modules) =
            consumers::describe(groups, &mut self.symbolizer, &self.memory_map);
        let monitoring = self.monitor.as_mut().map(Monitor::finish);

        let totals = self.aggregator.totals();
        let untracked = self.aggregator.untracked();
        let counters = self.kernel_counters();
        Report {
            version: report::REPORT_VERSION,
            target: report::Target {
                pid: self.pid,
                command: self.command.clone(),
            },
            duration_s: self.started.elapsed().as_secs_f64(),
            totals: report::Totals {
                allocs: totals.allocs,
                frees: totals.frees,
                alloc_bytes: totals.alloc_bytes,
                live_bytes: totals.live_bytes,
                live_count: totals.live_count,
                mapped_bytes: totals.mapped_bytes,
                mapped_count: totals.mapped_count,
                maps: totals.maps,
                rss_bytes: procfs::read_status(self.pid).map_or(0, |s| s.rss),
            },
            lost: self.lost(),
            untracked,
            probes: report::ProbeSummary {
                heap_object: self.plan.heap_object.clone(),
                libc: self.plan.libc.clone(),
                points: self
                    .plan
                    .points
                    .iter()
                    .map(|p| ProbePointSummary {
                        function: p.kind.symbol().to_owned(),
                        path: p.path.clone(),
                        offset: p.offset,
                        skipped: p.skipped,
                        emulated: p.emulated,
                    })
                    .collect(),
                missing: self
                    .plan
                    .missing
                    .iter()
                    .map(|k| k.symbol().to_owned())
                    .collect(),
                aliases: self
                    .plan
                    .aliases
                    .iter()
                    .map(|(alias, probed)| [alias.symbol().to_owned(), probed.symbol().to_owned()])
                    .collect(),
                nested_calls: counters.nested_calls,
            },
            age_buckets_s: AGE_BUCKETS_S.to_vec(),
            consumers,
            modules,
            memory: self.samples.clone(),
            monitoring,
            tracer: {
                let (peak_rss_bytes, cpu_s) = procfs::own_usage();
                report::TracerUsage {
                    peak_rss_bytes,
                    cpu_s,
                }
            },
            exit,
        }
    }
}

/// Runs the loop until the target is gone, a signal arrives or the duration
/// ends, then builds the report. The probes stay attached until the caller
/// drops the tracer, which is slow (see [`crate::probes`]): print the report first.
pub fn run(
    tracer: &mut Tracer,
    options: &Options,
    watch: &mut dyn Watch,
) -> anyhow::Result<Report> {
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let mut next_tick = Instant::now() + options.interval;
    let mut events_since_tick = 0;
    let mut last_tick = Instant::now();
    let mut deadline = options.duration.map(|d| Instant::now() + d);
    tracer.sample();

    loop {
        let now = Instant::now();
        let wait = next_tick.saturating_duration_since(now).min(POLL_SLICE);
        wait_for_events(&tracer.events, wait)?;
        events_since_tick += tracer.drain();

        tracer.monitor_tick();
        if watch.target_gone(tracer) {
            break;
        }
        let signal = SIGNALLED.swap(0, Ordering::SeqCst);
        if signal != 0 {
            let from_terminal = FROM_TERMINAL.load(Ordering::SeqCst);
            if watch.on_signal(Signal {
                number: signal,
                from_terminal,
            }) {
                break;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            deadline = None;
            if watch.on_deadline() {
                break;
            }
        }
        if Instant::now() >= next_tick {
            let elapsed = last_tick.elapsed().as_secs_f64().max(1e-9);
            let line = tracer.status_line(events_since_tick as f64 / elapsed);
            if !options.quiet {
                print_status(&line, stderr_is_terminal);
            }
            tracer.refresh_memory_map();
            events_since_tick = 0;
            last_tick = Instant::now();
            next_tick += options.interval;
            if next_tick < last_tick {
                next_tick = last_tick + options.interval;
            }
        }
    }

    tracer.drain();
    if !options.quiet && stderr_is_terminal {
        eprintln!();
    }
    tracer.sample();
    Ok(tracer.report(watch.exit_status()))
}

fn print_status(line: &str, terminal: bool) {
    let mut stderr = std::io::stderr().lock();
    let _ = if terminal {
        write!(stderr, "\r\x1b[K{line}")
    } else {
        writeln!(stderr, "{line}")
    };
    let _ = stderr.flush();
}

/// Waits until the ring buffer has data, `timeout` passes, or a signal arrives.
fn wait_for_events(events: &RingBuf<MapData>, timeout: Duration) -> anyhow::Result<()> {
    let mut poll = libc::pollfd {
        fd: events.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&raw mut poll, 1, timeout_ms) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("failed to wait for events");
        }
    }
    Ok(())
}
