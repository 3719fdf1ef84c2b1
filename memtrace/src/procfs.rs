//! What `/proc` says about the target: its memory map, memory use and command.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub executable: bool,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file, or a pseudo-name like `[heap]`, or empty for anonymous memory.
    pub path: String,
}

impl MapEntry {
    /// Whether the mapping is of a file on disk.
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }

    /// The file offset that `address` (inside this mapping) corresponds to.
    pub fn file_offset(&self, address: u64) -> u64 {
        address - self.start + self.offset
    }
}

/// Parses the text of `/proc/PID/maps`; lines that do not parse are skipped.
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<MapEntry> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let _device = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    Some(MapEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        path: path.to_owned(),
    })
}

/// Reads `/proc/PID/maps`.
pub fn read_maps(pid: u32) -> io::Result<Vec<MapEntry>> {
    fs::read_to_string(format!("/proc/{pid}/maps")).map(|text| parse_maps(&text))
}

/// Memory figures from `/proc/PID/status`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStatus {
    pub rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    pub threads: u64,
}

/// Parses the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> MemoryStatus {
    let mut status = MemoryStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut words = value.split_whitespace();
        let number = words
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let bytes = if words.next() == Some("kB") {
            number * 1024
        } else {
            number
        };
        match key {
            "VmRSS" => status.rss = bytes,
            "RssAnon" => status.rss_anon = bytes,
            "RssFile" => status.rss_file = bytes,
            "RssShmem" => status.rss_shmem = bytes,
            "Threads" => status.threads = number,
            _ => {}
        }
    }
    status
}

/// Reads `/proc/PID/status`.
pub fn read_status(pid: u32) -> io::Result<MemoryStatus> {
    fs::read_to_string(format!("/proc/{pid}/status")).map(|text| parse_status(&text))
}

/// The target's command line, joined by spaces, or its `comm` when the
/// command line is empty (kernel threads, zombies).
pub fn command_line(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<_> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(String::from_utf8_lossy)
        .collect();
    if words.is_empty() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        format!("[{}]", comm.trim())
    } else {
        words.join(" ")
    }
}

/// `PF_KTHREAD` in the flags field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether `pid` is a kernel thread, which has no user memory to trace.
pub fn is_kernel_thread(pid: u32) -> anyhow::Result<bool> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read `/proc/{pid}/stat`"))?;
    // The command sits in parentheses and may itself contain spaces and ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    let flags = rest
        .split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(flags & PF_KTHREAD != 0)
}

/// Whether a process with this id exists (as a process, not only a thread).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a process exists and has not exited (a zombie has exited).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

/// The target's view of `path`, through its root (it may live in another mount namespace).
pub fn in_target_root(pid: u32, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// The time of `CLOCK_MONOTONIC`, which is the clock of the kernel's event timestamps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This process's peak resident set size and CPU time (user plus system).
pub fn own_usage() -> (u64, f64) {
    let peak = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    // SAFETY: `usage` is a valid, writable rusage.
    let cpu = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    };
    (peak, cpu)
}

/// The system's page size.
pub fn page_size() -> u64 {
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse_with_and_without_paths() {
        let text = "\
55d0c8a00000-55d0c8a02000 r-xp 00001000 fd:01 123 /usr/bin/cat
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]
7f1000000000-7f1000001000 r-xp 00002000 fd:01 77 /tmp/a b (deleted)
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].start, 0x55d0_c8a0_0000);
        assert!(maps[0].executable);
        assert_eq!(maps[0].offset, 0x1000);
        assert_eq!(maps[0].path, "/usr/bin/cat");
        assert!(maps[1].path.is_empty());
        assert!(!maps[1].executable);
        assert_eq!(maps[2].path, "[stack]");
        assert_eq!(maps[3].path, "/tmp/a b (deleted)");
        assert_eq!(maps[0].file_offset(0x55d0_c8a0_0010), 0x1010);
    }

    #[test]
    fn status_figures_are_in_bytes() {
        let text = "Name:\tcat\nVmRSS:\t    2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t  1024 kB\nRssShmem:\t 0 kB\nThreads:\t3\n";
        let status = parse_status(text);
        assert_eq!(status.rss, 2 << 20);
        assert_eq!(status.rss_anon, 1 << 20);
        assert_eq!(status.threads, 3);
    }
}
