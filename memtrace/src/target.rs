//! Checking a process id before attaching to it.

use std::fs;

use anyhow::{Context as _, bail};

use crate::{
    allocator::{self, Plan},
    procfs,
};

/// Checks that `pid` is a live user-space process memtrace can trace, and
/// returns its command line.
pub fn check_pid(pid: u32) -> anyhow::Result<String> {
    if pid == 0 || !procfs::process_exists(pid) {
        bail!("no process with pid `{pid}`: check the id with `ps -p {pid}`");
    }
    if pid == std::process::id() {
        bail!("pid `{pid}` is memtrace itself");
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read `/proc/{pid}/status`"))?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|t| t.trim().parse::<u32>().ok());
    if let Some(tgid) = tgid
        && tgid != pid
    {
        bail!("`{pid}` is a thread of process `{tgid}`: pass the process id, `--pid {tgid}`");
    }
    if procfs::is_kernel_thread(pid)? {
        bail!(
            "pid `{pid}` is the kernel thread {}: kernel threads have no user-space allocator to trace",
            procfs::command_line(pid)
        );
    }
    if !procfs::is_alive(pid) {
        bail!("process `{pid}` has exited (it is a zombie waiting for its parent)");
    }
    Ok(procfs::command_line(pid))
}

/// Plans the probes for a running process from its memory map.
pub fn plan_for_pid(pid: u32) -> anyhow::Result<Plan> {
    let maps = procfs::read_maps(pid)
        .with_context(|| format!("failed to read the memory map of `{pid}`"))?;
    if maps.is_empty() {
        bail!("process `{pid}` has no memory map: it exited or is a kernel thread");
    }
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
    let exe = exe.as_ref().and_then(|p| p.to_str());
    allocator::plan(&maps, exe, &|path| procfs::in_target_root(pid, path)).with_context(|| {
        format!(
            "cannot trace process `{pid}` ({})",
            procfs::command_line(pid)
        )
    })
}
