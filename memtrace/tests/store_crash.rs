//! A memtrace killed with SIGKILL while writing leaves a data directory that still loads.
//!
//! The test runs itself again as a child that appends snapshots as fast as
//! it can, kills the child without warning, and loads what it left.

use std::{
    env,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use memtrace::{
    procfs::MemoryStatus,
    snapshot::{ProcessStats, Snapshot},
    store::Store,
};

const CHILD: &str = "MEMTRACE_STORE_CRASH_DIR";
const WEEK: Duration = Duration::from_hours(7 * 24);

fn snapshot(i: u64) -> Snapshot {
    let status = MemoryStatus {
        rss: 100 << 20,
        ..MemoryStatus::default()
    };
    Snapshot::new(
        i as f64,
        1_796_256_000 + i / 100,
        status,
        i,
        0,
        ProcessStats::default(),
    )
}

/// In the child: writes until killed. In the parent: does nothing.
#[test]
fn child_that_writes_until_killed() {
    let Some(dir) = env::var_os(CHILD) else {
        return;
    };
    let mut store = Store::open(&PathBuf::from(dir), WEEK, None).expect("opens");
    for i in 0.. {
        store.record_snapshot(&snapshot(i)).expect("writes");
        store
            .record_consumers(i as f64, 1_796_256_000 + i / 100, &[])
            .expect("writes");
    }
}

#[test]
fn data_directory_loads_after_a_kill_in_the_middle_of_writing() {
    if env::var_os(CHILD).is_some() {
        return;
    }
    let dir = env::temp_dir().join(format!("memtrace-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let mut child = Command::new(env::current_exe().expect("test binary"))
        .args(["child_that_writes_until_killed", "--exact", "--nocapture"])
        .env(CHILD, &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the child");
    thread::sleep(Duration::from_millis(400));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let mut store = Store::open(&dir, WEEK, None).expect("reopens");
    let before = store.load_snapshots().expect("loads");
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .enumerate()
            .all(|(i, s)| s.heap_bytes == i as u64),
        "records in order, none garbled"
    );

    // The history continues where it stopped.
    store
        .record_snapshot(&snapshot(before.len() as u64))
        .expect("writes");
    assert_eq!(
        store.load_snapshots().expect("loads").len(),
        before.len() + 1
    );
    std::fs::remove_dir_all(&dir).expect("cleans up");
}
