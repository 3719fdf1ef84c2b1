//! Compiling workloads, running memtrace, and reading its JSON reports.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

use serde_json::Value;

/// The memtrace binary under test.
pub fn memtrace() -> PathBuf {
    let path = std::env::var_os("MEMTRACE_BIN").map_or_else(
        || workspace().join("target/release/memtrace"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no memtrace binary at `{}`: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// A folder for this test run's builds and reports.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/integration");
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        dir
    })
}

/// Compiles workload sources into `output` with extra flags, once per test
/// run (tests run in parallel, and must not rewrite a binary another is
/// tracing); returns its path.
pub fn compile(output: &str, sources: &[&str], flags: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let out = scratch().join(output);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if built.iter().any(|b| b == output) {
        return out;
    }
    let workloads = workspace().join("tests/workloads");
    let status = Command::new("gcc")
        .args([
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
        ])
        .args(["-fno-builtin-malloc", "-Wno-alloc-size-larger-than", "-o"])
        .arg(&out)
        .args(sources.iter().map(|s| workloads.join(s)))
        .args(flags)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed on {sources:?}");
    built.push(output.to_owned());
    out
}

/// A unique path in the scratch folder.
pub fn scratch_file(name: &str) -> PathBuf {
    scratch().join(format!("{name}-{}", std::process::id()))
}

/// Reads a JSON report.
pub fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at `{}`: {e}", path.display()));
    serde_json::from_str(&text).expect("report is JSON")
}

/// Runs memtrace with `args`; returns its output.
pub fn run_memtrace(args: &[&str]) -> Output {
    Command::new(memtrace())
        .args(args)
        .output()
        .expect("run memtrace")
}

/// Runs `memtrace run --quiet --json FILE -- COMMAND`; returns memtrace's
/// exit status and the report (`name` names the report file).
pub fn run_traced(name: &str, command: &[&str]) -> (Option<i32>, Value) {
    let json = scratch_file(&format!("{name}.json"));
    let mut args = vec![
        "run",
        "--quiet",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--",
    ];
    args.extend_from_slice(command);
    let output = run_memtrace(&args);
    assert!(json.exists(), "no report: {}", stderr(&output));
    (output.status.code(), read_report(&json))
}

/// The consumers whose first frame is in `function`.
pub fn consumers_in<'a>(report: &'a Value, function: &str) -> Vec<&'a Value> {
    report["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .filter(|c| c["frames"][0]["function"].as_str() == Some(function))
        .collect()
}

/// Sums a numeric field over consumers.
pub fn sum(consumers: &[&Value], field: &str) -> u64 {
    consumers
        .iter()
        .map(|c| c[field].as_u64().expect("number"))
        .sum()
}

/// Asserts that nothing was lost while tracing.
pub fn assert_nothing_lost(report: &Value) {
    let lost = &report["lost"];
    assert_eq!(lost["events"], 0, "events lost: {lost}");
    assert_eq!(lost["stacks"], 0, "stacks lost: {lost}");
    assert_eq!(lost["stale_calls"], 0, "calls that never returned: {lost}");
}

/// The text of memtrace's stderr, for failure messages.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
