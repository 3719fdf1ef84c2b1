//! Growth patterns: what shape a series of memory samples has, and how urgent it is.
//!
//! A series is a list of `(time, bytes)` [`Point`]s, optionally with the bytes
//! among them that are *old*: still live, and allocated more than one window
//! length before the sample was taken. [`classify`] names its shape as one
//! [`Pattern`] and gives a confidence, a growth rate, a severity and, given a
//! limit, the time left until the limit is reached.
//!
//! # Method
//!
//! Every fit is robust, so that a spike, a garbage-collection drop or a few
//! wild samples do not drag it:
//!
//! 1. *Noise* is the median absolute deviation of the differences between
//!    consecutive samples. Steps of a sawtooth or the edges of a spike are
//!    few, so they barely move it.
//! 2. *Trend* is the Theil-Sen line (the median of the slopes between all
//!    pairs of samples). Its rise over the window, divided by the spread of
//!    the residuals around it, says whether the series grows at all.
//! 3. *Spike*: the samples far above that line (and above half the highest
//!    of them), in one or two short runs that end before the window does,
//!    with at least two samples far above the line, and the rest of the
//!    series flat, are a short excursion that came back. A lone wild sample
//!    is not a spike.
//! 4. *Plateau*: a series that grew, but whose last third is flat (its own
//!    slope under a third of the slope before it), is a cache that filled up or
//!    a queue that stopped growing: stable, not a leak.
//! 5. *Exponential*: the slope of the second half is well above the slope of
//!    the first, and a line fitted to the logarithm of the bytes explains the
//!    series better than the straight line does.
//! 6. *Leak* against *linear*: with old bytes, a leak is growth whose old
//!    bytes grow along with it and never fall, because nothing allocated long
//!    ago is ever freed. Growth whose old bytes stay flat or fall is memory
//!    that turns over: linear, but not a leak. Without old bytes there is no
//!    telling them apart, and growth is reported as linear.
//!
//! A falling series is stable: it runs toward no limit. Fewer than
//! [`MIN_POINTS`] samples are stable with confidence 0.

pub mod corpus;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Fewest samples a series needs before its shape means anything.
pub const MIN_POINTS: usize = 8;
/// Most samples a Theil-Sen fit looks at; longer series are thinned evenly.
const MAX_FIT_POINTS: usize = 160;
/// Smallest rise, as a share of the series' level, that counts as growth.
const MIN_RELATIVE_RISE: f64 = 0.05;
/// Smallest rise, in residual spreads, that counts as growth.
const MIN_RISE_Z: f64 = 2.0;
/// Share of the window, at the end, that is checked for a plateau.
const TAIL_SHARE: f64 = 1.0 / 3.0;
/// A tail whose slope is below this share of the whole slope has flattened.
const PLATEAU_SLOPE_SHARE: f64 = 1.0 / 3.0;
/// Smallest height of a spike, in spreads of the series around it.
const MIN_SPIKE_HEIGHT: f64 = 4.0;
/// Longest share of the window a spike may last.
const MAX_SPIKE_SHARE: f64 = 0.25;
/// Second-half slope over first-half slope above which growth may be exponential.
const MIN_EXPONENTIAL_SLOPE_RATIO: f64 = 1.6;
/// Old bytes must grow at least this share of the live bytes' slope for a leak.
const MIN_LEAK_OLD_SHARE: f64 = 0.5;

/// One sample of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since an arbitrary start; points come in increasing time.
    pub t_s: f64,
    pub bytes: u64,
    /// Of `bytes`, those allocated more than one window length before `t_s`.
    pub old_bytes: Option<u64>,
}

/// The shape of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Flat, oscillating around a level, falling, or grown and now flat.
    Stable,
    /// Growing at a steady rate, with old memory being freed.
    Linear,
    /// Growing at a rate that itself grows.
    Exponential,
    /// A short excursion that came back to its baseline.
    Spike,
    /// Growing, with memory allocated long ago never freed.
    Leak,
}

impl Pattern {
    /// Every pattern, in a fixed order.
    pub const ALL: [Pattern; 5] = [
        Pattern::Stable,
        Pattern::Linear,
        Pattern::Exponential,
        Pattern::Spike,
        Pattern::Leak,
    ];

    /// Lowercase name, as in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Stable => "stable",
            Pattern::Linear => "linear",
            Pattern::Exponential => "exponential",
            Pattern::Spike => "spike",
            Pattern::Leak => "leak",
        }
    }

    /// Position in [`Pattern::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the series is heading somewhere it will run out of memory.
    #[must_use]
    pub fn is_growth(self) -> bool {
        matches!(self, Pattern::Linear | Pattern::Exponential | Pattern::Leak)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How urgent a finding is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Lowercase name, as in JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`classify`] found.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub pattern: Pattern,
    /// 0 to 100.
    pub confidence: u8,
    pub severity: Severity,
    /// Growth at the end of the window; negative when falling.
    pub rate_bytes_per_min: f64,
    /// Seconds between the first and the last sample.
    pub window_s: f64,
    /// The level at the end of the window, as the fit sees it.
    pub current_bytes: u64,
    /// Seconds until the limit is reached at the current growth, for growth
    /// patterns when a limit was given; 0 when it already is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_limit_s: Option<f64>,
}

/// Names the shape of `points` (in increasing time). `limit`, when given, is
/// the size at which the series' owner runs out of memory: a threshold, the
/// cgroup's `memory.max`, or what `MemAvailable` leaves.
#[must_use]
pub fn classify(points: &[Point], limit: Option<u64>) -> Verdict {
    let window_s = match (points.first(), points.last()) {
        (Some(first), Some(last)) => last.t_s - first.t_s,
        _ => 0.0,
    };
    let current = points.last().map_or(0, |p| p.bytes);
    if points.len() < MIN_POINTS || window_s <= 0.0 {
        return Verdict {
            pattern: Pattern::Stable,
            confidence: 0,
            severity: Severity::Low,
            rate_bytes_per_min: 0.0,
            window_s,
            current_bytes: current,
            time_to_limit_s: None,
        };
    }

    let series = Series::new(points);
    let shape = series.shape();
    let current_bytes = shape.current.max(0.0) as u64;
    let time_to_limit_s = limit
        .filter(|_| shape.pattern.is_growth())
        .and_then(|limit| time_to_limit(&shape, limit as f64));
    Verdict {
        pattern: shape.pattern,
        confidence: (shape.confidence * 100.0).round().clamp(0.0, 100.0) as u8,
        severity: severity(&shape, time_to_limit_s),
        rate_bytes_per_min: shape.rate_per_s * 60.0,
        window_s,
        current_bytes,
        time_to_limit_s,
    }
}

/// A pattern with the numbers that decide its urgency.
#[derive(Clone, Copy, Debug)]
struct Shape {
    pattern: Pattern,
    /// 0 to 1.
    confidence: f64,
    /// Bytes per second at the end of the window.
    rate_per_s: f64,
    /// Level at the end of the window.
    current: f64,
    /// For exponential growth, the rate constant (per second) of `exp(k t)`.
    exponent: Option<f64>,
}

/// A series with the statistics every test needs.
struct Series {
    t: Vec<f64>,
    y: Vec<f64>,
    old: Option<Vec<f64>>,
    level: f64,
    noise: f64,
    trend: Line,
    /// Spread of the residuals around `trend`.
    spread: f64,
    span: f64,
}

impl Series {
    fn new(points: &[Point]) -> Self {
        let t: Vec<f64> = points.iter().map(|p| p.t_s).collect();
        let y: Vec<f64> = points.iter().map(|p| p.bytes as f64).collect();
        let old = points
            .iter()
            .map(|p| p.old_bytes.map(|b| b as f64))
            .collect::<Option<Vec<f64>>>();
        let level = median(&mut y.clone()).max(1.0);
        let noise = noise_of(&y).max(level * 1e-3);
        let trend = theil_sen(&t, &y);
        let spread = spread_around(&t, &y, trend).max(noise);
        let span = t[t.len() - 1] - t[0];
        Self {
            t,
            y,
            old,
            level,
            noise,
            trend,
            spread,
            span,
        }
    }

    fn shape(&self) -> Shape {
        if let Some(spike) = self.spike() {
            return spike;
        }
        let rise = self.trend.slope * self.span;
        let z = rise / self.spread;
        if rise < MIN_RELATIVE_RISE * self.level || z < MIN_RISE_Z {
            return self.stable(z);
        }
        if let Some(plateau) = self.plateau() {
            return plateau;
        }
        if let Some(exponential) = self.exponential() {
            return exponential;
        }
        self.linear_or_leak(z)
    }

    fn end_level(&self) -> f64 {
        self.trend.at(self.t[self.t.len() - 1])
    }

    /// No growth worth the name: flat, oscillating or falling.
    fn stable(&self, z: f64) -> Shape {
        let clear = 1.0 - 0.5 * (z.abs() / MIN_RISE_Z).min(1.0);
        Shape {
            pattern: Pattern::Stable,
            confidence: clear * self.length_factor(),
            rate_per_s: self.trend.slope,
            current: self.end_level(),
            exponent: None,
        }
    }

    /// A short, single excursion above an otherwise flat series.
    fn spike(&self) -> Option<Shape> {
        let threshold = (6.0 * self.noise).max(0.1 * self.level);
        let residuals: Vec<f64> = self
            .t
            .iter()
            .zip(&self.y)
            .map(|(&t, &y)| y - self.trend.at(t))
            .collect();
        // The excursion is what stands above half its own peak, so a wild
        // sample elsewhere does not count as a second one.
        let cut = threshold.max(residuals.iter().copied().fold(0.0, f64::max) / 2.0);
        let above: Vec<bool> = residuals.iter().map(|&r| r > cut).collect();
        let runs = runs_of(&above);
        if runs.is_empty() || runs.len() > 2 {
            return None;
        }
        let n = above.len();
        let (first, last) = self.widen(runs[0].0, runs[runs.len() - 1].1);
        let high = residuals[first..=last]
            .iter()
            .filter(|&&r| r > threshold)
            .count();
        if high < 2 {
            return None;
        }
        let settled = n - n / 10;
        if first == 0 || last >= settled.min(n - 2) {
            return None;
        }
        let duration = self.t[last + 1] - self.t[first.saturating_sub(1)];
        if duration > MAX_SPIKE_SHARE * self.span {
            return None;
        }

        // The rest of the series must be flat: a spike on top of growth is growth.
        let (t, y): (Vec<f64>, Vec<f64>) = self
            .t
            .iter()
            .zip(&self.y)
            .zip(&above)
            .filter(|&(_, &a)| !a)
            .map(|((&t, &y), _)| (t, y))
            .unzip();
        let base = theil_sen(&t, &y);
        let base_spread = spread_around(&t, &y, base).max(self.noise);
        let rise = base.slope * self.span;
        if rise.abs() >= MIN_RELATIVE_RISE * self.level && rise.abs() / base_spread >= MIN_RISE_Z {
            return None;
        }

        let peak = (first..=last)
            .map(|i| self.y[i] - base.at(self.t[i]))
            .fold(0.0, f64::max);
        if peak < MIN_SPIKE_HEIGHT * base_spread {
            return None;
        }
        Some(Shape {
            pattern: Pattern::Spike,
            confidence: (0.5 + 0.5 * ramp(peak / threshold, 1.0, 3.0)) * self.length_factor(),
            rate_per_s: base.slope,
            current: base.at(self.t[n - 1]),
            exponent: None,
        })
    }

    /// Widens the samples `first..=last` to where the series leaves and
    /// rejoins its trend, so a slow rise and fall counts in full.
    fn widen(&self, mut first: usize, mut last: usize) -> (usize, usize) {
        let off_trend = |i: usize| self.y[i] - self.trend.at(self.t[i]) > 2.0 * self.noise;
        while first > 0 && off_trend(first - 1) {
            first -= 1;
        }
        while last + 1 < self.y.len() && off_trend(last + 1) {
            last += 1;
        }
        (first, last)
    }

    /// Growth that has stopped: the last part of the window is flat.
    fn plateau(&self) -> Option<Shape> {
        let start = self.t[0] + (1.0 - TAIL_SHARE) * self.span;
        let from = self.t.partition_point(|&t| t < start);
        let (t, y) = (&self.t[from..], &self.y[from..]);
        if t.len() < 4 {
            return None;
        }
        let head = theil_sen(&self.t[..from], &self.y[..from]);
        if from < 4 || head.slope <= 0.0 {
            return None;
        }
        let tail = theil_sen(t, y);
        let tail_spread = spread_around(t, y, tail).max(self.noise);
        let tail_rise = tail.slope * (t[t.len() - 1] - t[0]);
        let share = tail.slope / head.slope;
        let flat = share < PLATEAU_SLOPE_SHARE || tail_rise < tail_spread;
        if !flat {
            return None;
        }
        Some(Shape {
            pattern: Pattern::Stable,
            confidence: (0.6 + 0.4 * ramp(PLATEAU_SLOPE_SHARE - share, 0.0, PLATEAU_SLOPE_SHARE))
                * self.length_factor(),
            rate_per_s: tail.slope,
            current: tail.at(t[t.len() - 1]),
            exponent: None,
        })
    }

    /// Growth that accelerates, and that a log-linear fit explains better.
    fn exponential(&self) -> Option<Shape> {
        let mid = self.t[0] + self.span / 2.0;
        let half = self.t.partition_point(|&t| t < mid);
        if half < 3 || self.t.len() - half < 3 {
            return None;
        }
        let early = theil_sen(&self.t[..half], &self.y[..half]).slope;
        let late = theil_sen(&self.t[half..], &self.y[half..]).slope;
        let ratio = if early > 0.0 {
            late / early
        } else {
            f64::INFINITY
        };
        if late <= 0.0 || ratio < MIN_EXPONENTIAL_SLOPE_RATIO {
            return None;
        }

        let logs: Vec<f64> = self.y.iter().map(|&y| y.max(1.0).ln()).collect();
        let log_line = theil_sen(&self.t, &logs);
        let mut exp_residuals: Vec<f64> = self
            .t
            .iter()
            .zip(&self.y)
            .map(|(&t, &y)| (y - log_line.at(t).exp()).abs())
            .collect();
        let exp_spread = median(&mut exp_residuals) * MAD_TO_SD;
        let improvement = 1.0 - exp_spread / self.spread;
        if improvement < 0.2 || log_line.slope <= 0.0 {
            return None;
        }

        let end = self.t[self.t.len() - 1];
        let current = log_line.at(end).exp();
        Some(Shape {
            pattern: Pattern::Exponential,
            confidence: (0.5
                + 0.25 * ramp(ratio.min(10.0), MIN_EXPONENTIAL_SLOPE_RATIO, 4.0)
                + 0.25 * ramp(improvement, 0.2, 0.7))
                * self.length_factor(),
            rate_per_s: log_line.slope * current,
            current,
            exponent: Some(log_line.slope),
        })
    }

    /// Steady growth: a leak when old memory grows with it and never falls.
    fn linear_or_leak(&self, z: f64) -> Shape {
        let sure = (0.5 + 0.5 * ramp(z, MIN_RISE_Z, 10.0)) * self.length_factor();
        let linear = Shape {
            pattern: Pattern::Linear,
            confidence: sure,
            rate_per_s: self.trend.slope,
            current: self.end_level(),
            exponent: None,
        };
        let Some(old) = &self.old else {
            return linear;
        };
        let old_line = theil_sen(&self.t, old);
        let share = old_line.slope / self.trend.slope;
        let old_rise = old_line.slope * self.span;
        let allowed_drop = 0.2 * old_rise.max(0.0) + 3.0 * noise_of(old).max(self.level * 1e-3);
        if share < MIN_LEAK_OLD_SHARE || largest_drop(old) > allowed_drop {
            return Shape {
                confidence: sure * (0.7 + 0.3 * ramp(MIN_LEAK_OLD_SHARE - share, 0.0, 0.5)),
                ..linear
            };
        }
        Shape {
            pattern: Pattern::Leak,
            confidence: sure * (0.7 + 0.3 * ramp(share, MIN_LEAK_OLD_SHARE, 0.9)),
            ..linear
        }
    }

    /// Short series earn less confidence.
    fn length_factor(&self) -> f64 {
        (self.t.len() as f64 / 20.0).min(1.0)
    }
}

/// The seconds until a series following `shape` reaches `limit`.
fn time_to_limit(shape: &Shape, limit: f64) -> Option<f64> {
    if shape.current >= limit {
        return Some(0.0);
    }
    if shape.rate_per_s <= 0.0 {
        return None;
    }
    match shape.exponent {
        Some(k) if k > 0.0 && shape.current > 0.0 => Some((limit / shape.current).ln() / k),
        _ => Some((limit - shape.current) / shape.rate_per_s),
    }
}

/// Urgency from how fast the series grows against its own size, and from
/// how soon it reaches its limit.
fn severity(shape: &Shape, time_to_limit_s: Option<f64>) -> Severity {
    const HOUR: f64 = 3600.0;
    let by_limit = match time_to_limit_s {
        Some(s) if s < HOUR => Severity::Critical,
        Some(s) if s < 6.0 * HOUR => Severity::High,
        Some(s) if s < 24.0 * HOUR => Severity::Medium,
        _ => Severity::Low,
    };
    let growth_per_hour = shape.rate_per_s * HOUR / shape.current.max(1.0);
    let by_rate = match shape.pattern {
        Pattern::Stable | Pattern::Spike => Severity::Low,
        _ if growth_per_hour > 1.0 => Severity::High,
        _ if growth_per_hour > 0.2 => Severity::Medium,
        _ => Severity::Low,
    };
    let by_kind = match shape.pattern {
        Pattern::Exponential => Severity::High,
        Pattern::Leak => Severity::Medium,
        _ => Severity::Low,
    };
    by_limit.max(by_rate).max(by_kind)
}

/// Scale from a median absolute deviation to a normal standard deviation.
const MAD_TO_SD: f64 = 1.4826;

/// A line `intercept + slope * t`.
#[derive(Clone, Copy, Debug)]
struct Line {
    slope: f64,
    intercept: f64,
}

impl Line {
    fn at(self, t: f64) -> f64 {
        self.intercept + self.slope * t
    }
}

/// The Theil-Sen line: the median pairwise slope, and the median intercept
/// for it. Series longer than [`MAX_FIT_POINTS`] are thinned evenly first.
fn theil_sen(t: &[f64], y: &[f64]) -> Line {
    let step = t.len().div_ceil(MAX_FIT_POINTS).max(1);
    let picked: Vec<(f64, f64)> = t
        .iter()
        .zip(y)
        .step_by(step)
        .map(|(&t, &y)| (t, y))
        .collect();
    let mut slopes = Vec::with_capacity(picked.len() * picked.len() / 2);
    for (i, &(ti, yi)) in picked.iter().enumerate() {
        for &(tj, yj) in &picked[i + 1..] {
            if tj > ti {
                slopes.push((yj - yi) / (tj - ti));
            }
        }
    }
    let slope = if slopes.is_empty() {
        0.0
    } else {
        median(&mut slopes)
    };
    let mut intercepts: Vec<f64> = t.iter().zip(y).map(|(&t, &y)| y - slope * t).collect();
    Line {
        slope,
        intercept: median(&mut intercepts),
    }
}

/// Robust standard deviation of the residuals of `y` around `line`.
fn spread_around(t: &[f64], y: &[f64], line: Line) -> f64 {
    let mut residuals: Vec<f64> = t.iter().zip(y).map(|(&t, &y)| y - line.at(t)).collect();
    mad(&mut residuals) * MAD_TO_SD
}

/// Robust standard deviation of a sample's own noise, from the differences
/// between neighbours (a difference holds the noise of two samples).
fn noise_of(y: &[f64]) -> f64 {
    let mut diffs: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
    if diffs.is_empty() {
        return 0.0;
    }
    mad(&mut diffs) * MAD_TO_SD / std::f64::consts::SQRT_2
}

/// The largest fall from a running maximum.
fn largest_drop(y: &[f64]) -> f64 {
    let mut peak = f64::NEG_INFINITY;
    let mut drop = 0.0_f64;
    for &v in y {
        peak = peak.max(v);
        drop = drop.max(peak - v);
    }
    drop
}

/// The `(first, last)` indices of each run of `true`; runs split by a single
/// `false` are one run.
fn runs_of(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &flag) in flags.iter().enumerate() {
        if !flag {
            continue;
        }
        match runs.last_mut() {
            Some(run) if i <= run.1 + 2 => run.1 = i,
            _ => runs.push((i, i)),
        }
    }
    runs
}

/// Median absolute deviation from the median.
fn mad(values: &mut [f64]) -> f64 {
    let center = median(values);
    for v in values.iter_mut() {
        *v = (*v - center).abs();
    }
    median(values)
}

/// The median; reorders `values`. 0 for none.
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let (_, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return upper;
    }
    let lower = values[..n / 2]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    f64::midpoint(lower, upper)
}

/// 0 below `lo`, 1 above `hi`, linear between.
fn ramp(x: f64, lo: f64, hi: f64) -> f64 {
    ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;

    fn series(n: usize, f: impl Fn(f64) -> (f64, Option<f64>)) -> Vec<Point> {
        (0..n)
            .map(|i| {
                let t = i as f64 * 30.0;
                let (bytes, old) = f(t);
                Point {
                    t_s: t,
                    bytes: bytes as u64,
                    old_bytes: old.map(|o| o as u64),
                }
            })
            .collect()
    }

    /// Deterministic wobble in [-1, 1], so tests need no random numbers.
    fn wobble(t: f64) -> f64 {
        (t * 0.37).sin() * 0.6 + (t * 1.91).cos() * 0.4
    }

    #[test]
    fn flat_series_is_stable() {
        let points = series(60, |t| (100.0 * MB + 0.5 * MB * wobble(t), None));
        let verdict = classify(&points, None);
        assert_eq!(verdict.pattern, Pattern::Stable);
        assert!(verdict.confidence >= 70, "{verdict:?}");
        assert_eq!(verdict.severity, Severity::Low);
    }

    #[test]
    fn too_few_points_are_stable_with_no_confidence() {
        let points = series(MIN_POINTS - 1, |t| (MB + t * 1e4, None));
        let verdict = classify(&points, None);
        assert_eq!((verdict.pattern, verdict.confidence), (Pattern::Stable, 0));
    }

    #[test]
    fn steady_growth_without_age_data_is_linear_with_its_rate() {
        // 1 MB per minute.
        let points = series(60, |t| {
            (50.0 * MB + t / 60.0 * MB + 0.2 * MB * wobble(t), None)
        });
        let verdict = classify(&points, None);
        assert_eq!(verdict.pattern, Pattern::Linear);
        assert!(
            (verdict.rate_bytes_per_min / MB - 1.0).abs() < 0.05,
            "{verdict:?}"
        );
        assert!((verdict.window_s - 59.0 * 30.0).abs() < 1e-9);
    }

    #[test]
    fn growth_whose_old_memory_is_never_freed_is_a_leak() {
        let window = 60.0 * 30.0;
        let live = |t: f64| 50.0 * MB + t / 60.0 * MB;
        let points = series(60, |t| {
            (live(t) + 0.2 * MB * wobble(t), Some(live(t - window)))
        });
        let verdict = classify(&points, None);
        assert_eq!(verdict.pattern, Pattern::Leak);
        assert!(verdict.confidence >= 70, "{verdict:?}");
    }

    #[test]
    fn growth_whose_old_memory_is_freed_is_linear_not_a_leak() {
        let points = series(60, |t| {
            (
                50.0 * MB + t / 60.0 * MB + 0.2 * MB * wobble(t),
                Some(10.0 * MB),
            )
        });
        assert_eq!(classify(&points, None).pattern, Pattern::Linear);
    }

    #[test]
    fn cache_that_plateaus_is_not_a_leak() {
        let window = 80.0 * 30.0;
        let cache = |t: f64| 20.0 * MB + 60.0 * MB * (t / 900.0).clamp(0.0, 1.0);
        let points = series(80, |t| {
            (cache(t) + 0.2 * MB * wobble(t), Some(cache(t - window)))
        });
        let verdict = classify(&points, None);
        assert_eq!(verdict.pattern, Pattern::Stable, "{verdict:?}");
    }

    #[test]
    fn doubling_series_is_exponential_and_reaches_its_limit_on_time() {
        // Doubles every 10 minutes.
        let k = std::f64::consts::LN_2 / 600.0;
        let points = series(80, |t| (10.0 * MB * (k * t).exp(), None));
        let verdict = classify(&points, Some(u64::MAX / 2));
        assert_eq!(verdict.pattern, Pattern::Exponential);
        let end = 10.0 * MB * (k * 79.0 * 30.0).exp();
        let expected = ((u64::MAX / 2) as f64 / end).ln() / k;
        let estimated = verdict.time_to_limit_s.expect("a limit was given");
        assert!(
            (estimated / expected - 1.0).abs() < 0.05,
            "{estimated} vs {expected}"
        );
        assert!(verdict.severity >= Severity::High);
    }

    #[test]
    fn short_excursion_that_returns_is_a_spike() {
        let points = series(60, |t| {
            let burst = if (900.0..1050.0).contains(&t) {
                40.0 * MB
            } else {
                0.0
            };
            (30.0 * MB + burst + 0.1 * MB * wobble(t), None)
        });
        assert_eq!(classify(&points, None).pattern, Pattern::Spike);
    }

    #[test]
    fn excursion_still_high_at_the_end_is_not_a_spike() {
        let points = series(60, |t| {
            let burst = if t >= 1600.0 { 40.0 * MB } else { 0.0 };
            (30.0 * MB + burst + 0.1 * MB * wobble(t), None)
        });
        assert_ne!(classify(&points, None).pattern, Pattern::Spike);
    }

    #[test]
    fn sawtooth_around_a_level_is_stable() {
        // Fills 10 MB over five minutes, then drops back, eight times.
        let points = series(80, |t| {
            (40.0 * MB + 10.0 * MB * ((t % 300.0) / 300.0), None)
        });
        assert_eq!(classify(&points, None).pattern, Pattern::Stable);
    }

    #[test]
    fn linear_growth_reaches_its_limit_when_the_line_says() {
        let points = series(60, |t| (100.0 * MB + t / 60.0 * MB, None));
        let verdict = classify(&points, Some((200.0 * MB) as u64));
        let current = 100.0 * MB + 59.0 * 30.0 / 60.0 * MB;
        let expected = (200.0 * MB - current) / MB * 60.0;
        let estimated = verdict.time_to_limit_s.expect("a limit was given");
        assert!(
            (estimated - expected).abs() < 30.0,
            "{estimated} vs {expected}"
        );
        assert_eq!(verdict.severity, Severity::High);
    }

    #[test]
    fn series_over_its_limit_has_no_time_left() {
        let points = series(60, |t| (100.0 * MB + t / 60.0 * MB, None));
        let verdict = classify(&points, Some((50.0 * MB) as u64));
        assert_eq!(verdict.time_to_limit_s, Some(0.0));
        assert_eq!(verdict.severity, Severity::Critical);
    }

    #[test]
    fn median_of_even_count_is_the_midpoint() {
        assert!((median(&mut [4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < 1e-12);
        assert!((median(&mut [5.0, 1.0, 3.0]) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn theil_sen_ignores_a_wild_sample() {
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = [0.0, 2.0, 4.0, 600.0, 8.0, 10.0, 12.0];
        let line = theil_sen(&t, &y);
        assert!((line.slope - 2.0).abs() < 1e-9);
        assert!(line.intercept.abs() < 1e-9);
    }
}
