//! Monitoring a real leaking process: snapshots, patterns and alerts.

use serde_json::Value;

use crate::harness::{compile, read_report, run_memtrace, scratch, scratch_file, stderr};

/// A process leaking steadily from a shared library, next to a bounded
/// cache, ends with a leak alert that names the leaking stack and module,
/// and no leak verdict for the cache.
#[test]
fn steady_leak_raises_a_leak_alert_naming_its_stack_and_module() {
    compile("libleaky.so", &["libleaky.c"], &["-shared", "-fPIC"]);
    let library_dir = scratch().to_str().expect("utf-8 path");
    let program = compile(
        "leaker",
        &["leaker.c"],
        &["-L", library_dir, "-lleaky", "-Wl,-rpath,$ORIGIN"],
    );
    let alerts = scratch_file("leak-alerts.jsonl");
    let events = scratch_file("leak-events.jsonl");
    let json = scratch_file("leak.json");
    let output = run_memtrace(&[
        "run",
        "--quiet",
        "--duration",
        "8s",
        "--snapshot-interval",
        "100ms",
        "--analysis-interval",
        "1s",
        "--analysis-window",
        "3s",
        "--alert-file",
        alerts.to_str().expect("utf-8 path"),
        "--events",
        events.to_str().expect("utf-8 path"),
        "--json",
        json.to_str().expect("utf-8 path"),
        "--",
        program.to_str().expect("utf-8 path"),
    ]);
    // The command was stopped with SIGTERM at the end of `--duration`.
    assert_eq!(output.status.code(), Some(128 + 15), "{}", stderr(&output));

    let alerts: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alert file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert is JSON"))
        .collect();
    let leak = alerts
        .iter()
        .find(|a| {
            a["type"] == "pattern" && a["message"].as_str().is_some_and(|m| m.contains("leak"))
        })
        .unwrap_or_else(|| panic!("no leak alert in {alerts:#?}"));
    let consumer = &leak["consumer"];
    assert!(
        consumer["module"]
            .as_str()
            .is_some_and(|m| m.ends_with("/libleaky.so")),
        "{leak}"
    );
    let named = consumer["label"]
        .as_str()
        .is_some_and(|l| l.contains("lib_allocate"))
        || consumer["label"]
            .as_str()
            .is_some_and(|l| l.ends_with("/libleaky.so"));
    assert!(named, "{leak}");

    let report = read_report(&json);
    let patterns = report["monitoring"]["consumers"]
        .as_array()
        .expect("patterns");
    let pattern_of = |needle: &str| {
        patterns
            .iter()
            .find(|p| {
                p["consumer"]["label"]
                    .as_str()
                    .is_some_and(|l| l.contains(needle))
            })
            .map(|p| {
                p["verdict"]["pattern"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    assert_eq!(pattern_of("lib_allocate").as_deref(), Some("leak"));
    assert_ne!(
        pattern_of("cache_put").as_deref(),
        Some("leak"),
        "a bounded cache is no leak"
    );

    let events = std::fs::read_to_string(&events).expect("event stream");
    let kinds: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["type"].as_str().map(str::to_owned))
        .collect();
    for kind in ["snapshot", "pattern", "alert"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no `{kind}` event in the stream"
        );
    }
}
