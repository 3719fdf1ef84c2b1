//! `memtrace --pid`: attaching to running processes.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::harness::{
    assert_nothing_lost, compile, consumers_in, memtrace, read_report, scratch_file, stderr, sum,
};

/// A workload that is killed when the test ends, however it ends.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts memtrace on `pid` and waits until it says it is attached.
fn attach(pid: u32, extra: &[&str]) -> (Child, std::path::PathBuf) {
    let json = scratch_file(&format!("attach-{pid}.json"));
    let mut child = Command::new(memtrace())
        .args([
            "--pid",
            &pid.to_string(),
            "--json",
            json.to_str().expect("utf-8"),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memtrace");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .next()
            .expect("memtrace ended before attaching")
            .expect("read stderr");
        if line.contains("attached to pid") {
            break;
        }
        assert!(Instant::now() < deadline, "memtrace did not attach: {line}");
    }
    // Keep draining stderr so memtrace never blocks on a full pipe.
    thread::spawn(move || for _ in lines {});
    (child, json)
}

/// Threads the target starts after the attach are traced, frees of blocks
/// from before the attach are counted apart, and the report comes when the
/// target exits.
#[test]
fn attach_traces_threads_started_later_and_reports_at_exit() {
    let program = compile("threads", &["threads.c"], &["-pthread"]);
    let mut workload = Workload(
        Command::new(&program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start workload"),
    );
    let mut ready = String::new();
    BufReader::new(workload.0.stdout.as_mut().expect("stdout"))
        .read_line(&mut ready)
        .expect("workload says ready");
    assert_eq!(ready.trim(), "ready");

    let (memtrace, json) = attach(workload.0.id(), &["--interval", "100ms"]);
    writeln!(workload.0.stdin.as_mut().expect("stdin"), "go").expect("release workload");
    let output = memtrace
        .wait_with_output()
        .expect("memtrace ends with its target");
    assert!(output.status.success(), "{}", stderr(&output));

    let report = read_report(&json);
    assert_nothing_lost(&report);
    let leaks = consumers_in(&report, "thread_leak");
    assert_eq!(sum(&leaks, "live_bytes"), 4 * 25 * 64);
    assert_eq!(sum(&leaks, "live_count"), 100);
    // The ten early blocks, and whatever the C library allocated before the
    // attach and frees as threads come and go.
    let early = report["untracked"]["frees"].as_u64().expect("count");
    assert!(
        early >= 10,
        "frees of blocks from before the attach: {early}"
    );
}

/// `--duration` ends tracing with a report while the target keeps running.
#[test]
fn duration_ends_tracing_and_leaves_the_target_running() {
    let program = compile("steady", &["steady.c"], &[]);
    let workload = Workload(Command::new(&program).spawn().expect("start workload"));
    let (memtrace, json) = attach(workload.0.id(), &["--duration", "1s"]);
    let output = memtrace.wait_with_output().expect("memtrace ends");
    assert!(output.status.success(), "{}", stderr(&output));

    let report = read_report(&json);
    let ticks = consumers_in(&report, "tick");
    let count = sum(&ticks, "live_count");
    assert!(
        (20..=150).contains(&count),
        "about 100 ticks a second, saw {count}"
    );
    assert_eq!(sum(&ticks, "live_bytes"), count * 100);
    assert!(!report["memory"].as_array().expect("memory").is_empty());
    let pid = workload.0.id();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "target still running"
    );
}

/// SIGINT (Ctrl-C) ends tracing with a text report on stdout and status 0.
#[test]
fn interrupt_prints_the_report_and_exits_zero() {
    let program = compile("steady", &["steady.c"], &[]);
    let workload = Workload(Command::new(&program).spawn().expect("start workload"));
    let (memtrace, _) = attach(workload.0.id(), &[]);
    thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling a child we started.
    unsafe { libc::kill(memtrace.id() as libc::pid_t, libc::SIGINT) };
    let output = memtrace.wait_with_output().expect("memtrace ends");
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("consumers by live bytes"), "{stdout}");
}
