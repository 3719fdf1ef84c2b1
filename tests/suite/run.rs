//! `memtrace run`: exact numbers per call site, per module and per family.

use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{
    assert_nothing_lost, compile, consumers_in, run_memtrace, run_traced, scratch, stderr, sum,
};

const PAGE: u64 = 4096;

/// The `sites` workload traced once; its report and exit code are shared by
/// the tests below.
fn sites() -> &'static (Value, Option<i32>) {
    static RESULT: OnceLock<(Value, Option<i32>)> = OnceLock::new();
    RESULT.get_or_init(|| {
        compile("libleaky.so", &["libleaky.c"], &["-shared", "-fPIC"]);
        let library_dir = scratch().to_str().expect("utf-8 path");
        let program = compile(
            "sites",
            &["sites.c"],
            &["-L", library_dir, "-lleaky", "-Wl,-rpath,$ORIGIN"],
        );
        let (code, report) = run_traced("sites", &[program.to_str().expect("utf-8 path")]);
        (report, code)
    })
}

fn live(function: &str) -> (u64, u64) {
    let consumers = consumers_in(&sites().0, function);
    (sum(&consumers, "live_bytes"), sum(&consumers, "live_count"))
}

/// `run` exits with the command's own status.
#[test]
fn run_exits_with_the_commands_status() {
    let (report, code) = sites();
    assert_eq!(*code, Some(3), "memtrace exits with the command's status");
    assert_eq!(report["exit"]["code"], 3);
}

/// The probes are in place before the program's constructors run.
#[test]
fn allocation_before_main_is_traced() {
    assert_eq!(live("before_main"), (4242, 1));
}

#[test]
fn malloc_and_calloc_leaks_are_exact() {
    assert_eq!(live("leak_malloc"), (3000, 3));
    assert_eq!(live("leak_calloc"), (2 * 333 * 4, 2));
}

#[test]
fn aligned_allocations_are_exact() {
    assert_eq!(live("leak_posix_memalign"), (5 * 256, 5));
    assert_eq!(live("leak_aligned"), (512 + 96 + 100, 3));
}

/// A realloc chain leaves one block, charged to the last realloc's site.
#[test]
fn realloc_chain_leaves_one_block_at_the_realloc_site() {
    let consumers = consumers_in(&sites().0, "grow_realloc");
    assert_eq!(sum(&consumers, "live_bytes"), 5000);
    assert_eq!(sum(&consumers, "live_count"), 1);
    assert_eq!(
        sum(&consumers, "alloc_count"),
        4,
        "one malloc and three reallocs"
    );
}

/// glibc's `reallocarray` tail-jumps into `realloc`: one call, one event.
#[test]
fn reallocarray_is_one_allocation() {
    assert_eq!(live("grow_reallocarray"), (300, 1));
}

#[test]
fn realloc_to_zero_frees_the_block() {
    assert_eq!(live("realloc_to_zero"), (0, 0));
}

/// Churn that frees everything nets to zero, and failed calls record nothing.
#[test]
fn churn_nets_to_zero_and_failures_record_nothing() {
    let consumers = consumers_in(&sites().0, "churn");
    assert_eq!(sum(&consumers, "live_bytes"), 0);
    assert_eq!(sum(&consumers, "alloc_count"), 10_000);
    assert!(consumers_in(&sites().0, "failed_malloc").is_empty());
}

/// A leak inside a shared library is charged to that library.
#[test]
fn leak_in_shared_library_is_charged_to_it() {
    let report = &sites().0;
    let consumers = consumers_in(report, "lib_allocate");
    assert_eq!(sum(&consumers, "live_bytes"), 7000);
    for consumer in &consumers {
        let module = consumer["module"].as_str().expect("module");
        assert!(module.ends_with("/libleaky.so"), "charged to {module}");
    }
    let modules = report["modules"].as_array().expect("modules");
    let library = modules
        .iter()
        .find(|m| {
            m["module"]
                .as_str()
                .is_some_and(|m| m.ends_with("/libleaky.so"))
        })
        .expect("libleaky.so in the module table");
    assert_eq!(library["live_bytes"], 7000);
    assert_eq!(library["live_count"], 7);
}

/// The immediate caller and its caller are both in the stack, with lines.
#[test]
fn frames_name_the_call_site_and_its_callers() {
    let consumers = consumers_in(&sites().0, "lib_allocate");
    let frames = consumers[0]["frames"].as_array().expect("frames");
    assert_eq!(frames[1]["function"], "lib_leak");
    assert!(
        frames.iter().any(|f| f["function"] == "main"),
        "main in {frames:?}"
    );
    assert!(
        frames[0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("libleaky.c"))
    );
    assert!(frames[0]["line"].as_u64().is_some());
}

#[test]
fn mmap_leaks_are_exact_and_partial_munmap_splits() {
    let report = &sites().0;
    let leak = consumers_in(report, "leak_mmap");
    assert_eq!(sum(&leak, "live_bytes"), 3 * PAGE);
    assert_eq!(
        sum(&leak, "live_count"),
        2,
        "the hole splits the mapping in two"
    );
    assert!(leak.iter().all(|c| c["kind"] == "mmap"));
    assert_eq!(sum(&consumers_in(report, "mmap_unmapped"), "live_bytes"), 0);
    assert_eq!(
        sum(&consumers_in(report, "grow_mremap"), "live_bytes"),
        5 * PAGE
    );
    assert!(
        consumers_in(report, "file_mmap").is_empty(),
        "file mappings are not allocations"
    );
}

#[test]
fn totals_add_up_and_nothing_is_lost() {
    let report = &sites().0;
    assert_nothing_lost(report);
    let consumers: Vec<&Value> = report["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .collect();
    let heap: Vec<&Value> = consumers
        .iter()
        .copied()
        .filter(|c| c["kind"] == "heap")
        .collect();
    let mapped: Vec<&Value> = consumers
        .iter()
        .copied()
        .filter(|c| c["kind"] == "mmap")
        .collect();
    assert_eq!(
        report["totals"]["live_bytes"].as_u64(),
        Some(sum(&heap, "live_bytes"))
    );
    assert_eq!(
        report["totals"]["mapped_bytes"].as_u64(),
        Some(sum(&mapped, "live_bytes"))
    );
    assert!(report["probes"]["points"].as_array().expect("points").len() >= 10);
}

/// The text report goes to stdout; diagnostics and status lines to stderr.
#[test]
fn text_report_goes_to_stdout() {
    let program = compile("hello", &["hello.c"], &[]);
    let output = run_memtrace(&["run", "--", program.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Top 1 of 1 consumers by live bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("16 B live in 1 block"), "{stdout}");
    assert!(stdout.contains("lost      nothing"), "{stdout}");
}
