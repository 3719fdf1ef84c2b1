//! Alerts: which conditions deserve one, when to raise and resolve them, and where they go.
//!
//! The monitor turns each snapshot into *threshold* [`Condition`]s (untracked
//! bytes, the RSS-to-heap ratio, RSS, growth, a consumer's size or growth)
//! and each analysis into *pattern* conditions (a growth pattern found with
//! enough confidence). The [`Alerter`] decides what reaches the channels:
//!
//! - A condition raises one alert when it first holds and stays quiet while
//!   it keeps holding, unless its severity rises, which raises the same
//!   alert again at the new severity; when it stops holding, a `resolved`
//!   event follows.
//! - At most `per_hour` alerts go out in any hour. A condition held back by
//!   that limit is counted once as suppressed and goes out later if it still
//!   holds when there is room; one that clears first is never sent.
//!
//! Time is passed in, never read, so tests drive it with a fake clock.
//! Channels are [`Sink`]s: the console, a JSON-lines file, and (in
//! [`crate::webhook`]) an HTTP endpoint.

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{self, Write as _},
    path::Path,
};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::{
    classify::{Pattern, Severity, Verdict},
    snapshot::Snapshot,
    units::{format_bytes, format_span},
};

const MIB: u64 = 1 << 20;

/// Alert thresholds and limits; `None` turns a threshold off.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSettings {
    /// Resident bytes no traced allocation explains.
    pub untracked_bytes: Option<u64>,
    /// Resident bytes per live heap byte.
    pub rss_heap_ratio: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// Growth of the process's resident memory.
    pub growth_bytes_per_min: Option<f64>,
    /// Live bytes of any one consumer.
    pub consumer_bytes: Option<u64>,
    /// Growth of any one consumer.
    pub consumer_growth_bytes_per_min: Option<f64>,
    /// Patterns found with less confidence (0 to 100) raise no alert.
    pub min_confidence: u8,
    /// Most alerts sent in any hour.
    pub per_hour: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            untracked_bytes: Some(80 * MIB),
            rss_heap_ratio: Some(1.5),
            rss_bytes: Some(200 * MIB),
            growth_bytes_per_min: Some(5.0 * MIB as f64),
            consumer_bytes: Some(100 * MIB),
            consumer_growth_bytes_per_min: Some(2.0 * MIB as f64),
            min_confidence: 70,
            per_hour: 10,
        }
    }
}

/// Whether an alert comes from a threshold or from a growth pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    Threshold,
    Pattern,
}

/// Whether an alert starts or ends a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// The consumer an alert is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRef {
    pub id: u64,
    pub module: String,
    pub label: String,
    /// The innermost frames of its stack, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<String>,
}

/// Something that holds now and may deserve an alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Names the condition; the same key on the next check is the same condition.
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub consumer: Option<ConsumerRef>,
    pub message: String,
    pub recommendations: Vec<String>,
}

/// One alert event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Shared by an alert and its resolution.
    pub id: u64,
    /// Seconds since tracing started.
    pub t_s: f64,
    pub unix_s: u64,
    #[serde(rename = "type")]
    pub kind: AlertKind,
    pub state: AlertState,
    pub key: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerRef>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<String>,
}

impl Alert {
    /// One line for a terminal.
    #[must_use]
    pub fn line(&self) -> String {
        match self.state {
            AlertState::Firing => format!(
                "memtrace alert #{} [{}] {}{}",
                self.id,
                self.severity,
                self.message,
                self.recommendations
                    .first()
                    .map_or(String::new(), |r| format!(" (hint: {r})"))
            ),
            AlertState::Resolved => {
                format!("memtrace alert #{} resolved: {}", self.id, self.key)
            }
        }
    }
}

/// What happened to an active condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    /// Sent as alert `id`, at `severity`.
    Sent { id: u64, severity: Severity },
    /// Held back by the hourly limit.
    Suppressed,
}

/// Raises, deduplicates, resolves and rate-limits alerts.
#[derive(Debug)]
pub struct Alerter {
    per_hour: u32,
    active: FxHashMap<String, (AlertKind, Delivery)>,
    /// Times alerts were sent in the last hour.
    sent_at: VecDeque<f64>,
    next_id: u64,
    fired: u64,
    suppressed: u64,
}

impl Alerter {
    #[must_use]
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            active: FxHashMap::default(),
            sent_at: VecDeque::new(),
            next_id: 1,
            fired: 0,
            suppressed: 0,
        }
    }

    /// Takes every condition of `kind` that holds at `now_s`; returns the
    /// alerts to send: new ones, and resolutions of the ones of `kind` that
    /// no longer hold.
    pub fn update(
        &mut self,
        now_s: f64,
        unix_s: u64,
        kind: AlertKind,
        conditions: Vec<Condition>,
    ) -> Vec<Alert> {
        let mut alerts = self.resolve_cleared(now_s, unix_s, kind, &conditions);
        for condition in conditions {
            if let Some(alert) = self.raise(now_s, unix_s, condition) {
                alerts.push(alert);
            }
        }
        alerts
    }

    /// Whether the condition `key` is active: alerted (or held back) and not resolved.
    #[must_use]
    pub fn is_active(&self, key: &str) -> bool {
        self.active.contains_key(key)
    }

    /// Alerts sent so far.
    #[must_use]
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Conditions held back by the hourly limit so far.
    #[must_use]
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn resolve_cleared(
        &mut self,
        now_s: f64,
        unix_s: u64,
        kind: AlertKind,
        holding: &[Condition],
    ) -> Vec<Alert> {
        let cleared: Vec<String> = self
            .active
            .iter()
            .filter(|(key, (k, _))| *k == kind && !holding.iter().any(|c| &c.key == *key))
            .map(|(key, _)| key.clone())
            .collect();
        let mut resolved = Vec::new();
        for key in cleared {
            let Some((_, Delivery::Sent { id, .. })) = self.active.remove(&key) else {
                continue;
            };
            resolved.push(Alert {
                id,
                t_s: now_s,
                unix_s,
                kind,
                state: AlertState::Resolved,
                severity: Severity::Low,
                consumer: None,
                message: format!("`{key}` no longer holds"),
                key,
                recommendations: Vec::new(),
            });
        }
        resolved
    }

    fn raise(&mut self, now_s: f64, unix_s: u64, condition: Condition) -> Option<Alert> {
        let previous = self.active.get(&condition.key).map(|&(_, d)| d);
        let escalated = match previous {
            Some(Delivery::Sent { id, severity }) if condition.severity > severity => Some(id),
            Some(Delivery::Sent { .. }) => return None,
            _ => None,
        };
        if escalated.is_some() && !self.has_room(now_s) {
            // Tried again on the next check, while it still holds.
            return None;
        }
        if !self.has_room(now_s) {
            if previous.is_none() {
                self.suppressed += 1;
                log::debug!("alert `{}` suppressed by the hourly limit", condition.key);
            }
            self.active
                .insert(condition.key, (condition.kind, Delivery::Suppressed));
            return None;
        }

        let id = escalated.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        self.fired += 1;
        self.sent_at.push_back(now_s);
        let Condition {
            key,
            kind,
            severity,
            consumer,
            message,
            recommendations,
        } = condition;
        self.active
            .insert(key.clone(), (kind, Delivery::Sent { id, severity }));
        let message = if escalated.is_some() {
            format!("now {severity}: {message}")
        } else {
            message
        };
        Some(Alert {
            id,
            t_s: now_s,
            unix_s,
            kind,
            state: AlertState::Firing,
            key,
            severity,
            consumer,
            message,
            recommendations,
        })
    }

    fn has_room(&mut self, now_s: f64) -> bool {
        while self.sent_at.front().is_some_and(|&t| now_s - t >= 3600.0) {
            self.sent_at.pop_front();
        }
        self.sent_at.len() < self.per_hour as usize
    }
}

/// A threshold that holds keeps holding until its value falls below this
/// share of the limit, so a value hovering at the limit does not flap.
const CLEAR_SHARE: f64 = 0.9;

/// Whether `value` is over `limit`, for a condition that is (`firing`) or is
/// not already active.
fn over(value: f64, limit: f64, firing: bool) -> bool {
    if firing {
        value > limit * CLEAR_SHARE
    } else {
        value > limit
    }
}

/// The resident set below which the RSS-to-heap ratio is not judged.
pub const RATIO_MIN_RSS: u64 = 64 << 20;

/// The process-wide threshold conditions that `snapshot` meets.
/// `growth_bytes_per_min` is the resident memory's recent growth, if known;
/// `firing` says which condition keys are active (see [`Alerter::is_active`]).
#[must_use]
pub fn process_conditions(
    snapshot: &Snapshot,
    growth_bytes_per_min: Option<f64>,
    settings: &AlertSettings,
    firing: &dyn Fn(&str) -> bool,
) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(limit) = settings.untracked_bytes.filter(|&l| {
        over(
            snapshot.untracked_bytes as f64,
            l as f64,
            firing("untracked"),
        )
    }) {
        conditions.push(untracked(snapshot, limit));
    }
    // In a small process, code and libraries dominate the resident set and
    // the ratio says nothing about the heap.
    let ratio = settings
        .rss_heap_ratio
        .zip(snapshot.rss_heap_ratio)
        .filter(|_| snapshot.rss >= RATIO_MIN_RSS);
    if let Some((limit, ratio)) =
        ratio.filter(|&(limit, ratio)| over(ratio, limit, firing("rss_ratio")))
    {
        conditions.push(ratio_condition(snapshot, ratio, limit));
    }
    if let Some(limit) = settings
        .rss_bytes
        .filter(|&l| over(snapshot.rss as f64, l as f64, firing("rss")))
    {
        conditions.push(Condition {
            key: "rss".into(),
            kind: AlertKind::Threshold,
            severity: if snapshot.rss > 2 * limit { Severity::High } else { Severity::Medium },
            consumer: None,
            message: format!(
                "resident memory is {} (threshold {})",
                format_bytes(snapshot.rss as f64),
                format_bytes(limit as f64)
            ),
            recommendations: vec![
                "see which consumers hold the most live bytes in the report, and whether the untracked share is large".into(),
            ],
        });
    }
    let growth = settings.growth_bytes_per_min.zip(growth_bytes_per_min);
    if let Some((limit, rate)) = growth.filter(|&(limit, rate)| over(rate, limit, firing("growth")))
    {
        conditions.push(Condition {
            key: "growth".into(),
            kind: AlertKind::Threshold,
            severity: Severity::High,
            consumer: None,
            message: format!(
                "resident memory grows by {}/min (threshold {}/min)",
                format_bytes(rate),
                format_bytes(limit)
            ),
            recommendations: vec![
                "look at the consumers whose pattern is linear, exponential or leak".into(),
            ],
        });
    }
    conditions
}

fn untracked(snapshot: &Snapshot, limit: u64) -> Condition {
    let share = snapshot.untracked_bytes as f64 / snapshot.rss.max(1) as f64;
    Condition {
        key: "untracked".into(),
        kind: AlertKind::Threshold,
        severity: if share > 0.5 { Severity::High } else { Severity::Medium },
        consumer: None,
        message: format!(
            "{} of resident memory ({:.0}%) is not explained by traced allocations (threshold {})",
            format_bytes(snapshot.untracked_bytes as f64),
            share * 100.0,
            format_bytes(limit as f64)
        ),
        recommendations: vec![
            "allocator fragmentation or cached free memory: compare after `malloc_trim(0)`, or tune `M_ARENA_MAX`/`MALLOC_ARENA_MAX`".into(),
            "an allocator memtrace does not hook (a custom arena, jemalloc or tcmalloc linked statically, a language runtime) may hold it: check `/proc/PID/smaps` for large anonymous regions".into(),
            "memory allocated before memtrace attached is not traced: trace from the start with `memtrace run`".into(),
        ],
    }
}

fn ratio_condition(snapshot: &Snapshot, ratio: f64, limit: f64) -> Condition {
    Condition {
        key: "rss_ratio".into(),
        kind: AlertKind::Threshold,
        severity: if ratio > 2.0 * limit { Severity::High } else { Severity::Medium },
        consumer: None,
        message: format!(
            "resident memory is {ratio:.2}x the live heap ({} for {}; threshold {limit:.2}x)",
            format_bytes(snapshot.rss as f64),
            format_bytes(snapshot.heap_bytes as f64)
        ),
        recommendations: vec![
            "a high ratio with a steady heap points at fragmentation: many small long-lived blocks pin pages; try `malloc_trim(0)` or a different allocator".into(),
            "free memory the allocator keeps is counted resident: check `malloc_stats()` or the allocator's own statistics".into(),
        ],
    }
}

/// A consumer's figures as the threshold checks see them.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerStatus {
    pub consumer: ConsumerRef,
    pub live_bytes: u64,
    /// Recent growth, if known.
    pub growth_bytes_per_min: Option<f64>,
}

/// The per-consumer threshold conditions `status` meets; `firing` says
/// which condition keys are active.
#[must_use]
pub fn consumer_conditions(
    status: &ConsumerStatus,
    settings: &AlertSettings,
    firing: &dyn Fn(&str) -> bool,
) -> Vec<Condition> {
    let who = describe(&status.consumer);
    let size_key = format!("consumer_size:{}", status.consumer.id);
    let growth_key = format!("consumer_growth:{}", status.consumer.id);
    let mut conditions = Vec::new();
    let size_over = |l: &u64| over(status.live_bytes as f64, *l as f64, firing(&size_key));
    if let Some(limit) = settings.consumer_bytes.filter(size_over) {
        conditions.push(Condition {
            key: size_key.clone(),
            kind: AlertKind::Threshold,
            severity: Severity::Medium,
            consumer: Some(status.consumer.clone()),
            message: format!(
                "{who} holds {} live (threshold {})",
                format_bytes(status.live_bytes as f64),
                format_bytes(limit as f64)
            ),
            recommendations: consumer_hints(&status.consumer),
        });
    }
    let growth = settings
        .consumer_growth_bytes_per_min
        .zip(status.growth_bytes_per_min);
    if let Some((limit, rate)) =
        growth.filter(|&(limit, rate)| over(rate, limit, firing(&growth_key)))
    {
        conditions.push(Condition {
            key: growth_key.clone(),
            kind: AlertKind::Threshold,
            severity: Severity::High,
            consumer: Some(status.consumer.clone()),
            message: format!(
                "{who} grows by {}/min (threshold {}/min)",
                format_bytes(rate),
                format_bytes(limit)
            ),
            recommendations: consumer_hints(&status.consumer),
        });
    }
    conditions
}

/// The pattern condition a verdict raises, if any: growth patterns found
/// with at least the configured confidence. `consumer` is `None` for the
/// whole process.
#[must_use]
pub fn pattern_condition(
    consumer: Option<&ConsumerRef>,
    verdict: &Verdict,
    settings: &AlertSettings,
) -> Option<Condition> {
    if !verdict.pattern.is_growth() || verdict.confidence < settings.min_confidence {
        return None;
    }
    let who = consumer.map_or_else(|| "the process".to_owned(), describe);
    let subject = consumer.map_or_else(|| "process".to_owned(), |c| c.id.to_string());
    let left = verdict.time_to_limit_s.map_or(String::new(), |s| {
        format!(", reaching its limit in {}", format_span(s))
    });
    let what = match verdict.pattern {
        Pattern::Leak => "leaks",
        Pattern::Exponential => "grows exponentially",
        _ => "grows steadily",
    };
    Some(Condition {
        key: format!("pattern:{subject}:{}", verdict.pattern),
        kind: AlertKind::Pattern,
        severity: verdict.severity,
        consumer: consumer.cloned(),
        message: format!(
            "{who} {what}: {}/min over {} to {} (confidence {}%){left}",
            format_bytes(verdict.rate_bytes_per_min),
            format_span(verdict.window_s),
            format_bytes(verdict.current_bytes as f64),
            verdict.confidence
        ),
        recommendations: pattern_hints(consumer, verdict.pattern),
    })
}

fn describe(consumer: &ConsumerRef) -> String {
    format!("`{}` in `{}`", consumer.label, consumer.module)
}

fn consumer_hints(consumer: &ConsumerRef) -> Vec<String> {
    let mut hints = vec![format!(
        "review what `{}` allocates in `{}` (stack {}) and who frees it",
        consumer.label, consumer.module, consumer.id
    )];
    if !consumer.frames.is_empty() {
        hints.push(format!("top frames: {}", consumer.frames.join(" <- ")));
    }
    hints
}

fn pattern_hints(consumer: Option<&ConsumerRef>, pattern: Pattern) -> Vec<String> {
    let Some(consumer) = consumer else {
        return vec![
            "look at the consumers with a growth pattern of their own; if none has one, the growth is untracked memory (fragmentation, an unhooked allocator)".into(),
        ];
    };
    let mut hints = consumer_hints(consumer);
    hints.push(match pattern {
        Pattern::Leak => format!(
            "blocks from `{}` stay live long after allocation: look for a missing free on an error or early-return path, or a container that is only ever added to",
            consumer.label
        ),
        Pattern::Exponential => "growth that accelerates usually means a buffer that doubles or a queue whose producer outruns its consumer: check capacities and back-pressure".into(),
        _ => "old blocks are freed, so this is a growing working set: check whether it is bounded (a cache size, a queue length)".into(),
    });
    hints
}

/// A channel alerts go out on.
pub trait Sink: std::fmt::Debug {
    /// Sends one alert; a channel that fails logs the failure and carries on.
    fn send(&mut self, alert: &Alert);
}

/// Writes each alert as one line on stderr.
#[derive(Debug, Default)]
pub struct ConsoleSink;

impl Sink for ConsoleSink {
    fn send(&mut self, alert: &Alert) {
        eprintln!("{}", alert.line());
    }
}

/// Appends each alert as one JSON line to a file.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl FileSink {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file })
    }
}

impl Sink for FileSink {
    fn send(&mut self, alert: &Alert) {
        let Ok(mut line) = serde_json::to_string(alert) else {
            return;
        };
        line.push('\n');
        if let Err(err) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
        {
            log::warn!(
                "failed to write alert #{} to the alert file: {err}",
                alert.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::MemoryStatus;
    use crate::snapshot::ProcessStats;

    fn condition(key: &str) -> Condition {
        Condition {
            key: key.into(),
            kind: AlertKind::Threshold,
            severity: Severity::Medium,
            consumer: None,
            message: format!("{key} is high"),
            recommendations: Vec::new(),
        }
    }

    #[test]
    fn condition_that_persists_alerts_once_and_resolves_when_it_clears() {
        let mut alerter = Alerter::new(10);
        let first = alerter.update(0.0, 100, AlertKind::Threshold, vec![condition("rss")]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].state, AlertState::Firing);

        let again = alerter.update(30.0, 130, AlertKind::Threshold, vec![condition("rss")]);
        assert!(again.is_empty());

        let cleared = alerter.update(60.0, 160, AlertKind::Threshold, Vec::new());
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].state, AlertState::Resolved);
        assert_eq!(cleared[0].id, first[0].id);

        let back = alerter.update(90.0, 190, AlertKind::Threshold, vec![condition("rss")]);
        assert_eq!(back.len(), 1);
        assert_ne!(back[0].id, first[0].id);
    }

    #[test]
    fn condition_that_grows_more_severe_alerts_again_under_the_same_id() {
        let mut alerter = Alerter::new(10);
        let first = alerter.update(0.0, 0, AlertKind::Threshold, vec![condition("rss")]);
        let worse = Condition {
            severity: Severity::Critical,
            ..condition("rss")
        };
        let again = alerter.update(30.0, 30, AlertKind::Threshold, vec![worse.clone()]);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, first[0].id);
        assert!(
            again[0].message.starts_with("now critical: "),
            "{}",
            again[0].message
        );
        assert!(
            alerter
                .update(60.0, 60, AlertKind::Threshold, vec![worse])
                .is_empty()
        );
        // Easing back does not alert.
        assert!(
            alerter
                .update(90.0, 90, AlertKind::Threshold, vec![condition("rss")])
                .is_empty()
        );
    }

    #[test]
    fn checks_of_one_kind_do_not_resolve_alerts_of_the_other() {
        let mut alerter = Alerter::new(10);
        let pattern = Condition {
            kind: AlertKind::Pattern,
            ..condition("pattern:7")
        };
        alerter.update(0.0, 0, AlertKind::Pattern, vec![pattern]);
        let alerts = alerter.update(1.0, 1, AlertKind::Threshold, Vec::new());
        assert!(alerts.is_empty());
    }

    #[test]
    fn alerts_beyond_the_hourly_limit_are_suppressed_and_counted() {
        let mut alerter = Alerter::new(2);
        let conditions: Vec<Condition> = (0..5).map(|i| condition(&format!("c{i}"))).collect();
        let sent = alerter.update(0.0, 0, AlertKind::Threshold, conditions.clone());
        assert_eq!(sent.len(), 2);
        assert_eq!(alerter.suppressed(), 3);

        // Still holding ten minutes later: not counted twice, not sent.
        let later = alerter.update(600.0, 600, AlertKind::Threshold, conditions.clone());
        assert!(later.is_empty());
        assert_eq!(alerter.suppressed(), 3);

        // An hour after the first two, there is room again.
        let next_hour = alerter.update(3600.0, 3600, AlertKind::Threshold, conditions);
        assert_eq!(next_hour.len(), 2);
        assert_eq!(alerter.fired(), 4);
    }

    #[test]
    fn suppressed_condition_that_clears_is_never_resolved() {
        let mut alerter = Alerter::new(1);
        alerter.update(
            0.0,
            0,
            AlertKind::Threshold,
            vec![condition("a"), condition("b")],
        );
        let cleared = alerter.update(10.0, 10, AlertKind::Threshold, vec![condition("a")]);
        assert!(cleared.is_empty());
    }

    fn snapshot(rss_mib: u64, heap_mib: u64) -> Snapshot {
        let status = MemoryStatus {
            rss: rss_mib * MIB,
            ..MemoryStatus::default()
        };
        Snapshot::new(0.0, 0, status, heap_mib * MIB, 0, ProcessStats::default())
    }

    #[test]
    fn small_process_is_not_judged_by_its_ratio() {
        let conditions =
            process_conditions(&snapshot(2, 0), None, &AlertSettings::default(), &|_| false);
        assert!(conditions.iter().all(|c| c.key != "rss_ratio"));
    }

    #[test]
    fn untracked_memory_over_threshold_points_at_the_allocator() {
        let conditions =
            process_conditions(&snapshot(150, 50), None, &AlertSettings::default(), &|_| {
                false
            });
        let untracked = conditions
            .iter()
            .find(|c| c.key == "untracked")
            .expect("100 MiB untracked is over 80 MiB");
        assert!(
            untracked.message.contains("100.0 MiB"),
            "{}",
            untracked.message
        );
        assert!(
            untracked
                .recommendations
                .iter()
                .any(|r| r.contains("malloc_trim"))
        );
        assert!(conditions.iter().any(|c| c.key == "rss_ratio"));
        assert!(conditions.iter().all(|c| c.key != "rss"));
    }

    #[test]
    fn thresholds_that_are_off_never_hold() {
        let settings = AlertSettings {
            untracked_bytes: None,
            rss_heap_ratio: None,
            rss_bytes: None,
            growth_bytes_per_min: None,
            ..AlertSettings::default()
        };
        let conditions = process_conditions(&snapshot(4096, 1), Some(1e12), &settings, &|_| false);
        assert!(conditions.is_empty());
    }

    fn leak_verdict(confidence: u8) -> Verdict {
        Verdict {
            pattern: Pattern::Leak,
            confidence,
            severity: Severity::Medium,
            rate_bytes_per_min: MIB as f64,
            window_s: 1800.0,
            current_bytes: 40 * MIB,
            time_to_limit_s: None,
        }
    }

    #[test]
    fn leak_alert_names_the_module_the_label_and_the_frames() {
        let consumer = ConsumerRef {
            id: 9,
            module: "/opt/app/libcache.so".into(),
            label: "cache_insert".into(),
            frames: vec!["cache_insert".into(), "handle_request".into()],
        };
        let condition = pattern_condition(
            Some(&consumer),
            &leak_verdict(90),
            &AlertSettings::default(),
        )
        .expect("a confident leak raises an alert");
        assert!(
            condition
                .message
                .contains("`cache_insert` in `/opt/app/libcache.so` leaks")
        );
        assert!(
            condition.message.contains("1.0 MiB/min"),
            "{}",
            condition.message
        );
        let hints = condition.recommendations.join("\n");
        assert!(hints.contains("cache_insert <- handle_request"), "{hints}");
    }

    #[test]
    fn pattern_below_the_confidence_floor_raises_nothing() {
        assert!(pattern_condition(None, &leak_verdict(69), &AlertSettings::default()).is_none());
        assert!(pattern_condition(None, &leak_verdict(70), &AlertSettings::default()).is_some());
    }

    #[test]
    fn alert_file_holds_one_json_object_per_line() {
        let dir = std::env::temp_dir().join(format!("memtrace-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("alerts.jsonl");
        let mut sink = FileSink::open(&path).expect("opens");
        let mut alerter = Alerter::new(10);
        for alert in alerter.update(
            0.0,
            5,
            AlertKind::Threshold,
            vec![condition("a"), condition("b")],
        ) {
            sink.send(&alert);
        }
        let text = std::fs::read_to_string(&path).expect("reads");
        let alerts: Vec<Alert> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is an alert"))
            .collect();
        assert_eq!(alerts.len(), 2);
        assert!(text.contains("\"type\":\"threshold\""));
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }
}
