//! `memtrace check`: budgets on real runs, and its exit codes.

use crate::harness::{compile, run_memtrace, scratch_file, stderr};

#[test]
fn clean_program_passes() {
    let program = compile("clean", &["clean.c"], &[]);
    let output = run_memtrace(&[
        "check",
        "--quiet",
        "--",
        program.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("PASS"));
}

#[test]
fn leaky_program_fails_with_status_one_and_a_junit_file() {
    let program = compile("hello", &["hello.c"], &[]);
    let junit = scratch_file("leaky.junit.xml");
    let output = run_memtrace(&[
        "check",
        "--quiet",
        "--junit",
        junit.to_str().expect("utf-8 path"),
        "--",
        program.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("16 B"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit file");
    assert!(
        xml.contains("<testsuite") && xml.contains("<failure"),
        "{xml}"
    );
}

#[test]
fn suppression_turns_the_failure_into_a_pass() {
    let program = compile("hello", &["hello.c"], &[]);
    let suppressions = scratch_file("hello.supp");
    std::fs::write(&suppressions, "# the one block hello keeps\nleak:main\n").expect("write");
    let output = run_memtrace(&[
        "check",
        "--quiet",
        "--suppressions",
        suppressions.to_str().expect("utf-8 path"),
        "--",
        program.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn budget_allows_what_it_says() {
    let program = compile("hello", &["hello.c"], &[]);
    let path = program.to_str().expect("utf-8 path");
    let within = run_memtrace(&["check", "--quiet", "--max-leaked-bytes", "16", "--", path]);
    assert_eq!(within.status.code(), Some(0), "{}", stderr(&within));
    let over = run_memtrace(&["check", "--quiet", "--max-leaked-bytes", "15", "--", path]);
    assert_eq!(over.status.code(), Some(1), "{}", stderr(&over));
}

#[test]
fn memtrace_failures_exit_two() {
    let bad_pid = run_memtrace(&[
        "check",
        "--pid",
        "4194305",
        "--duration",
        "1s",
        "--max-growth",
        "1MiB",
    ]);
    assert_eq!(bad_pid.status.code(), Some(2), "{}", stderr(&bad_pid));
    let no_window = run_memtrace(&["check", "--pid", "1", "--max-growth", "1MiB"]);
    assert_eq!(no_window.status.code(), Some(2), "{}", stderr(&no_window));
    assert!(stderr(&no_window).contains("--duration"));
    let bad_suppressions = scratch_file("bad.supp");
    std::fs::write(&bad_suppressions, "leek:main\n").expect("write");
    let output = run_memtrace(&[
        "check",
        "--suppressions",
        bad_suppressions.to_str().expect("utf-8 path"),
        "--",
        "true",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn live_report_files_are_written() {
    let program = compile("hello", &["hello.c"], &[]);
    let svg = scratch_file("hello.svg");
    let folded = scratch_file("hello.folded");
    let pprof = scratch_file("hello.pb.gz");
    let output = run_memtrace(&[
        "run",
        "--quiet",
        "--flamegraph",
        svg.to_str().expect("utf-8 path"),
        "--folded",
        folded.to_str().expect("utf-8 path"),
        "--pprof",
        pprof.to_str().expect("utf-8 path"),
        "--",
        program.to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let folded = std::fs::read_to_string(&folded).expect("folded file");
    assert!(
        folded
            .lines()
            .any(|l| l.contains("main [hello]") && l.ends_with(" 16")),
        "{folded}"
    );
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
    let gzip = std::fs::read(&pprof).expect("pprof file");
    assert_eq!(&gzip[..2], &[0x1f, 0x8b], "gzip magic");
}
