//! The aggregator: live allocations by address, totals by allocation site.
//!
//! It is fed [`Event`]s in the order the ring buffer delivers them and owns
//! all of its state; one thread drives it, so nothing here locks. An
//! allocation *site* is the pair (stack id, immediate caller) of the call that
//! made it, per family (heap or mapping): the caller is part of the key
//! because it is always known, even when the kernel could not store the stack.

use std::collections::BTreeMap;

use memtrace_common::{Event, Kind, STACK_WITHOUT_CALLER};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Which family an allocation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// The malloc family.
    Heap,
    /// Anonymous memory mappings (mmap, munmap, mremap).
    Mapping,
}

/// What identifies an allocation site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub family: Family,
    /// Index into the kernel's stack-trace map, or a negative errno.
    pub stack_id: i32,
    /// Return address into the allocator's caller.
    pub caller: u64,
    /// The stored stack starts at the caller's caller (see
    /// [`memtrace_common::STACK_WITHOUT_CALLER`]).
    pub without_caller: bool,
}

/// Everything counted for one allocation site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub key: SiteKey,
    pub live_bytes: u64,
    pub live_count: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
}

/// Index of a [`Site`] in [`Aggregator::sites`].
pub type SiteId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    size: u64,
    site: SiteId,
    timestamp_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    len: u64,
    site: SiteId,
    timestamp_ns: u64,
}

/// Process-wide totals since attach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Successful heap allocations (a realloc counts once).
    pub allocs: u64,
    /// Frees of blocks allocated since attach (a realloc that moved counts once).
    pub frees: u64,
    pub alloc_bytes: u64,
    pub live_bytes: u64,
    pub live_count: u64,
    /// Anonymous mappings made since attach.
    pub maps: u64,
    pub mapped_bytes: u64,
    /// Mapping regions still live (a partial munmap can split one into two).
    pub mapped_count: u64,
    /// All events applied.
    pub events: u64,
}

/// Things that happened to memory memtrace did not see allocated. None of
/// them is subtracted from any site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untracked {
    /// `free` of a pointer not allocated since attach.
    pub frees: u64,
    /// `realloc` of a pointer not allocated since attach.
    pub reallocs: u64,
    /// Bytes unmapped that no traced mapping covered (file mappings, memory
    /// mapped before attach, the allocator's own chunks).
    pub unmapped_bytes: u64,
    /// `mremap` of a region no traced mapping covered.
    pub remaps: u64,
    /// An allocation returned an address that was still live: its free was
    /// missed (lost events, or a path memtrace does not probe).
    pub reused_live_addresses: u64,
}

/// Ages of live allocations, bucketed by [`AGE_BUCKETS_S`].
pub type AgeHistogram = [u64; AGE_BUCKETS_S.len() + 1];

/// Upper bounds, in seconds, of the age buckets; a last bucket holds the rest.
pub const AGE_BUCKETS_S: [u64; 5] = [1, 10, 60, 600, 3600];

/// Live allocations and per-site totals.
#[derive(Debug)]
pub struct Aggregator {
    blocks: FxHashMap<u64, Block>,
    regions: BTreeMap<u64, Region>,
    sites: Vec<Site>,
    site_ids: FxHashMap<SiteKey, SiteId>,
    totals: Totals,
    untracked: Untracked,
    page_size: u64,
}

impl Aggregator {
    /// An empty aggregator for a process whose pages are `page_size` bytes.
    pub fn new(page_size: u64) -> Self {
        Self {
            blocks: FxHashMap::default(),
            regions: BTreeMap::new(),
            sites: Vec::new(),
            site_ids: FxHashMap::default(),
            totals: Totals::default(),
            untracked: Untracked::default(),
            page_size: page_size.max(1),
        }
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    pub fn untracked(&self) -> Untracked {
        self.untracked
    }

    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// Applies one event. Returns the site it created, if it is the first
    /// event from that site, so the caller can copy its stack out while the
    /// kernel still holds it.
    pub fn apply(&mut self, event: &Event) -> Option<SiteKey> {
        let Event {
            timestamp_ns,
            address,
            size,
            old_address,
            old_size,
            caller,
            stack_id,
            tid: _,
            kind,
            flags,
        } = *event;
        self.totals.events += 1;
        let kind = Kind::from_raw(kind)?;
        let family = if kind.is_mapping() {
            Family::Mapping
        } else {
            Family::Heap
        };
        let key = SiteKey {
            family,
            stack_id,
            caller,
            without_caller: flags & STACK_WITHOUT_CALLER != 0,
        };

        match kind {
            Kind::Malloc
            | Kind::Calloc
            | Kind::Valloc
            | Kind::Pvalloc
            | Kind::AlignedAlloc
            | Kind::Memalign
            | Kind::PosixMemalign => Some(self.alloc(address, size, key, timestamp_ns)),
            Kind::Realloc | Kind::Reallocarray => {
                if old_address != 0 && !self.free_block(old_address) {
                    self.untracked.reallocs += 1;
                }
                // `realloc(p, 0)` freed `p` and returned NULL.
                (address != 0).then(|| self.alloc(address, size, key, timestamp_ns))
            }
            Kind::Free => {
                if !self.free_block(address) {
                    self.untracked.frees += 1;
                }
                None
            }
            Kind::Mmap => Some(self.map(address, size, key, timestamp_ns)),
            Kind::Munmap => {
                let len = self.page_round(size);
                let covered = self.unmap(address, len);
                self.untracked.unmapped_bytes += len - covered;
                None
            }
            Kind::Mremap => {
                let old_len = self.page_round(old_size);
                if self.unmap(old_address, old_len) == 0 {
                    // Not memory memtrace saw mapped (a file mapping, or one
                    // from before attach): it is not counted when it moves either.
                    self.untracked.remaps += 1;
                    return None;
                }
                Some(self.map(address, size, key, timestamp_ns))
            }
        }
        .flatten()
    }

    /// Live blocks and regions per site, bucketed by age at `now_ns`.
    pub fn age_histograms(&self, now_ns: u64) -> Vec<AgeHistogram> {
        let mut histograms = vec![AgeHistogram::default(); self.sites.len()];
        let ages = self
            .blocks
            .values()
            .map(|b| (b.site, b.timestamp_ns))
            .chain(self.regions.values().map(|r| (r.site, r.timestamp_ns)));
        for (site, timestamp_ns) in ages {
            let age_s = now_ns.saturating_sub(timestamp_ns) / 1_000_000_000;
            let bucket = AGE_BUCKETS_S
                .iter()
                .position(|&limit| age_s < limit)
                .unwrap_or(AGE_BUCKETS_S.len());
            histograms[site as usize][bucket] += 1;
        }
        histograms
    }

    /// Live bytes per site that were allocated before `cutoff_ns`: memory
    /// that has stayed allocated for at least the time since then.
    pub fn old_bytes(&self, cutoff_ns: u64) -> Vec<u64> {
        let mut old = vec![0; self.sites.len()];
        let blocks = self
            .blocks
            .values()
            .map(|b| (b.site, b.size, b.timestamp_ns));
        let regions = self
            .regions
            .values()
            .map(|r| (r.site, r.len, r.timestamp_ns));
        for (site, bytes, timestamp_ns) in blocks.chain(regions) {
            if timestamp_ns < cutoff_ns {
                old[site as usize] += bytes;
            }
        }
        old
    }

    fn page_round(&self, len: u64) -> u64 {
        len.div_ceil(self.page_size) * self.page_size
    }

    /// Returns the site's id, and its key when this is the site's first allocation.
    fn intern(&mut self, key: SiteKey) -> (SiteId, Option<SiteKey>) {
        if let Some(&id) = self.site_ids.get(&key) {
            return (id, None);
        }
        let id = self.sites.len() as SiteId;
        self.sites.push(Site {
            key,
            live_bytes: 0,
            live_count: 0,
            alloc_count: 0,
            alloc_bytes: 0,
        });
        self.site_ids.insert(key, id);
        (id, Some(key))
    }

    fn alloc(&mut self, address: u64, size: u64, key: SiteKey, now: u64) -> Option<SiteKey> {
        let (site, new) = self.intern(key);
        let block = Block {
            size,
            site,
            timestamp_ns: now,
        };
        if let Some(stale) = self.blocks.insert(address, block) {
            self.untracked.reused_live_addresses += 1;
            self.release(stale.site, stale.size, 1);
            self.totals.live_bytes -= stale.size;
            self.totals.live_count -= 1;
        }

        let stats = &mut self.sites[site as usize];
        stats.live_bytes += size;
        stats.live_count += 1;
        stats.alloc_count += 1;
        stats.alloc_bytes += size;
        self.totals.allocs += 1;
        self.totals.alloc_bytes += size;
        self.totals.live_bytes += size;
        self.totals.live_count += 1;
        new
    }

    /// Frees a block allocated since attach; false when there is none at `address`.
    fn free_block(&mut self, address: u64) -> bool {
        let Some(block) = self.blocks.remove(&address) else {
            return false;
        };
        self.release(block.site, block.size, 1);
        self.totals.frees += 1;
        self.totals.live_bytes -= block.size;
        self.totals.live_count -= 1;
        true
    }

    fn release(&mut self, site: SiteId, bytes: u64, count: u64) {
        let stats = &mut self.sites[site as usize];
        stats.live_bytes -= bytes;
        stats.live_count -= count;
    }

    fn map(&mut self, address: u64, len: u64, key: SiteKey, now: u64) -> Option<SiteKey> {
        let len = self.page_round(len);
        // A fixed mapping over traced memory replaces it.
        self.unmap(address, len);
        let (site, new) = self.intern(key);
        self.regions.insert(
            address,
            Region {
                len,
                site,
                timestamp_ns: now,
            },
        );

        let stats = &mut self.sites[site as usize];
        stats.live_bytes += len;
        stats.live_count += 1;
        stats.alloc_count += 1;
        stats.alloc_bytes += len;
        self.totals.maps += 1;
        self.totals.mapped_bytes += len;
        self.totals.mapped_count += 1;
        new
    }

    /// Removes `[start, start + len)` from the traced regions, shrinking or
    /// splitting the ones it cuts. Returns how many traced bytes it covered.
    fn unmap(&mut self, start: u64, len: u64) -> u64 {
        let end = start.saturating_add(len);
        let mut cut = Vec::new();
        // Regions never overlap, so walking down from `end` can stop at the
        // first one that ends at or before `start`.
        for (&region_start, region) in self.regions.range(..end).rev() {
            if region_start + region.len <= start {
                break;
            }
            cut.push((region_start, *region));
        }

        let mut covered = 0;
        for (region_start, region) in cut {
            self.regions.remove(&region_start);
            let region_end = region_start + region.len;
            let gone = region_end.min(end) - region_start.max(start);
            covered += gone;

            let mut pieces = 0;
            if region_start < start {
                let len = start - region_start;
                self.regions.insert(region_start, Region { len, ..region });
                pieces += 1;
            }
            if region_end > end {
                let len = region_end - end;
                self.regions.insert(end, Region { len, ..region });
                pieces += 1;
            }

            let stats = &mut self.sites[region.site as usize];
            stats.live_bytes -= gone;
            stats.live_count = stats.live_count + pieces - 1;
            self.totals.mapped_bytes -= gone;
            self.totals.mapped_count = self.totals.mapped_count + pieces - 1;
        }
        covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn event(kind: Kind, address: u64, size: u64, caller: u64) -> Event {
        Event {
            timestamp_ns: 0,
            address,
            size,
            old_address: 0,
            old_size: 0,
            caller,
            stack_id: 1,
            tid: 1,
            kind: kind as u32,
            flags: 0,
        }
    }

    fn realloc(old: u64, new: u64, size: u64, caller: u64) -> Event {
        Event {
            old_address: old,
            ..event(Kind::Realloc, new, size, caller)
        }
    }

    fn mremap(old: u64, old_len: u64, new: u64, new_len: u64) -> Event {
        Event {
            old_address: old,
            old_size: old_len,
            ..event(Kind::Mremap, new, new_len, 0x9000)
        }
    }

    fn run(events: &[Event]) -> Aggregator {
        let mut aggregator = Aggregator::new(PAGE);
        for e in events {
            aggregator.apply(e);
        }
        aggregator
    }

    fn site(aggregator: &Aggregator, caller: u64) -> &Site {
        aggregator
            .sites()
            .iter()
            .find(|s| s.key.caller == caller)
            .expect("site exists")
    }

    #[test]
    fn malloc_then_free_nets_to_zero() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 100, 0xa),
            event(Kind::Calloc, 0x2000, 50, 0xa),
            event(Kind::Free, 0x1000, 0, 0),
            event(Kind::Free, 0x2000, 0, 0),
        ]);
        let totals = a.totals();
        assert_eq!((totals.live_bytes, totals.live_count), (0, 0));
        assert_eq!(
            (totals.allocs, totals.frees, totals.alloc_bytes),
            (2, 2, 150)
        );
        let s = site(&a, 0xa);
        assert_eq!(
            (s.live_bytes, s.live_count, s.alloc_count, s.alloc_bytes),
            (0, 0, 2, 150)
        );
    }

    #[test]
    fn live_bytes_are_charged_to_the_allocating_site() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 100, 0xa),
            event(Kind::Malloc, 0x2000, 7, 0xb),
            event(Kind::Free, 0x2000, 0, 0),
            event(Kind::Malloc, 0x3000, 30, 0xa),
        ]);
        assert_eq!(site(&a, 0xa).live_bytes, 130);
        assert_eq!(site(&a, 0xa).live_count, 2);
        assert_eq!(site(&a, 0xb).live_bytes, 0);
        assert_eq!(a.totals().live_bytes, 130);
    }

    #[test]
    fn first_event_of_a_site_is_reported_once() {
        let mut a = Aggregator::new(PAGE);
        assert!(a.apply(&event(Kind::Malloc, 0x1000, 1, 0xa)).is_some());
        assert!(a.apply(&event(Kind::Malloc, 0x2000, 1, 0xa)).is_none());
        assert!(a.apply(&event(Kind::Free, 0x2000, 0, 0)).is_none());
    }

    #[test]
    fn free_of_unknown_pointer_is_counted_and_subtracts_nothing() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 100, 0xa),
            event(Kind::Free, 0x5000, 0, 0),
        ]);
        assert_eq!(a.untracked().frees, 1);
        assert_eq!(a.totals().live_bytes, 100);
        assert_eq!(a.totals().frees, 0);
    }

    #[test]
    fn realloc_moves_the_block_to_the_reallocating_site() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 10, 0xa),
            realloc(0x1000, 0x2000, 20, 0xb),
            realloc(0x2000, 0x3000, 40, 0xb),
        ]);
        assert_eq!(site(&a, 0xa).live_bytes, 0);
        let b = site(&a, 0xb);
        assert_eq!((b.live_bytes, b.live_count, b.alloc_count), (40, 1, 2));
        assert_eq!(a.totals().live_bytes, 40);
        assert_eq!(a.totals().frees, 2);
    }

    #[test]
    fn realloc_of_null_is_a_malloc() {
        let a = run(&[realloc(0, 0x2000, 20, 0xb)]);
        assert_eq!(a.totals().live_bytes, 20);
        assert_eq!(a.untracked().reallocs, 0);
    }

    #[test]
    fn realloc_to_zero_that_returns_null_is_a_free() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 10, 0xa),
            realloc(0x1000, 0, 0, 0xb),
        ]);
        assert_eq!(a.totals().live_bytes, 0);
        assert_eq!(a.totals().live_count, 0);
        assert!(a.sites().iter().all(|s| s.key.caller != 0xb));
    }

    #[test]
    fn realloc_of_pointer_from_before_attach_is_counted_separately() {
        let a = run(&[realloc(0x7000, 0x2000, 20, 0xb)]);
        assert_eq!(a.untracked().reallocs, 1);
        assert_eq!(a.totals().live_bytes, 20);
    }

    #[test]
    fn allocation_at_a_live_address_replaces_the_stale_block() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 10, 0xa),
            event(Kind::Malloc, 0x1000, 30, 0xb),
        ]);
        assert_eq!(a.untracked().reused_live_addresses, 1);
        assert_eq!(site(&a, 0xa).live_bytes, 0);
        assert_eq!(a.totals().live_bytes, 30);
        assert_eq!(a.totals().live_count, 1);
    }

    #[test]
    fn mmap_lengths_are_rounded_to_pages() {
        let a = run(&[event(Kind::Mmap, 0x10000, 100, 0xc)]);
        assert_eq!(a.totals().mapped_bytes, PAGE);
        assert_eq!(site(&a, 0xc).live_bytes, PAGE);
    }

    #[test]
    fn partial_munmap_shrinks_a_mapping() {
        let a = run(&[
            event(Kind::Mmap, 0x10000, 4 * PAGE, 0xc),
            event(Kind::Munmap, 0x10000, PAGE, 0),
        ]);
        assert_eq!(a.totals().mapped_bytes, 3 * PAGE);
        assert_eq!(a.totals().mapped_count, 1);
        assert_eq!(site(&a, 0xc).live_bytes, 3 * PAGE);
    }

    #[test]
    fn munmap_in_the_middle_splits_a_mapping() {
        let a = run(&[
            event(Kind::Mmap, 0x10000, 4 * PAGE, 0xc),
            event(Kind::Munmap, 0x10000 + PAGE, PAGE, 0),
        ]);
        assert_eq!(a.totals().mapped_bytes, 3 * PAGE);
        assert_eq!(a.totals().mapped_count, 2);
        let s = site(&a, 0xc);
        assert_eq!((s.live_bytes, s.live_count), (3 * PAGE, 2));

        // Unmapping both pieces and more besides leaves nothing, and only the
        // bytes no traced mapping covered are untracked.
        let mut a = a;
        a.apply(&event(Kind::Munmap, 0x10000 - PAGE, 6 * PAGE, 0));
        assert_eq!(a.totals().mapped_bytes, 0);
        assert_eq!(a.totals().mapped_count, 0);
        assert_eq!(a.untracked().unmapped_bytes, 3 * PAGE);
    }

    #[test]
    fn munmap_across_two_mappings_trims_both() {
        let a = run(&[
            event(Kind::Mmap, 0x10000, 2 * PAGE, 0xc),
            event(Kind::Mmap, 0x10000 + 2 * PAGE, 2 * PAGE, 0xd),
            event(Kind::Munmap, 0x10000 + PAGE, 2 * PAGE, 0),
        ]);
        assert_eq!(site(&a, 0xc).live_bytes, PAGE);
        assert_eq!(site(&a, 0xd).live_bytes, PAGE);
        assert_eq!(a.totals().mapped_count, 2);
        assert_eq!(a.untracked().unmapped_bytes, 0);
    }

    #[test]
    fn mremap_moves_and_resizes_a_mapping() {
        let a = run(&[
            event(Kind::Mmap, 0x10000, 2 * PAGE, 0xc),
            mremap(0x10000, 2 * PAGE, 0x80000, 5 * PAGE),
        ]);
        assert_eq!(a.totals().mapped_bytes, 5 * PAGE);
        assert_eq!(a.totals().mapped_count, 1);
        assert_eq!(site(&a, 0xc).live_bytes, 0);
        assert_eq!(site(&a, 0x9000).live_bytes, 5 * PAGE);
    }

    #[test]
    fn mremap_of_untracked_memory_is_not_counted() {
        let a = run(&[mremap(0x10000, 2 * PAGE, 0x80000, 5 * PAGE)]);
        assert_eq!(a.totals().mapped_bytes, 0);
        assert_eq!(a.untracked().remaps, 1);
    }

    #[test]
    fn heap_and_mappings_are_separate_families() {
        let a = run(&[
            event(Kind::Malloc, 0x1000, 10, 0xa),
            event(Kind::Mmap, 0x10000, PAGE, 0xa),
        ]);
        assert_eq!(a.sites().len(), 2);
        assert_eq!(a.totals().live_bytes, 10);
        assert_eq!(a.totals().mapped_bytes, PAGE);
    }

    #[test]
    fn unknown_kind_is_ignored() {
        let mut e = event(Kind::Malloc, 0x1000, 10, 0xa);
        e.kind = 99;
        let a = run(&[e]);
        assert_eq!(a.totals().live_bytes, 0);
        assert_eq!(a.totals().events, 1);
    }

    #[test]
    fn old_bytes_count_only_allocations_before_the_cutoff() {
        let mut old = event(Kind::Malloc, 0x1000, 10, 0xa);
        old.timestamp_ns = 5;
        let mut young = event(Kind::Malloc, 0x2000, 20, 0xa);
        young.timestamp_ns = 50;
        let mut mapping = event(Kind::Mmap, 0x10000, PAGE, 0xc);
        mapping.timestamp_ns = 1;
        let a = run(&[old, young, mapping]);
        assert_eq!(a.old_bytes(10), [10, PAGE]);
        assert_eq!(a.old_bytes(100), [30, PAGE]);
    }

    #[test]
    fn ages_fall_into_buckets() {
        let second = 1_000_000_000;
        let mut old = event(Kind::Malloc, 0x1000, 10, 0xa);
        old.timestamp_ns = 0;
        let mut young = event(Kind::Malloc, 0x2000, 10, 0xa);
        young.timestamp_ns = 95 * second;
        let a = run(&[old, young]);
        let histograms = a.age_histograms(100 * second);
        assert_eq!(histograms[0], [0, 1, 0, 1, 0, 0]);
    }
}
