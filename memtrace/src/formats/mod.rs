//! Offline renderings of a JSON report: folded stacks, SVG flame graphs,
//! pprof and speedscope profiles, and markdown for people and PR comments.
//!
//! Every renderer reads a [`Report`] and writes to a `&mut dyn Write`; the
//! `report` command ([`run_report`]) loads a report written by `--json` and
//! picks one through [`render`]. Stacks are drawn root first, so a frame's
//! width is the memory held below it.

pub mod folded;
pub mod markdown;
#[cfg(feature = "pprof")]
pub mod pprof;
pub mod speedscope;
#[cfg(feature = "flamegraph")]
pub mod svg;

use std::{
    fs,
    io::{self, IsTerminal as _, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::ValueEnum;

use crate::{
    report::{Consumer, REPORT_VERSION, Report},
    symbolize::{Frame, JIT_MODULE, UNKNOWN_MODULE},
};

/// What a profile weighs each stack by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ValueEnum)]
pub enum Measure {
    /// Bytes still allocated at the end.
    #[default]
    LiveBytes,
    /// Blocks and regions still allocated at the end.
    LiveCount,
    /// Bytes allocated while tracing, freed or not.
    AllocBytes,
    /// Allocator calls made while tracing.
    AllocCount,
}

impl Measure {
    /// Every measure, in the order profiles with several sample types list them.
    pub const ALL: [Measure; 4] = [
        Measure::LiveBytes,
        Measure::LiveCount,
        Measure::AllocBytes,
        Measure::AllocCount,
    ];

    /// The consumer's value in this measure.
    #[must_use]
    pub fn of(self, consumer: &Consumer) -> u64 {
        match self {
            Measure::LiveBytes => consumer.live_bytes,
            Measure::LiveCount => consumer.live_count,
            Measure::AllocBytes => consumer.alloc_bytes,
            Measure::AllocCount => consumer.alloc_count,
        }
    }

    /// What the measure is called in titles, e.g. `live bytes`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Measure::LiveBytes => "live bytes",
            Measure::LiveCount => "live allocations",
            Measure::AllocBytes => "allocated bytes",
            Measure::AllocCount => "allocations",
        }
    }

    /// Whether the measure counts bytes (rather than allocations).
    #[must_use]
    pub fn is_bytes(self) -> bool {
        matches!(self, Measure::LiveBytes | Measure::AllocBytes)
    }

    /// A value of this measure for people: `1.50 KiB` or `1,024`.
    #[must_use]
    pub fn format(self, value: u64) -> String {
        if self.is_bytes() {
            crate::report::bytes(value)
        } else {
            crate::report::count(value)
        }
    }
}

/// The output formats of `memtrace report`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per stack, root first, for `flamegraph.pl` and inferno.
    Folded,
    /// An interactive SVG flame graph.
    Svg,
    /// A gzip-compressed pprof protobuf profile (binary).
    Pprof,
    /// A speedscope JSON profile.
    Speedscope,
    /// A markdown report for people and pull-request comments.
    #[default]
    Markdown,
    /// The JSON report itself, re-serialized.
    Json,
}

impl Format {
    /// Whether the format is binary, and so must not go to a terminal.
    #[must_use]
    pub fn is_binary(self) -> bool {
        self == Format::Pprof
    }
}

/// Writes `report` in `format`, weighing stacks by `measure` where the format
/// holds a single one (pprof and speedscope carry every measure and open on
/// `measure`).
pub fn render(
    report: &Report,
    format: Format,
    measure: Measure,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        Format::Folded => folded::write(report, measure, out)?,
        Format::Svg => write_svg(report, measure, out)?,
        Format::Pprof => write_pprof(report, measure, out)?,
        Format::Speedscope => speedscope::write(report, measure, out)?,
        Format::Markdown => markdown::write(report, measure, &[], out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(feature = "flamegraph")]
fn write_svg(report: &Report, measure: Measure, out: &mut dyn Write) -> anyhow::Result<()> {
    Ok(svg::write(report, measure, out)?)
}

#[cfg(not(feature = "flamegraph"))]
fn write_svg(_: &Report, _: Measure, _: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::bail!(
        "this memtrace was built without the `flamegraph` feature: SVG output is unavailable"
    )
}

#[cfg(feature = "pprof")]
fn write_pprof(report: &Report, measure: Measure, out: &mut dyn Write) -> anyhow::Result<()> {
    Ok(pprof::write(report, measure, out)?)
}

#[cfg(not(feature = "pprof"))]
fn write_pprof(_: &Report, _: Measure, _: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::bail!(
        "this memtrace was built without the `pprof` feature: pprof output is unavailable"
    )
}

/// Arguments of `memtrace report`: render a saved JSON report offline.
#[derive(Clone, Debug, clap::Args)]
pub struct ReportArgs {
    /// A JSON report written by `memtrace --json FILE`.
    #[arg(value_name = "INPUT.json")]
    pub input: PathBuf,

    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,

    /// What to weigh each stack by.
    #[arg(long, value_enum, default_value_t = Measure::LiveBytes)]
    pub measure: Measure,

    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `memtrace report`.
pub fn run_report(args: &ReportArgs) -> anyhow::Result<()> {
    let report = load_report(&args.input)?;

    let output = args
        .output
        .as_deref()
        .filter(|path| path.as_os_str() != "-");
    if let Some(path) = output {
        let mut out = Vec::new();
        render(&report, args.format, args.measure, &mut out)?;
        return fs::write(path, out)
            .with_context(|| format!("failed to write `{}`", path.display()));
    }

    let stdout = io::stdout();
    if args.format.is_binary() && stdout.is_terminal() {
        anyhow::bail!(
            "refusing to write a binary pprof profile to a terminal: give `--output FILE` or redirect stdout"
        );
    }
    let mut out = io::BufWriter::new(stdout.lock());
    render(&report, args.format, args.measure, &mut out)?;
    out.flush()?;
    Ok(())
}

/// Reads a JSON report written by `memtrace --json`.
pub fn load_report(path: &Path) -> anyhow::Result<Report> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the report `{}`", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a memtrace JSON report", path.display()))?;
    if report.version > REPORT_VERSION {
        anyhow::bail!(
            "`{}` is a version {} report and this memtrace reads up to version {REPORT_VERSION}: upgrade memtrace",
            path.display(),
            report.version
        );
    }
    Ok(report)
}

/// The noun for what a consumer of `kind` allocates: regions of `mmap`, blocks of the heap.
#[must_use]
pub fn units(kind: &str) -> &'static str {
    if kind == "mmap" { "region" } else { "block" }
}

/// The last component of a module's path: `libc.so.6` for `/usr/lib/libc.so.6`.
#[must_use]
pub fn module_name(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

/// Whether a frame's code was generated at run time or lies in no mapping.
#[must_use]
pub fn is_unmapped(frame: &Frame) -> bool {
    frame.module == JIT_MODULE || frame.module == UNKNOWN_MODULE
}

/// A frame's name in flame graphs: `function [module]`, or
/// `0xADDRESS [module]` when the function is unknown. JIT and unmapped code
/// carry `[jit]` and `[unknown]`. The module suffix lets a viewer's search
/// highlight one module's share; `;` and line breaks, which folded stacks
/// reserve, become spaces.
#[must_use]
pub fn frame_name(frame: &Frame) -> String {
    let module = module_name(&frame.module);
    let tag = if is_unmapped(frame) {
        module.to_owned()
    } else {
        format!("[{module}]")
    };
    let name = match frame.function.as_deref() {
        Some(function) => format!("{function} {tag}"),
        None => match frame.offset {
            Some(offset) => format!("+{offset:#x} {tag}"),
            None => format!("{:#x} {tag}", frame.address),
        },
    };
    name.replace([';', '\n', '\r'], " ")
}

/// The module a frame name built by [`frame_name`] ends with.
#[must_use]
pub fn module_of_name(name: &str) -> Option<&str> {
    let start = name.rfind(" [")?;
    name[start + 2..].strip_suffix(']')
}

/// The consumers with a non-zero value in `measure`, with that value.
pub fn weighed(report: &Report, measure: Measure) -> impl Iterator<Item = (&Consumer, u64)> {
    report
        .consumers
        .iter()
        .map(move |consumer| (consumer, measure.of(consumer)))
        .filter(|&(_, value)| value > 0)
}

/// The profile's title, e.g. ``memtrace: live bytes of pid 42 `./server` ``.
#[must_use]
pub fn title(report: &Report, measure: Measure) -> String {
    format!(
        "memtrace: {} of pid {} `{}`",
        measure.label(),
        report.target.pid,
        report.target.command
    )
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A small report built in code, with a known shape, for the renderers' tests.

    use crate::{
        report::{
            Consumer, Lost, MemorySample, ModuleUsage, ProbeSummary, REPORT_VERSION, Report,
            Target, Totals, TracerUsage, Untracked,
        },
        symbolize::Frame,
    };

    /// A frame in `module`, with a function name unless it is `None`.
    pub fn frame(address: u64, function: Option<&str>, module: &str, line: Option<u32>) -> Frame {
        Frame {
            address,
            function: function.map(str::to_owned),
            module: module.to_owned(),
            offset: None,
            file: line.map(|_| "/src/app.c".to_owned()),
            line,
        }
    }

    /// A heap consumer holding `live_bytes` in `live_count` blocks.
    pub fn consumer(live_bytes: u64, live_count: u64, frames: Vec<Frame>) -> Consumer {
        Consumer {
            kind: "heap".to_owned(),
            live_bytes,
            live_count,
            alloc_count: live_count * 2 + 1,
            alloc_bytes: live_bytes * 2 + 64,
            module: frames.first().map(|f| f.module.clone()).unwrap_or_default(),
            frames,
            live_by_age: vec![live_count],
        }
    }

    /// A report of `consumers`, its totals summed from them.
    pub fn report(consumers: Vec<Consumer>) -> Report {
        let totals = Totals {
            allocs: consumers.iter().map(|c| c.alloc_count).sum(),
            alloc_bytes: consumers.iter().map(|c| c.alloc_bytes).sum(),
            live_bytes: consumers.iter().map(|c| c.live_bytes).sum(),
            live_count: consumers.iter().map(|c| c.live_count).sum(),
            ..Totals::default()
        };
        Report {
            version: REPORT_VERSION,
            target: Target {
                pid: 4242,
                command: "./server --port 8080".to_owned(),
            },
            duration_s: 120.0,
            totals,
            lost: Lost::default(),
            untracked: Untracked::default(),
            probes: ProbeSummary::default(),
            age_buckets_s: vec![u64::MAX],
            modules: vec![ModuleUsage {
                module: "/usr/bin/server".to_owned(),
                live_bytes: totals.live_bytes,
                live_count: totals.live_count,
                heap_bytes: totals.live_bytes,
                mapped_bytes: 0,
            }],
            memory: (0..=120)
                .map(|t| MemorySample {
                    t_s: f64::from(t),
                    rss_bytes: 1 << 20,
                    heap_bytes: u64::from(t as u32) * 1000,
                    mapped_bytes: 0,
                })
                .collect(),
            consumers,
            monitoring: None,
            tracer: TracerUsage::default(),
            exit: None,
        }
    }

    /// Three consumers: two in the server sharing `main`, one in a JIT.
    pub fn sample() -> Report {
        report(vec![
            consumer(
                4096,
                4,
                vec![
                    frame(0x1010, Some("make_node"), "/usr/bin/server", Some(7)),
                    frame(0x1020, Some("build_cache"), "/usr/bin/server", Some(8)),
                    frame(0x1030, Some("main"), "/usr/bin/server", Some(14)),
                ],
            ),
            consumer(
                1000,
                1,
                vec![
                    frame(0x2010, Some("load_config"), "/usr/lib/libconf.so", Some(9)),
                    frame(0x1030, Some("main"), "/usr/bin/server", Some(13)),
                ],
            ),
            consumer(
                300,
                3,
                vec![
                    frame(0x7f00_dead_0000, None, "[jit]", None),
                    frame(0x1040, Some("main"), "/usr/bin/server", Some(20)),
                ],
            ),
            consumer(
                0,
                0,
                vec![frame(
                    0x1050,
                    Some("temp_work"),
                    "/usr/bin/server",
                    Some(10),
                )],
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_carry_their_module_and_fall_back_to_the_address() {
        let known = fixture::frame(0x10, Some("parse;line"), "/usr/lib/libfoo.so.1", None);
        assert_eq!(frame_name(&known), "parse line [libfoo.so.1]");
        let jit = fixture::frame(0x7f00, None, JIT_MODULE, None);
        assert_eq!(frame_name(&jit), "0x7f00 [jit]");
        assert_eq!(module_of_name(&frame_name(&jit)), Some("jit"));
        assert_eq!(module_of_name("main [server]"), Some("server"));
    }

    #[test]
    fn a_report_that_is_not_json_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.json");
        fs::write(&path, "{\"version\": 1,").unwrap();
        let message = format!("{:#}", load_report(&path).unwrap_err());
        assert!(
            message.contains("broken.json` is not a memtrace JSON report"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn a_report_from_a_newer_memtrace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.json");
        let mut report = fixture::sample();
        report.version = REPORT_VERSION + 1;
        fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
        let message = format!("{:#}", load_report(&path).unwrap_err());
        assert!(message.contains("upgrade memtrace"), "{message}");
    }
}
