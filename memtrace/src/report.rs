//! The final report: its JSON form, which scripts rely on, and its text form.

use std::{fmt::Write as _, io};

use serde::{Deserialize, Serialize};

pub use crate::aggregate::Untracked;
use crate::symbolize::Frame;

/// Version of the JSON layout; bumped when a field changes meaning.
pub const REPORT_VERSION: u32 = 1;

/// Everything memtrace learned about one process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub target: Target,
    pub duration_s: f64,
    pub totals: Totals,
    /// Events the tracer may have missed. While any is non-zero, every
    /// number in the report is a lower bound.
    pub lost: Lost,
    /// Memory released or moved that memtrace never saw allocated.
    pub untracked: Untracked,
    pub probes: ProbeSummary,
    /// Upper bounds, in seconds, of the buckets of [`Consumer::live_by_age`].
    pub age_buckets_s: Vec<u64>,
    /// By live bytes, largest first.
    pub consumers: Vec<Consumer>,
    /// By live bytes, largest first.
    pub modules: Vec<ModuleUsage>,
    pub memory: Vec<MemorySample>,
    /// What the monitor concluded: growth patterns of the process and its
    /// consumers, and what the alerts did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<crate::monitor::MonitorSummary>,
    /// What tracing cost memtrace itself.
    #[serde(default)]
    pub tracer: TracerUsage,
    /// How a command started by `memtrace run` ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub pid: u32,
    pub command: String,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Successful heap allocations.
    pub allocs: u64,
    /// Frees of heap blocks allocated while tracing.
    pub frees: u64,
    pub alloc_bytes: u64,
    /// Heap bytes allocated while tracing and not freed.
    pub live_bytes: u64,
    pub live_count: u64,
    /// Anonymous mapping bytes mapped while tracing and not unmapped.
    pub mapped_bytes: u64,
    pub mapped_count: u64,
    /// Anonymous mappings made while tracing.
    pub maps: u64,
    /// Resident set size at the end (0 when the process had already exited).
    pub rss_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Allocator calls not traced: ring buffer full, no room for a call in
    /// flight, unreadable results, returns without an entry.
    pub events: u64,
    /// Events whose stack was not stored (only the immediate caller is known).
    pub stacks: u64,
    pub ring_buffer_full: u64,
    pub calls_untracked: u64,
    pub results_unreadable: u64,
    pub returns_without_entry: u64,
    pub stack_collisions: u64,
    pub stack_failures: u64,
    /// Stacks that could not be read back from the kernel.
    pub stacks_unreadable: u64,
    /// Calls whose return was never seen (their thread left the call another way).
    pub stale_calls: u64,
}

impl Lost {
    /// Whether anything at all was lost.
    pub fn any(&self) -> bool {
        *self != Lost::default()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// The object whose malloc family was probed.
    pub heap_object: String,
    pub libc: String,
    pub points: Vec<ProbePointSummary>,
    /// Functions no probed object defines.
    pub missing: Vec<String>,
    /// Functions whose code is another's (`[alias, probed]`), probed once.
    #[serde(default)]
    pub aliases: Vec<[String; 2]>,
    /// Allocator calls made by the allocator itself (not counted twice).
    pub nested_calls: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbePointSummary {
    pub function: String,
    pub path: String,
    pub offset: u64,
    /// Bytes past the function's entry where the probe sits.
    pub skipped: u64,
    /// Whether the kernel emulates the probed instruction (cheap) rather than single-stepping it.
    pub emulated: bool,
}

/// One distinct allocation stack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Consumer {
    /// `heap` or `mmap`.
    pub kind: String,
    pub live_bytes: u64,
    pub live_count: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    /// The module charged with this consumer's memory.
    pub module: String,
    /// Innermost first; the first frame is the allocator's caller.
    pub frames: Vec<Frame>,
    /// Live allocations by age, bucketed by [`Report::age_buckets_s`].
    pub live_by_age: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModuleUsage {
    pub module: String,
    pub live_bytes: u64,
    pub live_count: u64,
    pub heap_bytes: u64,
    pub mapped_bytes: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since tracing began.
    pub t_s: f64,
    pub rss_bytes: u64,
    pub heap_bytes: u64,
    pub mapped_bytes: u64,
}

/// memtrace's own resource use.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct TracerUsage {
    /// memtrace's peak resident set size.
    pub peak_rss_bytes: u64,
    /// CPU time memtrace used, user and system.
    pub cpu_s: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Frames shown per consumer in the text report.
const TEXT_FRAMES: usize = 8;

impl Report {
    /// Writes the report for people, with the top `top` consumers.
    pub fn write_text(&self, out: &mut dyn io::Write, top: usize) -> io::Result<()> {
        out.write_all(self.text(top).as_bytes())
    }

    /// The report for people, with the top `top` consumers.
    pub fn text(&self, top: usize) -> String {
        let mut s = String::new();
        self.text_summary(&mut s);
        self.text_consumers(&mut s, top);
        self.text_modules(&mut s, top);
        if let Some(monitoring) = &self.monitoring {
            s.push_str(&monitoring.text(top));
        }
        s
    }

    fn text_summary(&self, s: &mut String) {
        let Totals {
            allocs,
            frees,
            alloc_bytes,
            live_bytes,
            live_count,
            mapped_bytes,
            mapped_count,
            maps,
            rss_bytes,
        } = self.totals;
        let _ = writeln!(
            s,
            "memtrace: pid {} `{}`, traced for {:.1} s",
            self.target.pid, self.target.command, self.duration_s
        );
        if let Some(exit) = self.exit {
            let how = match (exit.code, exit.signal) {
                (_, Some(signal)) => format!("killed by signal {signal}"),
                (Some(code), None) => format!("exited with status {code}"),
                (None, None) => "ended".to_owned(),
            };
            let _ = writeln!(s, "  command   {how}");
        }
        let _ = writeln!(
            s,
            "  heap      {} live in {}; {} allocated in {}, {}",
            bytes(live_bytes),
            counted(live_count, "block"),
            bytes(alloc_bytes),
            counted(allocs, "call"),
            counted(frees, "free")
        );
        let _ = writeln!(
            s,
            "  mmap      {} live in {}; {} made",
            bytes(mapped_bytes),
            counted(mapped_count, "region"),
            counted(maps, "anonymous mapping")
        );
        if rss_bytes > 0 {
            let _ = writeln!(s, "  rss       {} at the end", bytes(rss_bytes));
        }
        if self.lost.any() {
            let _ = writeln!(
                s,
                "  LOST      {} events, {} stacks: the numbers below are lower bounds \
                 (see `lost` in --json for each cause)",
                count(self.lost.events),
                count(self.lost.stacks)
            );
        } else {
            let _ = writeln!(s, "  lost      nothing");
        }
        let u = &self.untracked;
        if u.frees + u.reallocs + u.remaps > 0 || u.unmapped_bytes > 0 {
            let _ = writeln!(
                s,
                "  untracked {} frees and {} reallocs of memory from before tracing, {} unmapped outside traced mappings",
                count(u.frees),
                count(u.reallocs),
                bytes(u.unmapped_bytes)
            );
        }
        if u.reused_live_addresses > 0 {
            let _ = writeln!(
                s,
                "  WARNING   {} allocations reused a live address: frees were missed",
                count(u.reused_live_addresses)
            );
        }
    }

    fn text_consumers(&self, s: &mut String, top: usize) {
        let live: Vec<_> = self.consumers.iter().filter(|c| c.live_bytes > 0).collect();
        let _ = writeln!(
            s,
            "\nTop {} of {} consumers by live bytes",
            live.len().min(top),
            live.len()
        );
        for (rank, consumer) in live.iter().take(top).enumerate() {
            let _ = writeln!(
                s,
                "{:>3}. {} live in {} ({} allocated in {})  charged to {}",
                rank + 1,
                bytes(consumer.live_bytes),
                counted(
                    consumer.live_count,
                    if consumer.kind == "mmap" {
                        "region"
                    } else {
                        "block"
                    }
                ),
                bytes(consumer.alloc_bytes),
                counted(consumer.alloc_count, "call"),
                consumer.module
            );
            for frame in consumer.frames.iter().take(TEXT_FRAMES) {
                let _ = writeln!(s, "       {}", frame_text(frame));
            }
            if consumer.frames.len() > TEXT_FRAMES {
                let _ = writeln!(
                    s,
                    "       ... {} more frames",
                    consumer.frames.len() - TEXT_FRAMES
                );
            }
        }
    }

    fn text_modules(&self, s: &mut String, top: usize) {
        let modules: Vec<_> = self.modules.iter().filter(|m| m.live_bytes > 0).collect();
        let _ = writeln!(s, "\nModules by live bytes");
        let _ = writeln!(s, "  {:>12}  {:>10}  module", "live", "count");
        for module in modules.iter().take(top) {
            let _ = writeln!(
                s,
                "  {:>12}  {:>10}  {}",
                bytes(module.live_bytes),
                count(module.live_count),
                module.module
            );
        }
    }
}

fn frame_text(frame: &Frame) -> String {
    let function = frame.function.as_deref().unwrap_or("??");
    let module = frame.module.rsplit('/').next().unwrap_or(&frame.module);
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{function} at {file}:{line} [{module}]"),
        _ => match frame.offset {
            Some(offset) => format!("{function} [{module}+{offset:#x}]"),
            None => format!("{function} [{module} at {:#x}]", frame.address),
        },
    }
}

/// Formats a byte count with a binary unit.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Formats a signed byte count (a growth) with a binary unit.
pub fn signed_bytes(n: f64) -> String {
    let sign = if n < 0.0 { "-" } else { "+" };
    format!("{sign}{}", bytes(n.abs() as u64))
}

/// Formats a count of things, with the noun in the singular or the plural.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", count(n))
    }
}

/// Formats a count with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
        assert_eq!(signed_bytes(-2048.0), "-2.00 KiB");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(counted(1, "block"), "1 block");
        assert_eq!(counted(1000, "block"), "1,000 blocks");
    }
}
