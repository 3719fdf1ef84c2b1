//! Loading the eBPF programs and attaching them to one process's allocator.
//!
//! Needs Linux 5.15 (ring buffer, uprobe attach cookies), and `CAP_BPF` with
//! `CAP_PERFMON` (or root). Dropping [`Probes`] detaches every probe; the
//! kernel waits for a grace period on each (about 0.1 s here, and they do not
//! overlap), so callers print their results first.

use std::{fs, num::NonZeroU32};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
};
use memtrace_common::{
    COUNTER_SLOTS, COUNTERS_MAP, Counter, EVENTS_MAP, FREE_ENTER_PROGRAM, HEAP_ENTER_PROGRAM,
    HEAP_RETURN_PROGRAM, Kind, MAP_ENTER_PROGRAM, MAP_RETURN_PROGRAM, STACKS_MAP,
    TARGET_TGID_GLOBAL,
};

use crate::allocator::{Plan, ProbePoint};

static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memtrace"));

/// Sizes of the kernel-side maps.
#[derive(Clone, Copy, Debug)]
pub struct MapSizes {
    /// Ring buffer bytes; a power of two, a multiple of the page size.
    pub ring_buffer_bytes: u32,
    /// Buckets of the stack-trace map.
    pub stack_entries: u32,
}

/// Loaded programs attached to one process.
pub struct Probes {
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").finish_non_exhaustive()
    }
}

/// Kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub ring_buffer_full: u64,
    pub stack_collisions: u64,
    pub stack_failures: u64,
    pub pending_full: u64,
    pub returns_without_entry: u64,
    pub results_unreadable: u64,
    pub nested_calls: u64,
    pub stale_calls: u64,
}

/// Fails with a message naming what is missing when this process cannot
/// load eBPF programs and attach uprobes.
pub fn check_privileges() -> anyhow::Result<()> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;

    let status = fs::read_to_string("/proc/self/status").context("failed to read own status")?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<_> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|&(cap, _)| !has(cap))
        .map(|(_, name)| name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        bail!(
            "not permitted: missing {}; run as root or grant CAP_BPF and CAP_PERFMON",
            missing.join(" and ")
        )
    }
}

impl Probes {
    /// Loads the programs for process `pid` and attaches them where `plan` says.
    pub fn attach(pid: u32, plan: &Plan, sizes: MapSizes) -> anyhow::Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .override_global(TARGET_TGID_GLOBAL, &pid, true)
            .map_max_entries(EVENTS_MAP, sizes.ring_buffer_bytes)
            .map_max_entries(STACKS_MAP, sizes.stack_entries)
            .load(PROGRAMS)
            .map_err(load_error)
            .context("failed to load memtrace's eBPF programs")?;

        for name in [
            HEAP_ENTER_PROGRAM,
            HEAP_RETURN_PROGRAM,
            FREE_ENTER_PROGRAM,
            MAP_ENTER_PROGRAM,
            MAP_RETURN_PROGRAM,
        ] {
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("program `{name}` missing from the eBPF object"))?
                .try_into()?;
            program
                .load()
                .map_err(program_error)
                .with_context(|| format!("the kernel rejected program `{name}`"))?;
        }

        let pid = NonZeroU32::new(pid).ok_or_else(|| anyhow!("pid 0 cannot be traced"))?;
        for point in &plan.points {
            attach_point(&mut ebpf, point, pid)?;
        }

        Self::with_counters(ebpf)
    }

    /// Attaches one entry program (or, with `return_probe`, one return
    /// program) at `offset` in `path` for every process, with no process
    /// targeted, so it returns at once: what is left is the bare cost of a
    /// probe hit there. For benchmarks.
    pub fn attach_idle(
        path: &std::path::Path,
        offset: u64,
        return_probe: bool,
    ) -> anyhow::Result<Self> {
        let name = if return_probe {
            HEAP_RETURN_PROGRAM
        } else {
            FREE_ENTER_PROGRAM
        };
        let mut ebpf = EbpfLoader::new()
            .override_global(TARGET_TGID_GLOBAL, &0u32, true)
            .load(PROGRAMS)
            .map_err(load_error)?;
        let program: &mut UProbe = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program `{name}` missing"))?
            .try_into()?;
        program.load().map_err(program_error)?;
        program
            .attach(
                UProbeAttachLocation::AbsoluteOffset(offset),
                path,
                UProbeScope::AllProcesses,
            )
            .with_context(|| format!("failed to attach at {offset:#x} in `{}`", path.display()))?;
        Self::with_counters(ebpf)
    }

    /// Wraps loaded programs, taking their counters map.
    fn with_counters(mut ebpf: Ebpf) -> anyhow::Result<Self> {
        let counters = ebpf
            .take_map(COUNTERS_MAP)
            .ok_or_else(|| anyhow!("map `{COUNTERS_MAP}` missing from the eBPF object"))?;
        let counters = PerCpuArray::try_from(counters)?;
        Ok(Self { ebpf, counters })
    }

    /// Takes the ring buffer of events; call once.
    pub fn take_events(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(EVENTS_MAP)
            .ok_or_else(|| anyhow!("map `{EVENTS_MAP}` already taken"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Takes the stack-trace map; call once.
    pub fn take_stacks(&mut self) -> anyhow::Result<StackTraceMap<MapData>> {
        let map = self
            .ebpf
            .take_map(STACKS_MAP)
            .ok_or_else(|| anyhow!("map `{STACKS_MAP}` already taken"))?;
        Ok(StackTraceMap::try_from(map)?)
    }

    /// Reads the kernel-side counters.
    pub fn counters(&self) -> KernelCounters {
        let read = |counter: Counter| -> u64 {
            debug_assert!((counter as u32) < COUNTER_SLOTS);
            self.counters
                .get(&(counter as u32), 0)
                .map_or(0, |values| values.iter().sum())
        };
        KernelCounters {
            ring_buffer_full: read(Counter::RingBufferFull),
            stack_collisions: read(Counter::StackCollision),
            stack_failures: read(Counter::StackFailed),
            pending_full: read(Counter::PendingFull),
            returns_without_entry: read(Counter::ReturnWithoutEntry),
            results_unreadable: read(Counter::ResultUnreadable),
            nested_calls: read(Counter::NestedCall),
            stale_calls: read(Counter::StaleCall),
        }
    }
}

fn attach_point(ebpf: &mut Ebpf, point: &ProbePoint, pid: NonZeroU32) -> anyhow::Result<()> {
    let (enter, ret) = match point.kind {
        Kind::Free => (FREE_ENTER_PROGRAM, HEAP_RETURN_PROGRAM),
        kind if kind.is_mapping() => (MAP_ENTER_PROGRAM, MAP_RETURN_PROGRAM),
        _ => (HEAP_ENTER_PROGRAM, HEAP_RETURN_PROGRAM),
    };
    let symbol = point.kind.symbol();

    let program: &mut UProbe = ebpf.program_mut(enter).expect("loaded above").try_into()?;
    let entry_point = UProbeAttachPoint {
        location: UProbeAttachLocation::AbsoluteOffset(point.offset),
        cookie: Some(point.kind as u64),
    };
    program
        .attach(
            entry_point,
            &point.attach_path,
            UProbeScope::OneProcess(pid),
        )
        .with_context(|| format!("failed to attach to `{symbol}` in `{}`", point.path))?;

    let program: &mut UProbe = ebpf.program_mut(ret).expect("loaded above").try_into()?;
    let location = UProbeAttachLocation::AbsoluteOffset(point.offset);
    program
        .attach(location, &point.attach_path, UProbeScope::OneProcess(pid))
        .with_context(|| {
            format!(
                "failed to attach to the return of `{symbol}` in `{}`",
                point.path
            )
        })?;
    Ok(())
}

/// Shortens a load error to one line (the verifier's log goes to the debug
/// log), and adds the usual fix when the kernel refused for lack of privilege.
#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn load_error(error: aya::EbpfError) -> anyhow::Error {
    short_load_error(&error.to_string())
}

#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn program_error(error: aya::programs::ProgramError) -> anyhow::Error {
    short_load_error(&error.to_string())
}

fn short_load_error(text: &str) -> anyhow::Error {
    log::debug!("{text}");
    let first_line = text.lines().next().unwrap_or_default().to_owned();
    if text.contains("Operation not permitted") {
        anyhow!("{first_line}")
            .context("not permitted: run as root or grant CAP_BPF and CAP_PERFMON")
    } else if text.lines().count() > 1 {
        anyhow!("{first_line} (run with -vv for the kernel's full log)")
    } else {
        anyhow!(first_line)
    }
}
