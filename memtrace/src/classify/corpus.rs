//! A labelled synthetic corpus of memory series, and how well [`classify`] names them.
//!
//! Each series is drawn from one of a dozen shapes, labelled with the pattern
//! a person reading the graph would name: flat lines, garbage-collection
//! sawtooths, caches that fill and plateau, queues that fill and drain,
//! steady growth whose memory turns over, accelerating growth, short bursts,
//! and leaks (steady, in steps, under a sawtooth). Lengths, sampling jitter,
//! missed samples, sizes and noise vary, and one sample in a hundred is
//! wild; a seeded splitmix64 generator makes every corpus
//! reproducible without a dependency.
//!
//! Old bytes follow the tracer's definition: live bytes allocated more than
//! a lookback before the sample. The lookback is drawn between a third and
//! the whole of the series' span, as it is early in a run when the series is
//! still shorter than the analysis window.

use std::{collections::BTreeMap, fmt};

use super::{Pattern, Point, classify};

/// Seconds between samples, before jitter.
const STEP_S: f64 = 30.0;
/// Share of samples that are off by six standard deviations.
const OUTLIER_CHANCE: f64 = 0.01;
/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// A splitmix64 pseudo-random generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Log-uniform in `[lo, hi)`.
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        self.range(lo.ln(), hi.ln()).exp()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal, by the Box-Muller transform.
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// How noisy a series is: the standard deviation of its noise as a share of
/// its base level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Noise {
    Low,
    Moderate,
    High,
}

impl Noise {
    /// Every level, quietest first.
    pub const ALL: [Noise; 3] = [Noise::Low, Noise::Moderate, Noise::High];

    /// The standard deviation as a share of the base level.
    #[must_use]
    pub fn share(self) -> f64 {
        match self {
            Noise::Low => 0.005,
            Noise::Moderate => 0.02,
            Noise::High => 0.05,
        }
    }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Noise::Low => "low",
            Noise::Moderate => "moderate",
            Noise::High => "high",
        };
        write!(f, "{name} ({:.1}%)", self.share() * 100.0)
    }
}

/// One series with the pattern it shows.
#[derive(Clone, Debug)]
pub struct Labelled {
    pub label: Pattern,
    /// The shape it was drawn from, like `plateau_cache`.
    pub kind: &'static str,
    pub noise: Noise,
    pub points: Vec<Point>,
}

/// The shapes, with the pattern each one shows.
const KINDS: &[(&str, Pattern)] = &[
    ("flat", Pattern::Stable),
    ("sawtooth", Pattern::Stable),
    ("plateau_cache", Pattern::Stable),
    ("saturating_cache", Pattern::Stable),
    ("draining_queue", Pattern::Stable),
    ("shrinking", Pattern::Stable),
    ("linear_turnover", Pattern::Linear),
    ("linear_sawtooth", Pattern::Linear),
    ("linear_no_age", Pattern::Linear),
    ("exponential", Pattern::Exponential),
    ("spike", Pattern::Spike),
    ("leak", Pattern::Leak),
    ("leak_staircase", Pattern::Leak),
    ("leak_sawtooth", Pattern::Leak),
];

/// `per_class` series of each pattern at each of `noises`, shapes of a
/// pattern taking turns.
#[must_use]
pub fn generate(seed: u64, per_class: usize, noises: &[Noise]) -> Vec<Labelled> {
    let mut rng = SplitMix64::new(seed);
    let mut corpus = Vec::new();
    for &noise in noises {
        for pattern in Pattern::ALL {
            let kinds: Vec<&str> = KINDS
                .iter()
                .filter(|(_, p)| *p == pattern)
                .map(|(k, _)| *k)
                .collect();
            for i in 0..per_class {
                let kind = kinds[i % kinds.len()];
                let points = draw(&mut rng, kind, noise);
                corpus.push(Labelled {
                    label: pattern,
                    kind,
                    noise,
                    points,
                });
            }
        }
    }
    corpus
}

/// The noiseless level and old bytes of a shape, as functions of time.
struct Shape {
    live: Box<dyn Fn(f64) -> f64>,
    /// Old bytes given the lookback; `None` when the series carries none.
    old: Option<Box<dyn Fn(f64, f64) -> f64>>,
}

/// Draws one series of shape `kind`.
fn draw(rng: &mut SplitMix64, kind: &str, noise: Noise) -> Vec<Point> {
    let n = 30 + (rng.next_u64() % 211) as usize;
    let span = (n - 1) as f64 * STEP_S;
    let base = rng.log_range(2.0 * MIB, 500.0 * MIB);
    let sigma = noise.share() * base;
    let lookback = rng.range(span / 3.0, span);
    let shape = shape(rng, kind, base, span);

    let jitter = rng.range(0.0, 0.3);
    let missed = rng.range(0.0, 0.1);
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let t = (i as f64 + rng.range(-jitter, jitter)) * STEP_S;
        let wild = if rng.chance(OUTLIER_CHANCE) {
            6.0 * sigma * rng.normal().signum()
        } else {
            0.0
        };
        let bytes = ((shape.live)(t) + sigma * rng.normal() + wild).max(0.0);
        if i > 0 && i + 1 < n && rng.chance(missed) {
            continue;
        }
        let old_bytes = shape
            .old
            .as_ref()
            .map(|old| (old(t, lookback) + 0.3 * sigma * rng.normal()).clamp(0.0, bytes));
        points.push(Point {
            t_s: t,
            bytes: bytes as u64,
            old_bytes: old_bytes.map(|o| o as u64),
        });
    }
    points
}

/// The shape of `kind`, with its own random parameters.
#[expect(
    clippy::too_many_lines,
    reason = "one arm per shape reads best side by side"
)]
fn shape(rng: &mut SplitMix64, kind: &str, base: f64, span: f64) -> Shape {
    let kept = base * rng.range(0.2, 0.9);
    let constant_old = |rng: &mut SplitMix64| -> Option<Box<dyn Fn(f64, f64) -> f64>> {
        rng.chance(0.7)
            .then(|| Box::new(move |_, _| kept) as Box<dyn Fn(f64, f64) -> f64>)
    };
    match kind {
        "flat" => Shape {
            live: Box::new(move |_| base),
            old: constant_old(rng),
        },
        "sawtooth" => {
            let period = span / rng.range(4.0, 12.0);
            let amplitude = base * rng.range(0.1, 0.5);
            let phase = rng.unit();
            Shape {
                live: Box::new(move |t| base + amplitude * (t / period + phase).fract()),
                old: constant_old(rng),
            }
        }
        "plateau_cache" => {
            let fill = base * rng.range(0.3, 2.0);
            let start = span * rng.range(-0.2, 0.1);
            let filled = span * rng.range(0.35, 0.6);
            let cache =
                move |t: f64| base + fill * ((t - start) / (filled - start)).clamp(0.0, 1.0);
            Shape {
                live: Box::new(cache),
                old: rng.chance(0.8).then(|| {
                    Box::new(move |t, lookback| cache(t - lookback)) as Box<dyn Fn(f64, f64) -> f64>
                }),
            }
        }
        "saturating_cache" => {
            let fill = base * rng.range(0.3, 2.0);
            let start = span * rng.range(0.0, 0.1);
            let tau = span * rng.range(0.06, 0.12);
            let cache = move |t: f64| base + fill * (1.0 - (-(t - start).max(0.0) / tau).exp());
            Shape {
                live: Box::new(cache),
                old: rng.chance(0.8).then(|| {
                    Box::new(move |t, lookback| cache(t - lookback)) as Box<dyn Fn(f64, f64) -> f64>
                }),
            }
        }
        "draining_queue" => {
            let height = base * rng.range(0.5, 2.0);
            let start = span * rng.range(0.05, 0.3);
            let top = start + span * rng.range(0.2, 0.35);
            let end = top + span * rng.range(0.2, 0.4);
            let queue = move |t: f64| {
                if t < start || t > end {
                    base
                } else if t < top {
                    base + height * (t - start) / (top - start)
                } else {
                    base + height * (end - t) / (end - top)
                }
            };
            Shape {
                live: Box::new(queue),
                old: constant_old(rng),
            }
        }
        "shrinking" => {
            let excess = base * rng.range(0.2, 1.0);
            Shape {
                live: Box::new(move |t| base + excess * (1.0 - t / span).max(0.0)),
                old: constant_old(rng),
            }
        }
        "linear_turnover" | "linear_no_age" | "linear_sawtooth" => {
            let rate = base * rng.range(0.12, 2.0) / span;
            let teeth = if kind == "linear_sawtooth" {
                let period = span / rng.range(6.0, 12.0);
                let amplitude = base * rng.range(0.05, 0.2);
                let rate = rate.max(0.5 * base / span);
                (period, amplitude, rate)
            } else {
                (span, 0.0, rate)
            };
            let (period, amplitude, rate) = teeth;
            let falling = rng.chance(0.5);
            let old: Option<Box<dyn Fn(f64, f64) -> f64>> = match kind {
                "linear_no_age" => None,
                _ if falling => Some(Box::new(move |t, _| kept * (1.0 - 0.5 * t / span))),
                _ => Some(Box::new(move |_, _| kept)),
            };
            Shape {
                live: Box::new(move |t| base + rate * t + amplitude * (t / period).fract()),
                old,
            }
        }
        "exponential" => {
            let k = rng.range(4.0_f64.ln(), 30.0_f64.ln()) / span;
            let grow = move |t: f64| base * (k * t).exp();
            Shape {
                live: Box::new(grow),
                old: rng.chance(0.5).then(|| {
                    Box::new(move |t, lookback| grow(t - lookback)) as Box<dyn Fn(f64, f64) -> f64>
                }),
            }
        }
        "spike" => {
            let height = base * rng.range(0.4, 3.0);
            let width = (span * rng.range(0.02, 0.12)).max(3.0 * STEP_S);
            let start = span * rng.range(0.15, 0.7);
            let triangular = rng.chance(0.5);
            let spike = move |t: f64| {
                let x = (t - start) / width;
                if !(0.0..=1.0).contains(&x) {
                    base
                } else if triangular {
                    base + height * (1.0 - (2.0 * x - 1.0).abs())
                } else {
                    base + height
                }
            };
            Shape {
                live: Box::new(spike),
                old: constant_old(rng),
            }
        }
        _ => leak_shape(rng, kind, base, kept, span),
    }
}

/// A leak that began before the series did, so the lookback already reaches it.
fn leak_shape(rng: &mut SplitMix64, kind: &str, base: f64, kept: f64, span: f64) -> Shape {
    let rate = base * rng.range(0.12, 2.0) / span;
    let began = span * rng.range(1.0, 3.0);
    let step = span / rng.range(5.0, 15.0);
    let (period, amplitude) = if kind == "leak_sawtooth" {
        (span / rng.range(6.0, 12.0), base * rng.range(0.05, 0.2))
    } else {
        (span, 0.0)
    };
    let staircase = kind == "leak_staircase";
    let leaked = move |t: f64| {
        let age = t + began;
        if staircase {
            rate * step * (age / step).floor()
        } else {
            rate * age
        }
    };
    Shape {
        live: Box::new(move |t| base + leaked(t) + amplitude * (t / period).fract()),
        old: Some(Box::new(move |t, lookback| kept + leaked(t - lookback))),
    }
}

/// How a corpus was classified.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Counts by `[true pattern][verdict]`, both in [`Pattern::ALL`] order.
    pub confusion: [[u32; 5]; 5],
    /// Series and misclassified series per shape.
    pub by_kind: BTreeMap<&'static str, (u32, u32)>,
}

impl Evaluation {
    /// Of the series classified as `pattern`, the share that show it; 1 when none were.
    #[must_use]
    pub fn precision(&self, pattern: Pattern) -> f64 {
        let column: u32 = self.confusion.iter().map(|row| row[pattern.index()]).sum();
        share(self.confusion[pattern.index()][pattern.index()], column)
    }

    /// Of the series that show `pattern`, the share classified as it; 1 when none do.
    #[must_use]
    pub fn recall(&self, pattern: Pattern) -> f64 {
        let row: u32 = self.confusion[pattern.index()].iter().sum();
        share(self.confusion[pattern.index()][pattern.index()], row)
    }

    /// Series of shape `kind` given a pattern other than their label.
    #[must_use]
    pub fn misses(&self, kind: &str) -> u32 {
        self.by_kind.get(kind).map_or(0, |&(_, wrong)| wrong)
    }

    /// All series evaluated.
    #[must_use]
    pub fn total(&self) -> u32 {
        self.confusion.iter().flatten().sum()
    }
}

fn share(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        1.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>9} {:>7}   confusion (rows: truth, columns: verdict)",
            "pattern", "precision", "recall"
        )?;
        write!(f, "{:<12} {:>9} {:>7}  ", "", "", "")?;
        for pattern in Pattern::ALL {
            write!(f, " {:>11}", pattern.name())?;
        }
        writeln!(f)?;
        for pattern in Pattern::ALL {
            write!(
                f,
                "{:<12} {:>9.3} {:>7.3}  ",
                pattern.name(),
                self.precision(pattern),
                self.recall(pattern)
            )?;
            for count in self.confusion[pattern.index()] {
                write!(f, " {count:>11}")?;
            }
            writeln!(f)?;
        }
        let wrong: Vec<String> = self
            .by_kind
            .iter()
            .filter(|(_, (_, wrong))| *wrong > 0)
            .map(|(kind, (total, wrong))| format!("{kind} {wrong}/{total}"))
            .collect();
        if !wrong.is_empty() {
            writeln!(f, "misclassified by shape: {}", wrong.join(", "))?;
        }
        write!(f, "series: {}", self.total())
    }
}

/// Classifies every series of `corpus` and tallies the verdicts.
#[must_use]
pub fn evaluate(corpus: &[Labelled]) -> Evaluation {
    let mut evaluation = Evaluation::default();
    for series in corpus {
        let verdict = classify(&series.points, None);
        evaluation.confusion[series.label.index()][verdict.pattern.index()] += 1;
        let tally = evaluation.by_kind.entry(series.kind).or_default();
        tally.0 += 1;
        tally.1 += u32::from(verdict.pattern != series.label);
    }
    evaluation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_draws_the_same_corpus() {
        let a = generate(7, 3, &[Noise::Moderate]);
        let b = generate(7, 3, &[Noise::Moderate]);
        assert_eq!(a.len(), 15);
        assert!(a.iter().zip(&b).all(|(a, b)| a.points == b.points));
    }

    #[test]
    fn series_have_increasing_times_and_old_bytes_within_live_bytes() {
        for series in generate(11, 10, &Noise::ALL) {
            assert!(
                series.points.windows(2).all(|w| w[0].t_s < w[1].t_s),
                "{}",
                series.kind
            );
            assert!(
                series
                    .points
                    .iter()
                    .all(|p| p.old_bytes.is_none_or(|o| o <= p.bytes))
            );
        }
    }

    #[test]
    fn every_pattern_is_told_apart_at_moderate_noise() {
        let evaluation = evaluate(&generate(0x5eed, 40, &[Noise::Moderate]));
        for pattern in Pattern::ALL {
            assert!(
                evaluation.precision(pattern) >= 0.9,
                "{pattern}\n{evaluation}"
            );
            assert!(evaluation.recall(pattern) >= 0.9, "{pattern}\n{evaluation}");
        }
    }

    #[test]
    fn plateauing_cache_is_never_called_a_leak() {
        let corpus = generate(0xcac4e, 60, &Noise::ALL);
        let caches = corpus.iter().filter(|s| s.kind.ends_with("_cache"));
        for series in caches {
            let verdict = classify(&series.points, None);
            assert_ne!(
                verdict.pattern,
                Pattern::Leak,
                "{} at {}",
                series.kind,
                series.noise
            );
        }
    }

    #[test]
    fn precision_and_recall_count_the_right_cells() {
        let mut evaluation = Evaluation::default();
        evaluation.confusion[Pattern::Leak.index()][Pattern::Leak.index()] = 3;
        evaluation.confusion[Pattern::Leak.index()][Pattern::Linear.index()] = 1;
        evaluation.confusion[Pattern::Stable.index()][Pattern::Leak.index()] = 1;
        assert!((evaluation.recall(Pattern::Leak) - 0.75).abs() < 1e-12);
        assert!((evaluation.precision(Pattern::Leak) - 0.75).abs() < 1e-12);
        assert!((evaluation.precision(Pattern::Spike) - 1.0).abs() < 1e-12);
    }
}
