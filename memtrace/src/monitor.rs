//! The monitoring engine: snapshots, growth patterns and alerts, driven by the tracing loop.
//!
//! The tracing loop calls [`Monitor::tick`] once per turn with what it
//! already has at hand (traced heap and mapped bytes) and two closures the
//! monitor calls only when a snapshot is due: one reads the target's memory
//! status, the other samples the consumers. Every snapshot interval the
//! monitor takes a [`Snapshot`], extends the series of the process and of
//! each consumer, stores and streams them, and checks the thresholds. Every
//! analysis interval it classifies each series over the analysis window and
//! raises pattern alerts. [`Monitor::finish`] returns a [`MonitorSummary`]
//! for the final report.
//!
//! Memory stays bounded: a series keeps only the points inside the analysis
//! window (and never more than [`MAX_POINTS`]), a consumer not seen for a
//! window is forgotten, and at most [`MAX_CONSUMERS`] are followed, the
//! smallest giving way to a new one.
//!
//! The process series is its resident memory, classified against the
//! memory limit (`memory_limit`, else the cgroup's, else what is available);
//! it carries no old bytes, so the process as a whole is called linear or
//! exponential, never a leak: leaks are found per consumer. A consumer's
//! series is classified against the consumer size threshold.
//!
//! With a data directory, a restarted memtrace that finds snapshots of the
//! same process (the same start time) continues the process's series from
//! them. Consumer ids are only stable within one run, so consumer series
//! start afresh.

use std::{collections::VecDeque, fmt::Write as _, io, path::PathBuf};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::{
    alerts::{
        self, Alert, AlertKind, Alerter, Condition, ConsoleSink, ConsumerRef, ConsumerStatus,
        FileSink, Sink,
    },
    classify::{self, MIN_POINTS, Point, Verdict},
    config::MonitorConfig,
    events_out::{Event, EventStream},
    procfs::MemoryStatus,
    snapshot::{self, ConsumerSample, Snapshot},
    store::{Store, StoreError},
    units,
};

/// Most points kept in any one series.
pub const MAX_POINTS: usize = 4096;
/// Most consumers followed at once.
pub const MAX_CONSUMERS: usize = 256;
/// How long `finish` waits for queued webhook posts.
#[cfg(feature = "webhook")]
const WEBHOOK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What the tracing loop gives the monitor each tick.
///
/// The two closures are called only when a snapshot is due (every snapshot
/// interval, not every tick), so the loop pays for reading `/proc` and for
/// walking its sites only then.
pub struct TickInput<'a> {
    /// Live heap bytes allocated while tracing.
    pub heap_bytes: u64,
    /// Anonymous mapping bytes mapped while tracing.
    pub mapped_bytes: u64,
    /// The target's memory status (`procfs::read_status`); `None` when it
    /// could not be read, which skips the snapshot.
    pub status: &'a mut dyn FnMut() -> Option<MemoryStatus>,
    /// One sample per consumer (each stack, and each module), with ids that
    /// stay the same from one call to the next.
    pub consumers: &'a mut dyn FnMut() -> Vec<ConsumerSample>,
}

impl std::fmt::Debug for TickInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickInput")
            .field("heap_bytes", &self.heap_bytes)
            .field("mapped_bytes", &self.mapped_bytes)
            .finish_non_exhaustive()
    }
}

/// Errors setting up the monitor's outputs.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("failed to open the event stream `{}`", .path.display())]
    Events {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to open the alert file `{}`", .path.display())]
    AlertFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[cfg(feature = "webhook")]
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    #[cfg(not(feature = "webhook"))]
    #[error("`--webhook` needs memtrace built with the `webhook` feature")]
    NoWebhook,
}

/// A consumer's latest pattern, for the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerPattern {
    pub consumer: ConsumerRef,
    pub live_bytes: u64,
    pub verdict: Verdict,
}

/// What the monitor found, for the final report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorSummary {
    /// The process's latest pattern (of its resident memory).
    pub process: Option<Verdict>,
    /// Consumers with a pattern: growth first, most severe first, then largest.
    pub consumers: Vec<ConsumerPattern>,
    pub snapshots: u64,
    /// Snapshots found in the data directory from earlier runs.
    pub previous_snapshots: usize,
    pub alerts_fired: u64,
    /// Alerts held back by the hourly limit.
    pub alerts_suppressed: u64,
    /// Webhook posts that failed after every retry, or were dropped.
    pub webhook_failures: u64,
    /// Bytes written to the data directory.
    pub bytes_stored: u64,
}

impl MonitorSummary {
    /// The summary for people: the process's pattern, the `top` consumers
    /// with a pattern, and what the alerts did.
    #[must_use]
    pub fn text(&self, top: usize) -> String {
        let mut s = String::from("\nmonitoring:\n");
        if let Some(process) = &self.process {
            let _ = writeln!(s, "  process: {}", describe_verdict(process));
        }
        for pattern in self.consumers.iter().take(top) {
            let ConsumerRef { module, label, .. } = &pattern.consumer;
            let _ = writeln!(
                s,
                "  `{label}` in `{module}`: {}",
                describe_verdict(&pattern.verdict)
            );
        }
        let _ = writeln!(
            s,
            "  {} snapshots ({} from earlier runs), {} alerts sent, {} held back by the hourly limit, {} webhook failures",
            self.snapshots,
            self.previous_snapshots,
            self.alerts_fired,
            self.alerts_suppressed,
            self.webhook_failures
        );
        s
    }
}

/// `leak (confidence 82%, high): +1.0 MiB/min over 30m, 50.0 MiB`.
fn describe_verdict(verdict: &Verdict) -> String {
    format!(
        "{} (confidence {}%, {}): {}{}/min over {}, {}",
        verdict.pattern,
        verdict.confidence,
        verdict.severity,
        if verdict.rate_bytes_per_min >= 0.0 {
            "+"
        } else {
            "-"
        },
        units::format_bytes(verdict.rate_bytes_per_min.abs()),
        units::format_span(verdict.window_s),
        units::format_bytes(verdict.current_bytes as f64)
    )
}

/// A consumer being followed.
#[derive(Debug)]
struct Tracked {
    consumer: ConsumerRef,
    series: VecDeque<Point>,
    live_bytes: u64,
    last_seen_s: f64,
    verdict: Option<Verdict>,
}

/// The monitoring engine.
pub struct Monitor {
    config: MonitorConfig,
    pid: u32,
    alerter: Alerter,
    sinks: Vec<Box<dyn Sink + Send>>,
    #[cfg(feature = "webhook")]
    webhook: Option<crate::webhook::Webhook>,
    webhook_stats: Option<std::sync::Arc<crate::webhook::WebhookStats>>,
    store: Option<Store>,
    store_errors: u64,
    events: Option<EventStream>,
    process: VecDeque<Point>,
    consumers: FxHashMap<u64, Tracked>,
    frames: FxHashMap<u64, Vec<String>>,
    history: Vec<Snapshot>,
    last_snapshot_s: Option<f64>,
    last_analysis_s: Option<f64>,
    latest: Option<Snapshot>,
    process_verdict: Option<Verdict>,
    snapshots: u64,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("pid", &self.pid)
            .field("snapshots", &self.snapshots)
            .field("consumers", &self.consumers.len())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor of process `pid` that sends alerts and events where
    /// `config` says. Opens the data directory and loads its history.
    pub fn new(config: MonitorConfig, pid: u32) -> Result<Self, MonitorError> {
        let store = match &config.data_dir {
            Some(dir) => Some(Store::open(dir, config.retention, config.max_data_bytes)?),
            None => None,
        };
        let history = match &store {
            Some(store) => store.load_snapshots()?,
            None => Vec::new(),
        };
        let events = match &config.events {
            Some(path) => Some(
                EventStream::open(path).map_err(|source| MonitorError::Events {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let mut monitor = Self {
            alerter: Alerter::new(config.alerts.per_hour),
            sinks: Vec::new(),
            #[cfg(feature = "webhook")]
            webhook: None,
            webhook_stats: None,
            store,
            store_errors: 0,
            events,
            process: VecDeque::new(),
            consumers: FxHashMap::default(),
            frames: FxHashMap::default(),
            history,
            last_snapshot_s: None,
            last_analysis_s: None,
            latest: None,
            process_verdict: None,
            snapshots: 0,
            pid,
            config,
        };
        monitor.open_channels()?;
        Ok(monitor)
    }

    fn open_channels(&mut self) -> Result<(), MonitorError> {
        if self.config.console_alerts {
            self.sinks.push(Box::new(ConsoleSink));
        }
        if let Some(path) = &self.config.alert_file {
            let sink = FileSink::open(path).map_err(|source| MonitorError::AlertFile {
                path: path.clone(),
                source,
            })?;
            self.sinks.push(Box::new(sink));
        }
        if let Some(webhook) = &self.config.webhook {
            #[cfg(feature = "webhook")]
            {
                let webhook = crate::webhook::Webhook::start(webhook)?;
                self.webhook_stats = Some(webhook.stats());
                self.webhook = Some(webhook);
            }
            #[cfg(not(feature = "webhook"))]
            {
                let _ = webhook;
                return Err(MonitorError::NoWebhook);
            }
        }
        Ok(())
    }

    /// Snapshots loaded from the data directory when the monitor started.
    #[must_use]
    pub fn history(&self) -> &[Snapshot] {
        &self.history
    }

    /// The latest snapshot taken.
    #[must_use]
    pub fn latest(&self) -> Option<&Snapshot> {
        self.latest.as_ref()
    }

    /// Gives the innermost frames of consumer `id`'s stack, for alerts about it.
    pub fn set_frames(&mut self, id: u64, frames: Vec<String>) {
        if let Some(tracked) = self.consumers.get_mut(&id) {
            tracked.consumer.frames.clone_from(&frames);
        }
        self.frames.insert(id, frames);
    }

    /// Whether the next tick will take a snapshot.
    #[must_use]
    pub fn snapshot_due(&self, now_s: f64) -> bool {
        self.last_snapshot_s
            .is_none_or(|last| now_s - last >= self.config.snapshot_interval.as_secs_f64())
    }

    /// Takes a snapshot and runs an analysis when they are due; returns the
    /// alerts raised or resolved. `now_s` is seconds since tracing started,
    /// `unix_s` the wall-clock time.
    pub fn tick(&mut self, now_s: f64, unix_s: u64, input: TickInput<'_>) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.snapshot_due(now_s)
            && let Some(snapshot) = self.take_snapshot(now_s, unix_s, input)
        {
            alerts = self.check_thresholds(&snapshot);
            self.latest = Some(snapshot);
        }
        let interval = self.config.analysis_interval.as_secs_f64();
        let first = *self.last_analysis_s.get_or_insert(now_s);
        if now_s - first >= interval {
            alerts.extend(self.analyse(now_s, unix_s));
        }
        alerts
    }

    /// Runs a last analysis and sums up. Waits briefly for queued webhook posts.
    pub fn finish(&mut self) -> MonitorSummary {
        if let (Some(latest), Some(analysed)) = (&self.latest, self.last_analysis_s)
            && latest.t_s > analysed
        {
            let (t_s, unix_s) = (latest.t_s, latest.unix_s);
            self.analyse(t_s, unix_s);
        }
        #[cfg(feature = "webhook")]
        if let Some(webhook) = &mut self.webhook {
            webhook.close(WEBHOOK_GRACE);
        }
        MonitorSummary {
            process: self.process_verdict,
            consumers: self.consumer_patterns(),
            snapshots: self.snapshots,
            previous_snapshots: self.history.len(),
            alerts_fired: self.alerter.fired(),
            alerts_suppressed: self.alerter.suppressed(),
            webhook_failures: self.webhook_stats.as_ref().map_or(0, |s| s.failures()),
            bytes_stored: self.store.as_ref().map_or(0, Store::bytes_written),
        }
    }

    fn take_snapshot(&mut self, now_s: f64, unix_s: u64, input: TickInput<'_>) -> Option<Snapshot> {
        let TickInput {
            heap_bytes,
            mapped_bytes,
            status,
            consumers,
        } = input;
        let status = status()?;
        let process = snapshot::read_process_stats(self.pid);
        let snapshot = Snapshot::new(now_s, unix_s, status, heap_bytes, mapped_bytes, process);
        if self.snapshots == 0 {
            self.continue_history(&snapshot);
        }
        self.snapshots += 1;
        self.last_snapshot_s = Some(now_s);

        let window = self.config.analysis_window.as_secs_f64();
        push_point(
            &mut self.process,
            now_s - window,
            point(now_s, snapshot.rss, None),
        );
        let samples = consumers();
        self.follow(now_s, &samples);

        if let Some(store) = &mut self.store {
            let stored = store
                .record_snapshot(&snapshot)
                .and_then(|()| store.record_consumers(now_s, unix_s, &samples));
            note_store_error(&mut self.store_errors, stored);
        }
        if let Some(events) = &mut self.events {
            events.emit(&Event::Snapshot(&snapshot));
        }
        Some(snapshot)
    }

    /// Seeds the process series with stored snapshots of the same process.
    fn continue_history(&mut self, first: &Snapshot) {
        let window = self.config.analysis_window.as_secs_f64();
        for point in continued_points(&self.history, first, window) {
            push_point(&mut self.process, first.t_s - window, point);
        }
    }

    /// Extends each consumer's series; forgets those gone for a window.
    fn follow(&mut self, now_s: f64, samples: &[ConsumerSample]) {
        let window = self.config.analysis_window.as_secs_f64();
        for sample in samples {
            if !self.consumers.contains_key(&sample.id) {
                self.make_room();
                let consumer = ConsumerRef {
                    id: sample.id,
                    module: sample.module.clone(),
                    label: sample.label.clone(),
                    frames: self.frames.get(&sample.id).cloned().unwrap_or_default(),
                };
                self.consumers.insert(
                    sample.id,
                    Tracked {
                        consumer,
                        series: VecDeque::new(),
                        live_bytes: 0,
                        last_seen_s: now_s,
                        verdict: None,
                    },
                );
            }
            let Some(tracked) = self.consumers.get_mut(&sample.id) else {
                continue;
            };
            tracked.live_bytes = sample.live_bytes;
            tracked.last_seen_s = now_s;
            let p = point(now_s, sample.live_bytes, Some(sample.old_bytes));
            push_point(&mut tracked.series, now_s - window, p);
        }
        self.consumers
            .retain(|_, t| now_s - t.last_seen_s <= window);
    }

    /// Forgets the smallest consumer when the table is full.
    fn make_room(&mut self) {
        if self.consumers.len() < MAX_CONSUMERS {
            return;
        }
        let smallest = self
            .consumers
            .iter()
            .min_by_key(|(_, t)| t.live_bytes)
            .map(|(&id, _)| id);
        if let Some(id) = smallest {
            self.consumers.remove(&id);
        }
    }

    fn check_thresholds(&mut self, snapshot: &Snapshot) -> Vec<Alert> {
        let settings = &self.config.alerts;
        let span = self.rate_span();
        let firing = |key: &str| self.alerter.is_active(key);
        let growth = recent_rate(&self.process, span);
        let mut conditions = alerts::process_conditions(snapshot, growth, settings, &firing);
        for tracked in self.consumers.values() {
            if tracked.last_seen_s < snapshot.t_s {
                continue;
            }
            let status = ConsumerStatus {
                consumer: tracked.consumer.clone(),
                live_bytes: tracked.live_bytes,
                growth_bytes_per_min: recent_rate(&tracked.series, span),
            };
            conditions.extend(alerts::consumer_conditions(&status, settings, &firing));
        }
        let alerts = self.alerter.update(
            snapshot.t_s,
            snapshot.unix_s,
            AlertKind::Threshold,
            conditions,
        );
        self.dispatch(&alerts);
        alerts
    }

    /// The span recent growth is measured over: an analysis interval, and
    /// at least five snapshots.
    fn rate_span(&self) -> f64 {
        let snapshot = self.config.snapshot_interval.as_secs_f64();
        self.config
            .analysis_interval
            .as_secs_f64()
            .max(5.0 * snapshot)
    }

    fn analyse(&mut self, now_s: f64, unix_s: u64) -> Vec<Alert> {
        self.last_analysis_s = Some(now_s);
        let settings = &self.config.alerts;
        let rss = self.latest.as_ref().map_or(0, |s| s.rss);
        let limit = self
            .config
            .memory_limit
            .or_else(|| snapshot::read_memory_limit(self.pid, rss));

        let mut conditions: Vec<Condition> = Vec::new();
        if self.process.len() >= MIN_POINTS {
            let verdict = classify::classify(self.process.make_contiguous(), limit);
            emit_pattern(self.events.as_mut(), now_s, unix_s, None, &verdict);
            conditions.extend(alerts::pattern_condition(None, &verdict, settings));
            self.process_verdict = Some(verdict);
        }
        for tracked in self.consumers.values_mut() {
            if tracked.series.len() < MIN_POINTS {
                continue;
            }
            let verdict =
                classify::classify(tracked.series.make_contiguous(), settings.consumer_bytes);
            let changed = tracked.verdict.is_none_or(|v| v.pattern != verdict.pattern);
            if changed || verdict.pattern.is_growth() {
                emit_pattern(
                    self.events.as_mut(),
                    now_s,
                    unix_s,
                    Some(&tracked.consumer),
                    &verdict,
                );
            }
            conditions.extend(alerts::pattern_condition(
                Some(&tracked.consumer),
                &verdict,
                settings,
            ));
            tracked.verdict = Some(verdict);
        }

        if let Some(store) = &mut self.store {
            note_store_error(&mut self.store_errors, store.prune(unix_s).map(drop));
        }
        let alerts = self
            .alerter
            .update(now_s, unix_s, AlertKind::Pattern, conditions);
        self.dispatch(&alerts);
        alerts
    }

    fn dispatch(&mut self, alerts: &[Alert]) {
        for alert in alerts {
            for sink in &mut self.sinks {
                sink.send(alert);
            }
            #[cfg(feature = "webhook")]
            if let Some(webhook) = &mut self.webhook {
                webhook.send(alert);
            }
            if let Some(store) = &mut self.store {
                note_store_error(&mut self.store_errors, store.record_alert(alert));
            }
            if let Some(events) = &mut self.events {
                events.emit(&Event::Alert { alert });
            }
        }
    }

    fn consumer_patterns(&self) -> Vec<ConsumerPattern> {
        let mut patterns: Vec<ConsumerPattern> = self
            .consumers
            .values()
            .filter_map(|t| {
                Some(ConsumerPattern {
                    consumer: t.consumer.clone(),
                    live_bytes: t.live_bytes,
                    verdict: t.verdict?,
                })
            })
            .collect();
        patterns.sort_by(|a, b| {
            let key = |p: &ConsumerPattern| {
                (
                    p.verdict.pattern.is_growth(),
                    p.verdict.severity,
                    p.live_bytes,
                )
            };
            key(b).cmp(&key(a))
        });
        patterns
    }
}

fn point(t_s: f64, bytes: u64, old_bytes: Option<u64>) -> Point {
    Point {
        t_s,
        bytes,
        old_bytes,
    }
}

/// Appends `point`, dropping points before `since` and beyond [`MAX_POINTS`].
fn push_point(series: &mut VecDeque<Point>, since: f64, point: Point) {
    series.push_back(point);
    while series.front().is_some_and(|p| p.t_s < since) || series.len() > MAX_POINTS {
        series.pop_front();
    }
}

/// Bytes per minute over the last `span_s` seconds of `series`, by least
/// squares; `None` with fewer than three points there.
fn recent_rate(series: &VecDeque<Point>, span_s: f64) -> Option<f64> {
    let last = series.back()?.t_s;
    let recent: Vec<(f64, f64)> = series
        .iter()
        .filter(|p| last - p.t_s <= span_s)
        .map(|p| (p.t_s, p.bytes as f64))
        .collect();
    if recent.len() < 3 {
        return None;
    }
    let n = recent.len() as f64;
    let mean_t = recent.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_y = recent.iter().map(|(_, y)| y).sum::<f64>() / n;
    let covariance: f64 = recent
        .iter()
        .map(|(t, y)| (t - mean_t) * (y - mean_y))
        .sum();
    let variance: f64 = recent.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance * 60.0)
}

/// Points for the stored snapshots of the process `first` was taken of
/// (the same start time, to the second or so), within `window_s` before
/// it, on `first`'s clock.
#[must_use]
pub fn continued_points(history: &[Snapshot], first: &Snapshot, window_s: f64) -> Vec<Point> {
    let started = |s: &Snapshot| s.uptime_s.map(|up| s.unix_s as f64 - up);
    let Some(start) = started(first) else {
        return Vec::new();
    };
    history
        .iter()
        .filter(|s| started(s).is_some_and(|other| (other - start).abs() <= 2.0))
        .filter(|s| s.unix_s < first.unix_s && ((first.unix_s - s.unix_s) as f64) <= window_s)
        .map(|s| point(first.t_s - (first.unix_s - s.unix_s) as f64, s.rss, None))
        .collect()
}

fn emit_pattern(
    events: Option<&mut EventStream>,
    t_s: f64,
    unix_s: u64,
    consumer: Option<&ConsumerRef>,
    verdict: &Verdict,
) {
    if let Some(events) = events {
        events.emit(&Event::Pattern {
            t_s,
            unix_s,
            consumer,
            verdict,
        });
    }
}

/// Counts a failed write to the data directory; warns about the first.
fn note_store_error(errors: &mut u64, result: Result<(), StoreError>) {
    if let Err(err) = result {
        *errors += 1;
        if *errors == 1 {
            log::warn!("the data directory is not being kept up to date: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::*;
    use crate::{alerts::AlertState, classify::Pattern};

    const MIB: u64 = 1 << 20;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("memtrace-monitor-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("creates");
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn quiet_config() -> MonitorConfig {
        MonitorConfig {
            console_alerts: false,
            memory_limit: Some(4096 * MIB),
            ..MonitorConfig::default()
        }
    }

    /// A leaking consumer (1 MiB a minute, nothing freed), a cache that
    /// fills for ten minutes then holds, and a steady one.
    fn samples(t: f64) -> Vec<ConsumerSample> {
        let window = 1800.0;
        let leak = |t: f64| 10 * MIB + (t.max(0.0) / 60.0 * MIB as f64) as u64;
        let cache = |t: f64| 5 * MIB + ((t.clamp(0.0, 600.0) / 600.0) * 40.0 * MIB as f64) as u64;
        vec![
            ConsumerSample {
                id: 1,
                module: "/opt/app/libsession.so".into(),
                label: "session_cache_put".into(),
                live_bytes: leak(t),
                live_count: 100,
                old_bytes: if t > window { leak(t - window) } else { 0 },
            },
            ConsumerSample {
                id: 2,
                module: "/opt/app/server".into(),
                label: "lru_insert".into(),
                live_bytes: cache(t),
                live_count: 10,
                old_bytes: if t > window { cache(t - window) } else { 0 },
            },
            ConsumerSample {
                id: 3,
                module: "/opt/app/server".into(),
                label: "buffers".into(),
                live_bytes: 8 * MIB + ((t / 7.0).sin() * 50_000.0) as u64,
                live_count: 4,
                old_bytes: 6 * MIB,
            },
        ]
    }

    /// Ticks every `step` seconds from `from` to `to`; returns every alert.
    fn run(monitor: &mut Monitor, from: f64, to: f64, step: f64) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut t = from;
        while t <= to {
            let current = samples(t);
            let heap: u64 = current.iter().map(|s| s.live_bytes).sum();
            let mut status = || {
                Some(MemoryStatus {
                    rss: heap + 20 * MIB,
                    rss_anon: heap + 10 * MIB,
                    rss_file: 10 * MIB,
                    rss_shmem: 0,
                    threads: 3,
                })
            };
            let mut consumers = || samples(t);
            let input = TickInput {
                heap_bytes: heap,
                mapped_bytes: 0,
                status: &mut status,
                consumers: &mut consumers,
            };
            alerts.extend(monitor.tick(t, 1_796_256_000 + t as u64, input));
            t += step;
        }
        alerts
    }

    #[test]
    fn leaking_consumer_ends_with_a_leak_alert_naming_its_module_and_label() {
        let dir = TempDir::new("leak");
        let config = MonitorConfig {
            alert_file: Some(dir.0.join("alerts.jsonl")),
            ..quiet_config()
        };
        let mut monitor = Monitor::new(config, 0).expect("starts");
        monitor.set_frames(1, vec!["session_cache_put".into(), "handle_login".into()]);
        let alerts = run(&mut monitor, 0.0, 4200.0, 5.0);

        let leak = alerts
            .iter()
            .find(|a| a.key == "pattern:1:leak")
            .expect("the leak raises a pattern alert");
        assert!(
            leak.message
                .contains("`session_cache_put` in `/opt/app/libsession.so` leaks"),
            "{}",
            leak.message
        );
        assert!(
            leak.recommendations
                .iter()
                .any(|r| r.contains("handle_login"))
        );
        let cache_leaks = alerts.iter().filter(|a| a.key == "pattern:2:leak").count();
        assert_eq!(cache_leaks, 0, "{alerts:#?}");

        let summary = monitor.finish();
        let text = summary.text(5);
        assert!(
            text.contains("`session_cache_put` in `/opt/app/libsession.so`: leak (confidence"),
            "{text}"
        );
        let first = &summary.consumers[0];
        assert_eq!(
            (first.consumer.id, first.verdict.pattern),
            (1, Pattern::Leak)
        );
        let cache = summary
            .consumers
            .iter()
            .find(|c| c.consumer.id == 2)
            .expect("followed");
        assert_eq!(cache.verdict.pattern, Pattern::Stable);
        assert!(summary.alerts_fired >= 1);

        let written = std::fs::read_to_string(dir.0.join("alerts.jsonl")).expect("alert file");
        assert!(written.contains("session_cache_put"));
    }

    #[test]
    fn snapshots_and_analyses_run_at_their_intervals() {
        let mut monitor = Monitor::new(quiet_config(), 0).expect("starts");
        run(&mut monitor, 0.0, 599.0, 1.0);
        // Snapshots at 0, 30, ..., 570 s.
        assert_eq!(monitor.snapshots, 20);
        assert_eq!(monitor.latest().map(|s| s.t_s), Some(570.0));
        assert_eq!(monitor.last_analysis_s, Some(480.0));
    }

    #[test]
    fn series_stay_within_the_window() {
        let config = MonitorConfig {
            analysis_window: Duration::from_mins(10),
            ..quiet_config()
        };
        let mut monitor = Monitor::new(config, 0).expect("starts");
        run(&mut monitor, 0.0, 7200.0, 30.0);
        assert!(monitor.process.len() <= 21, "{}", monitor.process.len());
        assert!(monitor.consumers.values().all(|t| t.series.len() <= 21));
    }

    #[test]
    fn threshold_alert_resolves_when_the_condition_clears() {
        let config = MonitorConfig {
            alerts: alerts::AlertSettings {
                consumer_bytes: Some(30 * MIB),
                ..alerts::AlertSettings::default()
            },
            ..quiet_config()
        };
        let mut monitor = Monitor::new(config, 0).expect("starts");
        // The cache passes 30 MiB at about 375 s.
        let alerts = run(&mut monitor, 0.0, 900.0, 30.0);
        let over: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.key == "consumer_size:2")
            .collect();
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].state, AlertState::Firing);
        assert!(
            over[0]
                .message
                .contains("`lru_insert` in `/opt/app/server`")
        );
    }

    #[test]
    fn restarted_monitor_continues_the_history_in_its_data_directory() {
        let dir = TempDir::new("restart");
        let config = MonitorConfig {
            data_dir: Some(dir.0.clone()),
            ..quiet_config()
        };
        let mut monitor = Monitor::new(config.clone(), 0).expect("starts");
        run(&mut monitor, 0.0, 600.0, 30.0);
        let summary = monitor.finish();
        assert!(summary.bytes_stored > 0);
        drop(monitor);

        let monitor = Monitor::new(config, 0).expect("restarts");
        assert_eq!(monitor.history().len(), 21);
    }

    #[test]
    fn history_of_the_same_process_continues_and_other_processes_do_not() {
        let at = |unix_s: u64, up: f64, rss: u64| Snapshot {
            unix_s,
            uptime_s: Some(up),
            rss,
            ..Snapshot::default()
        };
        // This process started at unix 1000; another one at 5000.
        let history = [at(1100, 100.0, 1), at(1200, 200.0, 2), at(5100, 100.0, 9)];
        let first = Snapshot {
            t_s: 0.0,
            ..at(1300, 300.0, 3)
        };
        let points = continued_points(&history, &first, 1800.0);
        let times: Vec<f64> = points.iter().map(|p| p.t_s).collect();
        assert_eq!(times, [-200.0, -100.0]);
        assert!(continued_points(&history, &first, 150.0).len() == 1);
    }

    #[test]
    fn event_stream_gets_snapshots_patterns_and_alerts() {
        let dir = TempDir::new("events");
        let path = dir.0.join("events.jsonl");
        let config = MonitorConfig {
            events: Some(path.clone()),
            ..quiet_config()
        };
        let mut monitor = Monitor::new(config, 0).expect("starts");
        run(&mut monitor, 0.0, 4200.0, 30.0);
        drop(monitor);
        let text = std::fs::read_to_string(Path::new(&path)).expect("events");
        for kind in [
            "\"type\":\"snapshot\"",
            "\"type\":\"pattern\"",
            "\"type\":\"alert\"",
        ] {
            assert!(text.contains(kind), "no {kind}");
        }
    }
}
