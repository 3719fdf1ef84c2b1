//! Bad input: one clear line on stderr, exit status 2, nothing half-done.

use std::process::{Command, Output};

use crate::harness::{compile, memtrace, run_memtrace, stderr};

fn assert_fails_with(output: &Output, expected: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains(expected), "expected `{expected}` in: {text}");
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    assert!(output.stdout.is_empty(), "no report on failure");
}

#[test]
fn missing_pid_is_an_error() {
    // Above the largest pid Linux hands out.
    let output = run_memtrace(&["--pid", "4194305"]);
    assert_fails_with(&output, "no process with pid `4194305`");
}

#[test]
fn kernel_thread_is_an_error() {
    // kthreadd is always pid 2.
    let output = run_memtrace(&["--pid", "2"]);
    assert_fails_with(&output, "kernel thread");
}

#[test]
fn exited_process_is_an_error() {
    let child = Command::new("true").spawn().expect("start `true`");
    // Give it time to exit; not waiting for it keeps it a zombie.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let output = run_memtrace(&["--pid", &child.id().to_string()]);
    assert_fails_with(&output, "has exited");
    drop(child);
}

#[test]
fn command_not_found_is_an_error() {
    let output = run_memtrace(&["run", "--", "memtrace-no-such-command"]);
    assert_fails_with(&output, "command `memtrace-no-such-command` not found");
}

#[test]
fn statically_linked_command_is_an_error() {
    let program = compile("hello-static", &["hello.c"], &["-static"]);
    let output = run_memtrace(&["run", "--", program.to_str().expect("utf-8 path")]);
    assert_fails_with(&output, "statically linked: not supported");
}

#[test]
fn missing_privileges_name_the_capabilities() {
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(memtrace())
        .args(["--pid", &std::process::id().to_string()])
        .output()
        .expect("run setpriv");
    assert_fails_with(&output, "not permitted: missing CAP_BPF and CAP_PERFMON");
}

#[test]
fn bad_duration_names_the_flag() {
    let output = run_memtrace(&["--pid", "1", "--duration", "soon"]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--duration"), "{text}");
}
