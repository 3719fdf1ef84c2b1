//! Leak checks for CI: budgets over a report, judged by pure functions.
//!
//! A leak site is a distinct allocation stack still holding memory when the
//! report was written; for `memtrace run`, that is at the command's exit.
//! Sites are told apart across runs by their symbolized frames, each frame
//! its function (or `?`) and its module's file name: never addresses, which
//! address-space layout randomization moves on every run.
//!
//! [`evaluate`] sorts every site into suppressed, known to the baseline, new,
//! or grown past the baseline, counts new sites in full and grown ones by
//! their growth, and sets the result against the budgets: leaked bytes,
//! leaked blocks and regions, and memory growth per minute. A check without
//! any leak budget allows no leaked byte at all.

pub mod output;
pub mod suppressions;

use std::{fmt, io, path::PathBuf, time::Duration};

use anyhow::Context as _;
use rustc_hash::FxHashMap;

pub use self::suppressions::Suppressions;
use crate::{
    cli::parse_duration,
    formats::{load_report, module_name, units},
    report::{MemorySample, Report, bytes, count, counted},
    symbolize::Frame,
};

/// Exit code of a check that passed.
pub const EXIT_PASS: i32 = 0;
/// Exit code of a check whose budget was broken.
pub const EXIT_FAIL: i32 = 1;
/// Exit code when memtrace itself failed (a file unreadable, malformed).
pub const EXIT_ERROR: i32 = 2;

/// Arguments of `memtrace check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Judge a JSON report saved earlier (`--json FILE`) instead of tracing.
    #[arg(long = "report", value_name = "REPORT.json")]
    pub input: Option<PathBuf>,

    /// Fail when the leaked bytes exceed this (e.g. `0`, `64KiB`, `10MB`);
    /// with neither this nor `--max-leaked-count`, no leaked byte is allowed.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_leaked_bytes: Option<u64>,

    /// Fail when more blocks and regions than this leaked.
    #[arg(long, value_name = "N")]
    pub max_leaked_count: Option<u64>,

    /// Fail when heap and mapped memory grew faster than this per minute
    /// over any `--growth-window` of the run.
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_growth: Option<u64>,

    /// The window growth is measured over (runs shorter than it are measured whole).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub growth_window: Duration,

    /// Ignore the memory timeline before this time (start-up is not growth).
    #[arg(long, default_value = "0s", value_parser = parse_warmup, value_name = "DURATION")]
    pub warmup: Duration,

    /// LeakSanitizer-style suppressions: `leak:PATTERN` lines.
    #[arg(long, value_name = "FILE")]
    pub suppressions: Option<PathBuf>,

    /// A previous JSON report: fail only on sites that are new or grew.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// How far, in percent of its baseline bytes, a known site may grow.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    pub baseline_margin: f64,

    /// Also write the verdict as `JUnit` XML, one test case per leak site.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Also print GitHub Actions `::error` annotations for failing sites.
    #[arg(long)]
    pub github: bool,
}

/// The budgets a report is checked against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckOptions {
    pub max_leaked_bytes: Option<u64>,
    pub max_leaked_count: Option<u64>,
    /// Bytes per minute.
    pub max_growth: Option<u64>,
    pub growth_window: Duration,
    pub warmup: Duration,
    /// Percent of a known site's baseline bytes it may grow by.
    pub baseline_margin: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_leaked_bytes: None,
            max_leaked_count: None,
            max_growth: None,
            growth_window: Duration::from_mins(1),
            warmup: Duration::ZERO,
            baseline_margin: 10.0,
        }
    }
}

impl From<&CheckArgs> for CheckOptions {
    fn from(args: &CheckArgs) -> Self {
        CheckOptions {
            max_leaked_bytes: args.max_leaked_bytes,
            max_leaked_count: args.max_leaked_count,
            max_growth: args.max_growth,
            growth_window: args.growth_window,
            warmup: args.warmup,
            baseline_margin: args.baseline_margin,
        }
    }
}

/// Where a site's memory was allocated, the same across runs of one build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteKey {
    /// `heap` or `mmap`.
    pub kind: String,
    /// Innermost first: each frame's function (`?` when unknown) and module file name.
    pub frames: Vec<(String, String)>,
}

impl SiteKey {
    /// The key of a stack of `kind`.
    #[must_use]
    pub fn new(kind: &str, frames: &[Frame]) -> SiteKey {
        SiteKey {
            kind: kind.to_owned(),
            frames: frames
                .iter()
                .map(|f| {
                    let function = f.function.clone().unwrap_or_else(|| "?".to_owned());
                    (function, module_name(&f.module).to_owned())
                })
                .collect(),
        }
    }
}

impl fmt::Display for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.kind)?;
        for (i, (function, module)) in self.frames.iter().enumerate() {
            let separator = if i == 0 { "" } else { ";" };
            write!(f, "{separator}{function}@{module}")?;
        }
        Ok(())
    }
}

/// How a leak site was judged.
#[derive(Clone, Debug, PartialEq)]
pub enum SiteStatus {
    /// A suppression matched; the pattern as written.
    Suppressed(String),
    /// The baseline has the site, and it grew no more than the margin.
    BaselineKnown { baseline_bytes: u64 },
    /// Not in the baseline, or there is no baseline.
    New,
    /// The baseline has the site, and it grew past the margin.
    Grew {
        baseline_bytes: u64,
        baseline_count: u64,
    },
}

impl SiteStatus {
    /// One word for tables: `suppressed`, `known`, `new` or `grew`.
    #[must_use]
    pub fn word(&self) -> &'static str {
        match self {
            SiteStatus::Suppressed(_) => "suppressed",
            SiteStatus::BaselineKnown { .. } => "known",
            SiteStatus::New => "new",
            SiteStatus::Grew { .. } => "grew",
        }
    }
}

/// One leak site and its verdict.
#[derive(Clone, Debug)]
pub struct LeakSite {
    pub key: SiteKey,
    pub live_bytes: u64,
    pub live_count: u64,
    /// The frames of the site's largest consumer, innermost first.
    pub frames: Vec<Frame>,
    pub status: SiteStatus,
    /// Bytes and blocks charged against the budget: all of a new site's, the growth of a grown one's.
    pub charged_bytes: u64,
    pub charged_count: u64,
    /// Whether the site is to blame for a broken leak budget.
    pub failed: bool,
}

impl LeakSite {
    /// The first frame with a source file and line.
    #[must_use]
    pub fn source(&self) -> Option<(&str, u32)> {
        self.frames
            .iter()
            .find_map(|f| Some((f.file.as_deref()?, f.line?)))
    }

    /// A short name: the innermost frame, with its source where known.
    #[must_use]
    pub fn title(&self) -> String {
        let Some(frame) = self.frames.first() else {
            return format!("{} site without a stack", self.key.kind);
        };
        let function = frame
            .function
            .clone()
            .unwrap_or_else(|| format!("{:#x}", frame.address));
        let module = module_name(&frame.module);
        match (&frame.file, frame.line) {
            (Some(file), Some(line)) => format!("{function} at {file}:{line} [{module}]"),
            _ => format!("{function} [{module}]"),
        }
    }

    /// What the site holds, e.g. `1.00 KiB in 4 blocks`.
    #[must_use]
    pub fn holding(&self) -> String {
        let one = units(&self.key.kind);
        format!(
            "{} in {}",
            bytes(self.live_bytes),
            counted(self.live_count, one)
        )
    }
}

/// The steepest rise of heap and mapped memory over a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    pub bytes_per_minute: f64,
    /// Where the steepest window starts and ends, in seconds since tracing began.
    pub from_s: f64,
    pub to_s: f64,
}

/// A budget that was broken.
#[derive(Clone, Debug, PartialEq)]
pub enum Breach {
    LeakedBytes { leaked: u64, max: u64 },
    LeakedCount { leaked: u64, max: u64 },
    Growth { growth: Growth, max: u64 },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::LeakedBytes { leaked, max } => {
                write!(
                    f,
                    "{} leaked, over the budget of {}",
                    bytes(*leaked),
                    bytes(*max)
                )
            }
            Breach::LeakedCount { leaked, max } => write!(
                f,
                "{} blocks and regions leaked, over the budget of {}",
                count(*leaked),
                count(*max)
            ),
            Breach::Growth { growth, max } => write!(
                f,
                "memory grew {}/min between {:.1} s and {:.1} s, over the budget of {}/min",
                bytes(growth.bytes_per_minute.max(0.0) as u64),
                growth.from_s,
                growth.to_s,
                bytes(*max)
            ),
        }
    }
}

/// The outcome of a check.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Every site holding memory, largest first.
    pub sites: Vec<LeakSite>,
    /// The budget's view: bytes and blocks charged by new and grown sites.
    pub leaked_bytes: u64,
    pub leaked_count: u64,
    /// `None` when the timeline has fewer than two samples after the warm-up.
    pub growth: Option<Growth>,
    pub breaches: Vec<Breach>,
    /// Whether a growth budget was asked for.
    pub growth_checked: bool,
}

impl Verdict {
    /// Whether every budget held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.breaches.is_empty()
    }

    /// The process exit code: [`EXIT_PASS`] or [`EXIT_FAIL`]. ([`EXIT_ERROR`]
    /// is for a check that could not be made.)
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.passed() { EXIT_PASS } else { EXIT_FAIL }
    }

    /// Sites of one status word.
    #[must_use]
    pub fn count_of(&self, word: &str) -> usize {
        self.sites
            .iter()
            .filter(|s| s.status.word() == word)
            .count()
    }
}

/// Judges `report` against the budgets in `options`, after `suppressions`,
/// and against `baseline` when there is one.
#[must_use]
pub fn evaluate(
    report: &Report,
    options: &CheckOptions,
    suppressions: &Suppressions,
    baseline: Option<&Report>,
) -> Verdict {
    let known = baseline.map(|b| merge_sites(b).into_iter().collect::<FxHashMap<_, _>>());
    let mut sites: Vec<LeakSite> = merge_sites(report)
        .into_iter()
        .map(|(key, site)| {
            let status = judge(
                &key,
                &site,
                suppressions,
                known.as_ref(),
                options.baseline_margin,
            );
            let (charged_bytes, charged_count) = match status {
                SiteStatus::New => (site.live_bytes, site.live_count),
                SiteStatus::Grew {
                    baseline_bytes,
                    baseline_count,
                } => (
                    site.live_bytes - baseline_bytes,
                    site.live_count.saturating_sub(baseline_count),
                ),
                SiteStatus::Suppressed(_) | SiteStatus::BaselineKnown { .. } => (0, 0),
            };
            LeakSite {
                key,
                live_bytes: site.live_bytes,
                live_count: site.live_count,
                frames: site.frames,
                status,
                charged_bytes,
                charged_count,
                failed: false,
            }
        })
        .collect();
    sites.sort_by(|a, b| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then_with(|| a.key.cmp(&b.key))
    });

    let leaked_bytes = sites.iter().map(|s| s.charged_bytes).sum();
    let leaked_count = sites.iter().map(|s| s.charged_count).sum();
    let mut breaches = Vec::new();
    let max_bytes = match (options.max_leaked_bytes, options.max_leaked_count) {
        (None, None) => Some(0),
        (bytes, _) => bytes,
    };
    if let Some(max) = max_bytes.filter(|&max| leaked_bytes > max) {
        breaches.push(Breach::LeakedBytes {
            leaked: leaked_bytes,
            max,
        });
    }
    if let Some(max) = options.max_leaked_count.filter(|&max| leaked_count > max) {
        breaches.push(Breach::LeakedCount {
            leaked: leaked_count,
            max,
        });
    }
    if !breaches.is_empty() {
        for site in &mut sites {
            site.failed = site.charged_bytes > 0 || site.charged_count > 0;
        }
    }

    let growth = steepest_growth(&report.memory, options.growth_window, options.warmup);
    if let (Some(max), Some(growth)) = (options.max_growth, growth)
        && growth.bytes_per_minute > max as f64
    {
        breaches.push(Breach::Growth { growth, max });
    }

    Verdict {
        sites,
        leaked_bytes,
        leaked_count,
        growth,
        breaches,
        growth_checked: options.max_growth.is_some(),
    }
}

/// A site's status: suppressions first, then the baseline, if any.
fn judge(
    key: &SiteKey,
    site: &Merged,
    suppressions: &Suppressions,
    known: Option<&FxHashMap<SiteKey, Merged>>,
    margin_percent: f64,
) -> SiteStatus {
    if let Some(pattern) = suppressions.matching(&site.frames) {
        return SiteStatus::Suppressed(pattern.to_owned());
    }
    let Some(before) = known.and_then(|known| known.get(key)) else {
        return SiteStatus::New;
    };
    let allowed = before.live_bytes as f64 * (1.0 + margin_percent / 100.0);
    if site.live_bytes > before.live_bytes && site.live_bytes as f64 > allowed {
        SiteStatus::Grew {
            baseline_bytes: before.live_bytes,
            baseline_count: before.live_count,
        }
    } else {
        SiteStatus::BaselineKnown {
            baseline_bytes: before.live_bytes,
        }
    }
}

/// A site's totals over the consumers that share its key.
struct Merged {
    live_bytes: u64,
    live_count: u64,
    frames: Vec<Frame>,
    largest: u64,
}

/// The report's consumers still holding memory, merged by [`SiteKey`].
fn merge_sites(report: &Report) -> Vec<(SiteKey, Merged)> {
    let mut sites: FxHashMap<SiteKey, Merged> = FxHashMap::default();
    for consumer in report
        .consumers
        .iter()
        .filter(|c| c.live_bytes > 0 || c.live_count > 0)
    {
        let site = sites
            .entry(SiteKey::new(&consumer.kind, &consumer.frames))
            .or_insert_with(|| Merged {
                live_bytes: 0,
                live_count: 0,
                frames: Vec::new(),
                largest: 0,
            });
        site.live_bytes += consumer.live_bytes;
        site.live_count += consumer.live_count;
        if site.frames.is_empty() || consumer.live_bytes > site.largest {
            site.frames.clone_from(&consumer.frames);
            site.largest = consumer.live_bytes;
        }
    }
    sites.into_iter().collect()
}

/// The steepest rise of heap plus mapped memory, in bytes per minute, over
/// any stretch of `window` after `warmup`. A run shorter than the window is
/// measured from its first sample to its last.
#[must_use]
pub fn steepest_growth(
    memory: &[MemorySample],
    window: Duration,
    warmup: Duration,
) -> Option<Growth> {
    let samples: Vec<(f64, f64)> = memory
        .iter()
        .filter(|s| s.t_s >= warmup.as_secs_f64())
        .map(|s| (s.t_s, (s.heap_bytes + s.mapped_bytes) as f64))
        .collect();
    let (first, last) = (samples.first()?, samples.last()?);
    let span = last.0 - first.0;
    if span <= 0.0 {
        return None;
    }
    let window = window.as_secs_f64().min(span);

    let mut steepest: Option<Growth> = None;
    let mut end = 0;
    for (start, &(t0, v0)) in samples.iter().enumerate() {
        end = end.max(start + 1);
        while end < samples.len() && samples[end].0 - t0 < window * (1.0 - 1e-9) {
            end += 1;
        }
        let Some(&(t1, v1)) = samples.get(end) else {
            break;
        };
        let rate = (v1 - v0) / (t1 - t0) * 60.0;
        if steepest.is_none_or(|g| rate > g.bytes_per_minute) {
            steepest = Some(Growth {
                bytes_per_minute: rate,
                from_s: t0,
                to_s: t1,
            });
        }
    }
    steepest
}

/// Parses a size: a whole number with an optional unit, `KiB`, `MiB` and
/// `GiB` (or `K`, `M`, `G`) counting in 1024s, `kB`, `MB` and `GB` in 1000s.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a size: write a whole number with an optional unit, like `64KiB`")
    })?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use B, KiB, MiB, GiB, kB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_warmup(text: &str) -> Result<Duration, String> {
    if text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        == "0"
    {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// The files a check needs, read and validated before anything is traced,
/// so a bad option fails at once instead of after a long run.
#[derive(Debug)]
pub struct Judge {
    options: CheckOptions,
    suppressions: Suppressions,
    baseline: Option<Report>,
    junit: Option<PathBuf>,
    github: bool,
}

impl Judge {
    /// Reads the suppressions and the baseline and checks the options.
    /// `window` is true for a check of a running process over a window,
    /// where what is live at the end is its working set, not a leak: leak
    /// budgets then apply only when given.
    pub fn new(args: &CheckArgs, window: bool) -> anyhow::Result<Self> {
        let suppressions = match &args.suppressions {
            Some(path) => Suppressions::load(path)?,
            None => Suppressions::default(),
        };
        let baseline = match &args.baseline {
            Some(path) => Some(load_report(path).context("cannot use the baseline")?),
            None => None,
        };
        if !(args.baseline_margin >= 0.0 && args.baseline_margin.is_finite()) {
            anyhow::bail!("`--baseline-margin` must be a percentage of zero or more");
        }
        let mut options = CheckOptions::from(args);
        if window && options.max_leaked_bytes.is_none() && options.max_leaked_count.is_none() {
            options.max_leaked_bytes = Some(u64::MAX);
        }
        Ok(Self {
            options,
            suppressions,
            baseline,
            junit: args.junit.clone(),
            github: args.github,
        })
    }

    /// Judges `report`: prints the summary (and annotations with
    /// `--github`) on stdout, writes `--junit`, and returns
    /// [`Verdict::exit_code`]. An error means [`EXIT_ERROR`].
    pub fn judge(&self, report: &Report) -> anyhow::Result<i32> {
        let verdict = evaluate(
            report,
            &self.options,
            &self.suppressions,
            self.baseline.as_ref(),
        );

        let mut stdout = io::stdout().lock();
        output::write_summary(&verdict, report, &mut stdout)?;
        if self.github {
            let workspace = std::env::var_os("GITHUB_WORKSPACE").map(PathBuf::from);
            output::write_github(&verdict, workspace.as_deref(), &mut stdout)?;
        }
        if let Some(path) = &self.junit {
            let mut xml = Vec::new();
            output::write_junit(&verdict, report, &mut xml)?;
            std::fs::write(path, xml).with_context(|| {
                format!("failed to write the JUnit report `{}`", path.display())
            })?;
        }
        Ok(verdict.exit_code())
    }
}

/// Judges the saved report `--report` names.
pub fn run_check(args: &CheckArgs) -> anyhow::Result<i32> {
    let judge = Judge::new(args, false)?;
    let path = args
        .input
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no report to judge: give `--report FILE`"))?;
    judge.judge(&load_report(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    fn sample(t_s: f64, heap_bytes: u64) -> MemorySample {
        MemorySample {
            t_s,
            rss_bytes: 0,
            heap_bytes,
            mapped_bytes: 0,
        }
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(
            parse_size("10 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn growth_is_the_steepest_window_not_the_average() {
        // Flat for two minutes, then 6 MB in the third.
        let memory: Vec<_> = (0..=180_u32)
            .map(|t| {
                sample(
                    f64::from(t),
                    if t < 120 {
                        1_000
                    } else {
                        1_000 + u64::from(t - 120) * 100_000
                    },
                )
            })
            .collect();
        let growth = steepest_growth(&memory, Duration::from_mins(1), Duration::ZERO).unwrap();
        assert!(
            (growth.bytes_per_minute - 6_000_000.0).abs() < 1.0,
            "{growth:?}"
        );
        assert!((growth.from_s - 120.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_run_shorter_than_the_window_is_measured_whole_after_the_warmup() {
        let memory = [
            sample(0.0, 0),
            sample(1.0, 10_000),
            sample(2.0, 10_000),
            sample(3.0, 13_000),
        ];
        let whole = steepest_growth(&memory, Duration::from_mins(1), Duration::ZERO).unwrap();
        assert!((whole.bytes_per_minute - 260_000.0).abs() < 1.0);
        let warm =
            steepest_growth(&memory, Duration::from_mins(1), Duration::from_secs(1)).unwrap();
        assert!((warm.bytes_per_minute - 90_000.0).abs() < 1.0);
        assert!(steepest_growth(&memory[..1], Duration::from_mins(1), Duration::ZERO).is_none());
    }

    #[test]
    fn sites_are_matched_by_function_and_module_not_address() {
        let report = fixture::sample();
        let mut moved = report.clone();
        for consumer in &mut moved.consumers {
            for frame in &mut consumer.frames {
                frame.address += 0x5555_0000_0000;
                frame.module = frame.module.replace("/usr/", "/opt/");
            }
        }
        let verdict = evaluate(
            &moved,
            &CheckOptions::default(),
            &Suppressions::default(),
            Some(&report),
        );
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.count_of("known"), 3);
    }

    #[test]
    fn no_leak_budget_means_no_leaked_byte_is_allowed() {
        let verdict = evaluate(
            &fixture::sample(),
            &CheckOptions::default(),
            &Suppressions::default(),
            None,
        );
        assert_eq!(verdict.exit_code(), EXIT_FAIL);
        assert_eq!(verdict.leaked_bytes, 4096 + 1000 + 300);
        assert!(
            verdict
                .sites
                .iter()
                .all(|s| s.failed && s.status == SiteStatus::New)
        );
        let roomy = CheckOptions {
            max_leaked_bytes: Some(8 << 10),
            ..CheckOptions::default()
        };
        let verdict = evaluate(&fixture::sample(), &roomy, &Suppressions::default(), None);
        assert_eq!(verdict.exit_code(), EXIT_PASS);
        assert!(verdict.sites.iter().all(|s| !s.failed));
    }

    #[test]
    fn a_grown_site_is_charged_only_its_growth() {
        let baseline = fixture::sample();
        let mut report = baseline.clone();
        report.consumers[0].live_bytes = 4096 + 2048;
        report.consumers[0].live_count = 6;
        report.consumers[1].live_bytes = 1050; // within the 10 % margin
        let options = CheckOptions {
            max_leaked_bytes: Some(1024),
            ..CheckOptions::default()
        };
        let verdict = evaluate(&report, &options, &Suppressions::default(), Some(&baseline));
        assert_eq!(verdict.leaked_bytes, 2048);
        assert_eq!(verdict.leaked_count, 2);
        assert_eq!(verdict.count_of("grew"), 1);
        assert_eq!(verdict.count_of("known"), 2);
        assert_eq!(
            verdict.breaches,
            [Breach::LeakedBytes {
                leaked: 2048,
                max: 1024
            }]
        );
        let failed: Vec<_> = verdict
            .sites
            .iter()
            .filter(|s| s.failed)
            .map(LeakSite::title)
            .collect();
        assert_eq!(failed, ["make_node at /src/app.c:7 [server]"]);
    }

    #[test]
    fn the_growth_budget_reads_the_memory_timeline() {
        let mut options = CheckOptions {
            max_leaked_bytes: Some(u64::MAX),
            max_growth: Some(70_000),
            ..CheckOptions::default()
        };
        // The fixture grows 1000 B a second: 60,000 B a minute.
        let verdict = evaluate(&fixture::sample(), &options, &Suppressions::default(), None);
        assert!(verdict.passed(), "{:?}", verdict.breaches);
        options.max_growth = Some(50_000);
        let verdict = evaluate(&fixture::sample(), &options, &Suppressions::default(), None);
        assert!(matches!(
            verdict.breaches[..],
            [Breach::Growth { max: 50_000, .. }]
        ));
    }
}
