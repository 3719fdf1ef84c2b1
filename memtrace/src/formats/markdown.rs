//! A markdown report for people and pull-request comments: the summary, a
//! warning when events were lost, alerts, the top consumers with their top
//! frames, the modules, and the memory over time.

use std::io::{self, Write};

use super::{Measure, module_name, units, weighed};
use crate::report::counted;
use crate::{
    report::{MemorySample, Report, bytes, count},
    symbolize::Frame,
};

/// Consumers listed.
const TOP_CONSUMERS: usize = 10;
/// Frames listed per consumer.
const TOP_FRAMES: usize = 6;
/// Modules listed.
const TOP_MODULES: usize = 10;
/// Rows of the memory timeline at most.
const TIMELINE_ROWS: usize = 20;

/// An alert to list in the report.
///
/// Alerts are raised elsewhere; the report needs only how severe each is and
/// what it says. [`Alert::from_json`] reads any JSON object that has a
/// `message` (or `title`) string and optionally a `severity` (or `level`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `error`, `warning`, `info` or anything else worth showing in bold.
    pub severity: String,
    pub message: String,
}

impl Alert {
    /// Reads an alert from its JSON form; `None` when it has no message.
    #[must_use]
    pub fn from_json(value: &serde_json::Value) -> Option<Alert> {
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| value.get(*k)?.as_str())
                .map(str::to_owned)
        };
        Some(Alert {
            message: text(&["message", "title"])?,
            severity: text(&["severity", "level"]).unwrap_or_else(|| "warning".to_owned()),
        })
    }
}

/// Writes the markdown report of `report`, ranking consumers by `measure`.
pub fn write(
    report: &Report,
    measure: Measure,
    alerts: &[Alert],
    out: &mut dyn Write,
) -> io::Result<()> {
    summary(report, out)?;
    lost(report, out)?;
    alert_list(alerts, out)?;
    consumers(report, measure, out)?;
    modules(report, out)?;
    timeline(&report.memory, out)
}

fn summary(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let t = &report.totals;
    writeln!(
        out,
        "## memtrace: {} (pid {})\n",
        code(&report.target.command),
        report.target.pid
    )?;
    let ending = match report.exit {
        Some(exit) => match (exit.code, exit.signal) {
            (_, Some(signal)) => format!("; the command was killed by signal {signal}"),
            (Some(code), None) => format!("; the command exited with status {code}"),
            (None, None) => String::new(),
        },
        None => String::new(),
    };
    writeln!(out, "Traced for {:.1} s{ending}.\n", report.duration_s)?;
    writeln!(out, "| | live at the end | while tracing |")?;
    writeln!(out, "|---|---:|---:|")?;
    writeln!(
        out,
        "| heap | {} in {} | {} in {}, {} |",
        bytes(t.live_bytes),
        counted(t.live_count, "block"),
        bytes(t.alloc_bytes),
        counted(t.allocs, "allocation"),
        counted(t.frees, "free")
    )?;
    writeln!(
        out,
        "| anonymous mappings | {} in {} | {} |",
        bytes(t.mapped_bytes),
        counted(t.mapped_count, "region"),
        counted(t.maps, "mapping")
    )?;
    if t.rss_bytes > 0 {
        writeln!(out, "| resident set | {} | |", bytes(t.rss_bytes))?;
    }
    writeln!(out)
}

fn lost(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if !report.lost.any() {
        return Ok(());
    }
    writeln!(out, "> [!WARNING]")?;
    writeln!(
        out,
        "> memtrace lost {} events and {} stacks: every number below is a lower bound.\n",
        count(report.lost.events),
        count(report.lost.stacks)
    )
}

fn alert_list(alerts: &[Alert], out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "### Alerts\n")?;
    if alerts.is_empty() {
        return writeln!(out, "None.\n");
    }
    for alert in alerts {
        writeln!(
            out,
            "- **{}** {}",
            alert.severity,
            alert.message.replace('\n', " ")
        )?;
    }
    writeln!(out)
}

fn consumers(report: &Report, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    let mut ranked: Vec<_> = weighed(report, measure).collect();
    ranked.sort_by_key(|&(_, value)| std::cmp::Reverse(value));
    writeln!(
        out,
        "### Top {} of {} consumers by {}\n",
        ranked.len().min(TOP_CONSUMERS),
        ranked.len(),
        measure.label()
    )?;
    if ranked.is_empty() {
        return writeln!(out, "None.\n");
    }
    for (rank, (consumer, value)) in ranked.iter().take(TOP_CONSUMERS).enumerate() {
        writeln!(
            out,
            "{}. **{}** {}: {} live in {}, {} allocated in {}; charged to {}",
            rank + 1,
            measure.format(*value),
            measure.label(),
            bytes(consumer.live_bytes),
            counted(consumer.live_count, units(&consumer.kind)),
            bytes(consumer.alloc_bytes),
            counted(consumer.alloc_count, "call"),
            code(module_name(&consumer.module))
        )?;
        for frame in consumer.frames.iter().take(TOP_FRAMES) {
            writeln!(out, "   - {}", frame_text(frame))?;
        }
        if consumer.frames.len() > TOP_FRAMES {
            writeln!(
                out,
                "   - … {} more frames",
                consumer.frames.len() - TOP_FRAMES
            )?;
        }
    }
    writeln!(out)
}

fn modules(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "### Modules by live bytes\n")?;
    writeln!(
        out,
        "| module | live | blocks and regions | heap | mapped |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    for module in report.modules.iter().take(TOP_MODULES) {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            code(module_name(&module.module)),
            bytes(module.live_bytes),
            count(module.live_count),
            bytes(module.heap_bytes),
            bytes(module.mapped_bytes)
        )?;
    }
    if report.modules.len() > TOP_MODULES {
        writeln!(
            out,
            "\n{} more modules hold less.",
            report.modules.len() - TOP_MODULES
        )?;
    }
    writeln!(out)
}

fn timeline(memory: &[MemorySample], out: &mut dyn Write) -> io::Result<()> {
    if memory.is_empty() {
        return Ok(());
    }
    writeln!(out, "### Memory over time\n")?;
    writeln!(out, "| time | heap | mapped | resident |")?;
    writeln!(out, "|---:|---:|---:|---:|")?;
    for sample in downsample(memory, TIMELINE_ROWS) {
        writeln!(
            out,
            "| {:.1} s | {} | {} | {} |",
            sample.t_s,
            bytes(sample.heap_bytes),
            bytes(sample.mapped_bytes),
            bytes(sample.rss_bytes)
        )?;
    }
    writeln!(out)
}

/// At most `rows` samples spread evenly over `samples`, the first and last included.
#[must_use]
pub fn downsample(samples: &[MemorySample], rows: usize) -> Vec<MemorySample> {
    if samples.len() <= rows {
        return samples.to_vec();
    }
    if rows < 2 {
        return samples.last().copied().into_iter().take(rows).collect();
    }
    let last = samples.len() - 1;
    (0..rows).map(|i| samples[i * last / (rows - 1)]).collect()
}

fn frame_text(frame: &Frame) -> String {
    let function = frame
        .function
        .as_deref()
        .map_or_else(|| format!("{:#x}", frame.address), str::to_owned);
    let at = match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!(" at {}", code(&format!("{file}:{line}"))),
        _ => String::new(),
    };
    format!(
        "{}{at} in {}",
        code(&function),
        code(module_name(&frame.module))
    )
}

/// `text` as inline code that survives tables: backticks become quotes and
/// pipes are escaped.
fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    fn render(report: &Report, alerts: &[Alert]) -> String {
        let mut out = Vec::new();
        write(report, Measure::LiveBytes, alerts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn consumers_are_ranked_with_their_frames() {
        let text = render(&fixture::sample(), &[]);
        let first = text.find("1. **4.00 KiB** live bytes").unwrap();
        let second = text.find("2. **1000 B** live bytes").unwrap();
        assert!(first < second, "{text}");
        assert!(
            text.contains("- `make_node` at `/src/app.c:7` in `server`"),
            "{text}"
        );
        assert!(text.contains("- `0x7f00dead0000` in `[jit]`"), "{text}");
        assert!(
            !text.contains("temp_work"),
            "consumers holding nothing are left out"
        );
    }

    #[test]
    fn lost_events_bring_a_warning() {
        let mut report = fixture::sample();
        assert!(!render(&report, &[]).contains("[!WARNING]"));
        report.lost.events = 12;
        assert!(render(&report, &[]).contains("memtrace lost 12 events"));
    }

    #[test]
    fn the_timeline_is_cut_to_twenty_rows_keeping_both_ends() {
        let report = fixture::sample();
        let rows = downsample(&report.memory, TIMELINE_ROWS);
        assert_eq!(rows.len(), TIMELINE_ROWS);
        assert!((rows[0].t_s - 0.0).abs() < f64::EPSILON);
        assert!((rows[TIMELINE_ROWS - 1].t_s - 120.0).abs() < f64::EPSILON);
        let text = render(&report, &[]);
        assert_eq!(text.matches(" s | ").count(), TIMELINE_ROWS);
    }

    #[test]
    fn alerts_are_read_from_json_and_listed() {
        let values = [
            serde_json::json!({"severity": "error", "message": "heap grows 5 MiB/min"}),
            serde_json::json!({"level": "info", "title": "rss is flat"}),
            serde_json::json!({"kind": "no message"}),
        ];
        let alerts: Vec<_> = values.iter().filter_map(Alert::from_json).collect();
        assert_eq!(alerts.len(), 2);
        let text = render(&fixture::sample(), &alerts);
        assert!(text.contains("- **error** heap grows 5 MiB/min"));
        assert!(text.contains("- **info** rss is flat"));
    }

    #[test]
    fn pipes_in_names_do_not_break_tables() {
        assert_eq!(code("operator|"), "`operator\\|`");
    }
}
