//! Snapshots of the target taken every snapshot interval, and of each consumer.
//!
//! A [`Snapshot`] puts what the kernel says about the process (resident
//! memory and its split, threads, open files, CPU time, uptime) beside what
//! memtrace traced (live heap bytes and mapped bytes). The difference is
//! the *untracked* memory: resident bytes that no traced allocation explains.
//! It covers allocator fragmentation and the free memory allocators keep
//! cached, memory from allocators memtrace does not hook (a custom arena, a
//! language runtime), memory allocated before attach, stacks, and the
//! resident parts of file and shared mappings.
//!
//! The readers of `/proc/PID/stat`, `/proc/PID/fd` and `/proc/uptime` live
//! here; the status fields come from [`procfs::read_status`].

use std::{fs, io};

use serde::{Deserialize, Serialize};

use crate::procfs::{self, MemoryStatus};

/// The target at one moment. Keys are short because a snapshot is stored
/// every interval for days.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since tracing started.
    #[serde(rename = "t")]
    pub t_s: f64,
    /// Wall-clock time, in seconds since the Unix epoch.
    #[serde(rename = "unix")]
    pub unix_s: u64,
    pub rss: u64,
    #[serde(rename = "anon")]
    pub rss_anon: u64,
    #[serde(rename = "file")]
    pub rss_file: u64,
    #[serde(rename = "shmem")]
    pub rss_shmem: u64,
    /// Heap bytes allocated while tracing and still live.
    #[serde(rename = "heap")]
    pub heap_bytes: u64,
    /// Anonymous mapping bytes mapped while tracing and still mapped.
    #[serde(rename = "mapped")]
    pub mapped_bytes: u64,
    /// Resident bytes that neither the heap nor traced mappings explain.
    #[serde(rename = "untracked")]
    pub untracked_bytes: u64,
    /// Resident bytes per live heap byte; `None` while the heap is empty.
    #[serde(rename = "ratio", default, skip_serializing_if = "Option::is_none")]
    pub rss_heap_ratio: Option<f64>,
    pub threads: u64,
    /// Open file descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// User and system CPU time used, in seconds.
    #[serde(rename = "cpu", default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Seconds since the process started.
    #[serde(rename = "up", default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
}

/// What `/proc` says about a process beyond its memory status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub fds: Option<u64>,
    pub cpu_s: Option<f64>,
    pub uptime_s: Option<f64>,
}

impl Snapshot {
    /// Puts the kernel's figures beside the traced ones.
    #[must_use]
    pub fn new(
        t_s: f64,
        unix_s: u64,
        status: MemoryStatus,
        heap_bytes: u64,
        mapped_bytes: u64,
        process: ProcessStats,
    ) -> Self {
        let MemoryStatus {
            rss,
            rss_anon,
            rss_file,
            rss_shmem,
            threads,
        } = status;
        let ProcessStats {
            fds,
            cpu_s,
            uptime_s,
        } = process;
        Self {
            t_s,
            unix_s,
            rss,
            rss_anon,
            rss_file,
            rss_shmem,
            heap_bytes,
            mapped_bytes,
            untracked_bytes: rss.saturating_sub(heap_bytes.saturating_add(mapped_bytes)),
            rss_heap_ratio: (heap_bytes > 0).then(|| rss as f64 / heap_bytes as f64),
            threads,
            fds,
            cpu_s,
            uptime_s,
        }
    }
}

/// One consumer's figures at one moment: a stack (or a module, summing its
/// stacks), so that each has its own series.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSample {
    /// Stable across samples for as long as memtrace runs.
    pub id: u64,
    /// The module the consumer is charged to.
    pub module: String,
    /// What names it to a person: its top function, or the module itself.
    pub label: String,
    pub live_bytes: u64,
    pub live_count: u64,
    /// Of `live_bytes`, those allocated more than the analysis window ago.
    pub old_bytes: u64,
}

/// Reads the figures of [`ProcessStats`] for `pid`; each is `None` when
/// its file could not be read (the process exited, or permissions).
#[must_use]
pub fn read_process_stats(pid: u32) -> ProcessStats {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat_times(&text));
    let system_uptime = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| parse_uptime(&text));
    let ticks = clock_ticks_per_second();
    ProcessStats {
        fds: count_fds(pid).ok(),
        cpu_s: stat.map(|s| (s.utime + s.stime) as f64 / ticks),
        uptime_s: stat
            .zip(system_uptime)
            .map(|(s, up)| (up - s.starttime as f64 / ticks).max(0.0)),
    }
}

/// Reads the target's memory status and [`ProcessStats`] and makes a [`Snapshot`].
pub fn take(
    pid: u32,
    t_s: f64,
    unix_s: u64,
    heap_bytes: u64,
    mapped_bytes: u64,
) -> io::Result<Snapshot> {
    let status = procfs::read_status(pid)?;
    let process = read_process_stats(pid);
    Ok(Snapshot::new(
        t_s,
        unix_s,
        status,
        heap_bytes,
        mapped_bytes,
        process,
    ))
}

/// CPU times and start time from `/proc/PID/stat`, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatTimes {
    pub utime: u64,
    pub stime: u64,
    /// Ticks after boot at which the process started.
    pub starttime: u64,
}

/// Parses the times out of the text of `/proc/PID/stat`.
#[must_use]
pub fn parse_stat_times(text: &str) -> Option<StatTimes> {
    // The command sits in parentheses and may itself hold spaces and ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Counted from the state field, just after the command.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(StatTimes {
        utime: field(11)?,
        stime: field(12)?,
        starttime: field(19)?,
    })
}

/// Parses the system's uptime, in seconds, from the text of `/proc/uptime`.
#[must_use]
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Counts the entries of `/proc/PID/fd`.
pub fn count_fds(pid: u32) -> io::Result<u64> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// How large the process may grow before it runs out of memory: the
/// smallest `memory.max` of its cgroup (v2) and the cgroup's ancestors, or,
/// without one, its `rss` plus the system's `MemAvailable`.
#[must_use]
pub fn read_memory_limit(pid: u32, rss: u64) -> Option<u64> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|text| parse_cgroup_path(&text).map(str::to_owned));
    let from_cgroup = cgroup.and_then(|path| cgroup_memory_max(&path));
    from_cgroup.or_else(|| {
        let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
        Some(rss + parse_mem_available(&meminfo)?)
    })
}

/// The smallest `memory.max` from the cgroup at `path` up to the root.
fn cgroup_memory_max(path: &str) -> Option<u64> {
    let mut dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let mut limit: Option<u64> = None;
    loop {
        let max = fs::read_to_string(dir.join("memory.max")).ok();
        if let Some(bytes) = max.and_then(|m| m.trim().parse::<u64>().ok()) {
            limit = Some(limit.map_or(bytes, |l| l.min(bytes)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            return limit;
        }
    }
}

/// The cgroup v2 path in the text of `/proc/PID/cgroup`.
#[must_use]
pub fn parse_cgroup_path(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("0::"))
}

/// `MemAvailable`, in bytes, from the text of `/proc/meminfo`.
#[must_use]
pub fn parse_mem_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The kernel's clock ticks per second (`USER_HZ`).
fn clock_ticks_per_second() -> f64 {
    // SAFETY: `sysconf` has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn status(rss: u64) -> MemoryStatus {
        MemoryStatus {
            rss,
            rss_anon: rss / 2,
            rss_file: rss / 4,
            rss_shmem: 0,
            threads: 4,
        }
    }

    #[test]
    fn untracked_is_what_heap_and_mappings_leave_unexplained() {
        let snapshot = Snapshot::new(
            1.0,
            2,
            status(100 * MB),
            60 * MB,
            10 * MB,
            ProcessStats::default(),
        );
        assert_eq!(snapshot.untracked_bytes, 30 * MB);
        let ratio = snapshot.rss_heap_ratio.expect("the heap is not empty");
        assert!((ratio - 100.0 / 60.0).abs() < 1e-12);
        assert_eq!(snapshot.threads, 4);
    }

    #[test]
    fn untracked_never_goes_negative_and_empty_heap_has_no_ratio() {
        let snapshot = Snapshot::new(0.0, 0, status(10 * MB), 0, 20 * MB, ProcessStats::default());
        assert_eq!(snapshot.untracked_bytes, 0);
        assert_eq!(snapshot.rss_heap_ratio, None);
    }

    #[test]
    fn stat_times_are_read_after_a_command_with_parentheses() {
        let text = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1234 56 18446744073709551615\n";
        let times = parse_stat_times(text).expect("parses");
        assert_eq!(
            times,
            StatTimes {
                utime: 250,
                stime: 50,
                starttime: 1000
            }
        );
        assert_eq!(parse_stat_times("42 (cut) S 1"), None);
    }

    #[test]
    fn uptime_is_the_first_number() {
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345.67));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn limits_come_from_the_cgroup_or_available_memory() {
        assert_eq!(
            parse_cgroup_path("0::/system.slice/app.service\n"),
            Some("/system.slice/app.service")
        );
        assert_eq!(parse_cgroup_path("12:memory:/x\n"), None);
        let meminfo = "MemTotal:  16000000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(2 << 20));
        assert!(read_memory_limit(std::process::id(), 0).is_some_and(|l| l > 0));
    }

    #[test]
    fn own_process_has_open_files_cpu_time_and_an_uptime() {
        let stats = read_process_stats(std::process::id());
        assert!(stats.fds.is_some_and(|n| n >= 1));
        assert!(stats.cpu_s.is_some_and(|s| s >= 0.0));
        assert!(stats.uptime_s.is_some());
    }

    #[test]
    fn absent_fields_are_left_out_of_the_stored_form() {
        let snapshot = Snapshot::new(1.5, 7, status(MB), 0, 0, ProcessStats::default());
        let json = serde_json::to_string(&snapshot).expect("serializes");
        assert!(!json.contains("ratio") && !json.contains("fds"), "{json}");
        let back: Snapshot = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, snapshot);
    }
}
