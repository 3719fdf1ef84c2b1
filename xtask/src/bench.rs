//! `cargo xtask bench`: what tracing costs, measured in one run.
//!
//! - Overhead: a workload of about 2 M allocator calls, bare and under
//!   `memtrace run`, alternated over several rounds; the ratio of the
//!   medians of the workload's own loop time, and the whole command's wall
//!   time (which adds attaching and detaching).
//! - Probe cost: per allocator call, with every probe at its function's
//!   entry and with probes moved to the cheapest site (glibc's `free` starts
//!   with an instruction the kernel must single-step).
//! - memtrace's own peak RSS and lost events, from its JSON report.
//! - The bare cost of one probe hit, by the instruction at the probe site.
//! - The bare cost of one probe hit, by the instruction at the probe site.
//! - Aggregation throughput on synthetic events, on one core.
//! - The growth classifier's precision and recall on a labelled corpus.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap::Toolchain,
    tasks::{self, cargo, workspace_root},
};

const CALLS: u64 = 2_000_000;
const ROUNDS: usize = 5;

/// One traced run's figures.
struct Traced {
    /// The workload's loop.
    elapsed: Duration,
    /// The whole `memtrace run` command.
    wall: Duration,
    peak_rss_bytes: u64,
    lost_events: u64,
    lost_stacks: u64,
    events: u64,
}

pub fn run() -> anyhow::Result<()> {
    let toolchain = crate::bootstrap::run()?;
    let memtrace = tasks::build_with(&toolchain)?;
    let workload = tasks::compile_c("bench-churn", &["xtask/bench/churn.c"], &[])?;
    let calls = CALLS.to_string();

    let mut bare = Vec::new();
    let mut shifted = Vec::new();
    let mut at_entry = Vec::new();
    for round in 0..ROUNDS {
        eprintln!("xtask: bench round {}/{ROUNDS}", round + 1);
        bare.push(time_bare(&workload, &calls)?);
        shifted.push(time_traced(&memtrace, &workload, &calls, false)?);
        at_entry.push(time_traced(&memtrace, &workload, &calls, true)?);
    }

    let bare_s = median(bare.clone());
    let shifted_s = median(shifted.iter().map(|t| t.elapsed).collect());
    let entry_s = median(at_entry.iter().map(|t| t.elapsed).collect());
    let wall_s = median(shifted.iter().map(|t| t.wall).collect());
    let per_call_us = |traced: f64| (traced - bare_s) / CALLS as f64 * 1e6;
    let frees = CALLS / 2;
    let lost_events: u64 = shifted.iter().chain(&at_entry).map(|t| t.lost_events).sum();
    let lost_stacks: u64 = shifted.iter().chain(&at_entry).map(|t| t.lost_stacks).sum();
    let peak_rss = shifted.iter().map(|t| t.peak_rss_bytes).max().unwrap_or(0);
    let events = shifted.first().map_or(0, |t| t.events);

    println!("workload: {CALLS} allocator calls (malloc and free), median of {ROUNDS} rounds");
    println!("  bare loop                     {bare_s:>8.3} s");
    println!(
        "  memtrace run                  {shifted_s:>8.3} s   slowdown {:>5.2}x   {:.2} us per call",
        shifted_s / bare_s,
        per_call_us(shifted_s)
    );
    println!(
        "  memtrace run, probes at entry {entry_s:>8.3} s   slowdown {:>5.2}x   {:.2} us per call",
        entry_s / bare_s,
        per_call_us(entry_s)
    );
    println!(
        "  free probe at entry (single-stepped) costs {:.2} us more per call than at its emulated site",
        (entry_s - shifted_s) / frees as f64 * 1e6
    );
    println!("  whole `memtrace run` command  {wall_s:>8.3} s   (attach, trace, report, detach)");
    println!("  events per traced run          {events}");
    println!("  lost events, all traced runs   {lost_events} (stacks: {lost_stacks})");
    println!(
        "  memtrace peak RSS              {:.1} MiB",
        peak_rss as f64 / f64::from(1 << 20)
    );

    let sites = tasks::compile_c("bench-probe-sites", &["xtask/bench/probe_sites.c"], &[])?;
    let sites = sites.to_str().context("non-UTF-8 path")?;
    example(&toolchain, "probe_cost", &[sites, "100000"])?;
    example(&toolchain, "aggregation", &[])?;
    example(&toolchain, "classifier_bench", &[])
}

/// Runs one of memtrace's benchmark examples and prints what it prints.
fn example(toolchain: &Toolchain, name: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = cargo(toolchain)
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "memtrace",
            "--example",
            name,
            "--",
        ])
        .args(args)
        .output()
        .with_context(|| format!("failed to run the `{name}` benchmark"))?;
    if !output.status.success() {
        bail!(
            "the `{name}` benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}

fn time_bare(workload: &Path, calls: &str) -> anyhow::Result<Duration> {
    let output = Command::new(workload).arg(calls).output()?;
    if !output.status.success() {
        bail!("`{}` failed", workload.display());
    }
    loop_time(&output.stderr)
}

/// The loop time the workload prints on stderr, in nanoseconds.
fn loop_time(stderr: &[u8]) -> anyhow::Result<Duration> {
    let text = String::from_utf8_lossy(stderr);
    let nanos: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("the workload printed no loop time: {text}"))?;
    Ok(Duration::from_nanos(nanos))
}

fn time_traced(
    memtrace: &Path,
    workload: &Path,
    calls: &str,
    at_entry: bool,
) -> anyhow::Result<Traced> {
    let json = workspace_root().join("target/c/bench-report.json");
    let mut command = Command::new(memtrace);
    command.args(["run", "--quiet", "--json"]).arg(&json);
    if at_entry {
        command.arg("--probe-at-entry");
    }
    command.arg("--").arg(workload).arg(calls);
    command.stdout(std::process::Stdio::null());

    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed();
    if !output.status.success() {
        bail!(
            "`memtrace run` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let elapsed = loop_time(&output.stderr)?;

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)
        .context("memtrace wrote an unreadable report")?;
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Ok(Traced {
        elapsed,
        wall,
        peak_rss_bytes: number("/tracer/peak_rss_bytes"),
        lost_events: number("/lost/events"),
        lost_stacks: number("/lost/stacks"),
        events: number("/totals/allocs") + number("/totals/frees") + number("/untracked/frees"),
    })
}

fn median(mut values: Vec<Duration>) -> f64 {
    values.sort();
    values[values.len() / 2].as_secs_f64()
}
