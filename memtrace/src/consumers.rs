//! Grouping allocation sites into consumers, and charging each to a module.
//!
//! A consumer is one distinct allocation stack. Sites whose stacks differ
//! only past the first frame that is not code (a frame-pointer walk through a
//! function built without frame pointers reads garbage from there on) are
//! the same consumer. Each consumer is charged to the module of its first
//! frame outside the allocator and the runtime libraries that allocate on
//! their caller's behalf, so a leak inside `libfoo.so` is `libfoo.so`'s, not
//! libc's.

use std::hash::BuildHasher as _;

use rustc_hash::FxHashMap;

use crate::{
    aggregate::{AgeHistogram, Family, Site, SiteKey},
    memory_map::MemoryMap,
    report::{Consumer, ModuleUsage},
    snapshot::ConsumerSample,
    symbolize::{Frame, Symbolizer, UNKNOWN_MODULE},
};

/// Sites followed by the monitor at most, the largest first.
const MONITORED_SITES: usize = 200;
/// Frames of a consumer handed to the monitor for its alerts.
const ALERT_FRAMES: usize = 6;
/// Set in the ids of per-module samples, which never collide with site ids.
const MODULE_ID: u64 = 1 << 63;

/// A site's stack, innermost first, from the copies of the kernel's stacks:
/// the caller always first, even when the kernel kept no stack or kept it
/// without the caller.
pub fn full_stack(stacks: &FxHashMap<i32, Vec<u64>>, key: SiteKey) -> Vec<u64> {
    let mut stack = stacks.get(&key.stack_id).cloned().unwrap_or_default();
    if key.without_caller || stack.first() != Some(&key.caller) {
        stack.insert(0, key.caller);
    }
    stack
}

/// What the monitor samples each snapshot: one sample per live site (the
/// largest [`MONITORED_SITES`]) and one per module, plus each site's top
/// frames as text for alert recommendations.
#[derive(Debug, Default)]
pub struct Samples {
    pub consumers: Vec<ConsumerSample>,
    pub frames: Vec<(u64, Vec<String>)>,
}

/// Samples the live sites. `old_bytes` holds, per site, the live bytes
/// allocated before the analysis window.
pub fn samples(
    sites: &[Site],
    old_bytes: &[u64],
    stacks: &FxHashMap<i32, Vec<u64>>,
    map: &MemoryMap,
    symbolizer: &mut Symbolizer,
) -> Samples {
    let mut live: Vec<(usize, &Site)> = sites
        .iter()
        .enumerate()
        .filter(|(_, s)| s.live_bytes > 0)
        .collect();
    live.sort_by_key(|(_, s)| std::cmp::Reverse(s.live_bytes));
    live.truncate(MONITORED_SITES);

    let mut samples = Samples::default();
    let mut modules: FxHashMap<String, ConsumerSample> = FxHashMap::default();
    for (index, site) in live {
        let addresses = trim_stack(map, &full_stack(stacks, site.key));
        let frames = symbolizer.frames(map, &addresses);
        let module = charged_module(&frames).unwrap_or(UNKNOWN_MODULE).to_owned();
        let label = frames
            .iter()
            .find(|f| !is_allocator_module(&f.module))
            .or_else(|| frames.first())
            .map_or_else(|| UNKNOWN_MODULE.to_owned(), frame_label);
        let old = old_bytes.get(index).copied().unwrap_or(0);

        let total = modules
            .entry(module.clone())
            .or_insert_with(|| ConsumerSample {
                id: MODULE_ID | rustc_hash::FxBuildHasher.hash_one(&module) >> 1,
                module: module.clone(),
                label: module.clone(),
                ..ConsumerSample::default()
            });
        total.live_bytes += site.live_bytes;
        total.live_count += site.live_count;
        total.old_bytes += old;

        let id = index as u64;
        samples.frames.push((
            id,
            frames.iter().take(ALERT_FRAMES).map(frame_label).collect(),
        ));
        samples.consumers.push(ConsumerSample {
            id,
            module,
            label,
            live_bytes: site.live_bytes,
            live_count: site.live_count,
            old_bytes: old,
        });
    }
    samples.consumers.extend(modules.into_values());
    samples
}

/// `function (file:line)`, or `module+0xaddress` for a frame with no symbol.
fn frame_label(frame: &Frame) -> String {
    match (&frame.function, &frame.file, frame.line) {
        (Some(function), Some(file), Some(line)) => format!("{function} ({file}:{line})"),
        (Some(function), _, _) => function.clone(),
        _ => {
            let module = frame.module.rsplit('/').next().unwrap_or(&frame.module);
            match frame.offset {
                Some(offset) => format!("{module}+{offset:#x}"),
                None => format!("{module} at {:#x}", frame.address),
            }
        }
    }
}

/// Libraries that allocate on behalf of their callers: the C library and
/// its dynamic loader, the C++ runtimes, and malloc replacements.
const ALLOCATOR_LIBRARIES: &[&str] = &[
    "libc.so",
    "libc-2.",
    "ld-linux",
    "ld-musl",
    "libstdc++",
    "libc++",
    "libgcc_s",
    "libjemalloc",
    "libtcmalloc",
    "libmimalloc",
];

/// Whether a module is one whose allocations are charged to its caller.
pub fn is_allocator_module(module: &str) -> bool {
    let name = module.rsplit('/').next().unwrap_or(module);
    ALLOCATOR_LIBRARIES
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The module a stack's allocations are charged to: that of the first frame
/// outside the allocator libraries, or of the innermost frame when every
/// frame is inside them.
pub fn charged_module(frames: &[Frame]) -> Option<&str> {
    frames
        .iter()
        .find(|f| !is_allocator_module(&f.module))
        .or_else(|| frames.first())
        .map(|f| f.module.as_str())
}

/// Sites merged by stack, before symbolization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub family: Family,
    /// Return addresses, innermost first, cut at the first that is not code.
    pub addresses: Vec<u64>,
    pub live_bytes: u64,
    pub live_count: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub ages: AgeHistogram,
}

/// The frames of a stack up to (not including) the first address that is not
/// code. The first frame, the immediate caller, is always kept.
pub fn trim_stack(map: &MemoryMap, stack: &[u64]) -> Vec<u64> {
    let mut frames = Vec::with_capacity(stack.len());
    for (i, &address) in stack.iter().enumerate() {
        if i > 0 && !map.is_code(address.saturating_sub(1)) {
            break;
        }
        frames.push(address);
    }
    frames
}

/// Merges sites with the same trimmed stack. `stack_of` gives a site's raw
/// stack, innermost first. Groups come out by live bytes, then allocated
/// bytes, largest first.
pub fn group(
    sites: &[Site],
    ages: &[AgeHistogram],
    map: &MemoryMap,
    stack_of: &dyn Fn(&Site) -> Vec<u64>,
) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: FxHashMap<(Family, Vec<u64>), usize> = FxHashMap::default();
    for (site, age) in sites.iter().zip(ages) {
        let addresses = trim_stack(map, &stack_of(site));
        let slot = *index
            .entry((site.key.family, addresses.clone()))
            .or_insert_with(|| {
                groups.push(Group {
                    family: site.key.family,
                    addresses,
                    live_bytes: 0,
                    live_count: 0,
                    alloc_count: 0,
                    alloc_bytes: 0,
                    ages: AgeHistogram::default(),
                });
                groups.len() - 1
            });
        let group = &mut groups[slot];
        group.live_bytes += site.live_bytes;
        group.live_count += site.live_count;
        group.alloc_count += site.alloc_count;
        group.alloc_bytes += site.alloc_bytes;
        for (total, count) in group.ages.iter_mut().zip(age) {
            *total += count;
        }
    }
    groups.sort_by(|a, b| {
        (b.live_bytes, b.alloc_bytes, a.family).cmp(&(a.live_bytes, a.alloc_bytes, b.family))
    });
    groups
}

/// Symbolizes each group into a report consumer, and sums live memory per
/// charged module (largest first).
pub fn describe(
    groups: Vec<Group>,
    symbolizer: &mut Symbolizer,
    map: &MemoryMap,
) -> (Vec<Consumer>, Vec<ModuleUsage>) {
    let mut modules: Vec<ModuleUsage> = Vec::new();
    let mut consumers = Vec::with_capacity(groups.len());
    for group in groups {
        let frames = symbolizer.frames(map, &group.addresses);
        let module = charged_module(&frames).unwrap_or(UNKNOWN_MODULE).to_owned();

        let index = if let Some(i) = modules.iter().position(|m| m.module == module) {
            i
        } else {
            modules.push(ModuleUsage {
                module: module.clone(),
                live_bytes: 0,
                live_count: 0,
                heap_bytes: 0,
                mapped_bytes: 0,
            });
            modules.len() - 1
        };
        let usage = &mut modules[index];
        usage.live_bytes += group.live_bytes;
        usage.live_count += group.live_count;
        let kind = match group.family {
            Family::Heap => {
                usage.heap_bytes += group.live_bytes;
                "heap"
            }
            Family::Mapping => {
                usage.mapped_bytes += group.live_bytes;
                "mmap"
            }
        };

        consumers.push(Consumer {
            kind: kind.to_owned(),
            live_bytes: group.live_bytes,
            live_count: group.live_count,
            alloc_count: group.alloc_count,
            alloc_bytes: group.alloc_bytes,
            module,
            frames,
            live_by_age: group.ages.to_vec(),
        });
    }
    modules.sort_by(|a, b| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then(a.module.cmp(&b.module))
    });
    (consumers, modules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{aggregate::SiteKey, procfs::MapEntry};

    fn frame(module: &str) -> Frame {
        Frame {
            address: 1,
            function: None,
            module: module.to_owned(),
            offset: None,
            file: None,
            line: None,
        }
    }

    #[test]
    fn charge_skips_the_allocator_and_runtime_frames() {
        let frames = [
            frame("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            frame("/usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
            frame("/opt/app/libfoo.so"),
            frame("/opt/app/server"),
        ];
        assert_eq!(charged_module(&frames), Some("/opt/app/libfoo.so"));
    }

    #[test]
    fn charge_falls_back_to_the_innermost_frame() {
        let frames = [
            frame("/lib64/ld-linux-x86-64.so.2"),
            frame("/usr/lib/libc.so.6"),
        ];
        assert_eq!(charged_module(&frames), Some("/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(charged_module(&[]), None);
    }

    fn code_map() -> MemoryMap {
        let mut map = MemoryMap::default();
        map.update(vec![MapEntry {
            start: 0x1000,
            end: 0x9000,
            executable: true,
            offset: 0,
            path: "/bin/app".into(),
        }]);
        map
    }

    #[test]
    fn caller_is_put_back_on_stacks_stored_without_it() {
        let mut stacks = FxHashMap::default();
        stacks.insert(7, vec![0x1200, 0x1300]);
        stacks.insert(8, vec![0x1100, 0x1200]);
        let key = |stack_id, without_caller| SiteKey {
            family: Family::Heap,
            stack_id,
            caller: 0x1100,
            without_caller,
        };
        assert_eq!(full_stack(&stacks, key(7, true)), [0x1100, 0x1200, 0x1300]);
        assert_eq!(full_stack(&stacks, key(8, false)), [0x1100, 0x1200]);
        assert_eq!(full_stack(&stacks, key(-17, false)), [0x1100]);
    }

    #[test]
    fn stacks_are_cut_at_the_first_address_that_is_not_code() {
        let map = code_map();
        assert_eq!(
            trim_stack(&map, &[0x1100, 0x1200, 0xdead_0000, 0x1300]),
            [0x1100, 0x1200]
        );
        // The caller stays even when it cannot be placed.
        assert_eq!(trim_stack(&map, &[0x20, 0x1200]), [0x20, 0x1200]);
    }

    #[test]
    fn sites_differing_only_in_garbage_frames_merge() {
        let map = code_map();
        let site = |stack_id, live_bytes| Site {
            key: SiteKey {
                family: Family::Heap,
                stack_id,
                caller: 0x1100,
                without_caller: false,
            },
            live_bytes,
            live_count: 1,
            alloc_count: 1,
            alloc_bytes: live_bytes,
        };
        let sites = [site(1, 10), site(2, 20), site(3, 5)];
        let ages = [AgeHistogram::default(); 3];
        let groups = group(&sites, &ages, &map, &|s| match s.key.stack_id {
            1 => vec![0x1100, 0x1200, 0xdead_0000],
            2 => vec![0x1100, 0x1200, 0xbeef_0000],
            _ => vec![0x1100, 0x1300],
        });
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].live_bytes, groups[0].live_count), (30, 2));
        assert_eq!(groups[1].addresses, [0x1100, 0x1300]);
    }
}
