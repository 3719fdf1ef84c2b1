//! Types shared by memtrace's eBPF programs and its userspace.
//!
//! Everything here crosses the kernel boundary byte for byte, so every struct
//! is `#[repr(C)]`, `Copy`, and free of padding the two sides could disagree
//! on. The `user` feature adds the `aya::Pod` impls that userspace needs to
//! read these types out of maps.
#![no_std]

/// Name of the ring buffer that carries [`Event`]s to userspace.
pub const EVENTS_MAP: &str = "EVENTS";
/// Name of the stack-trace map that [`Event::stack_id`] indexes.
pub const STACKS_MAP: &str = "STACKS";
/// Name of the per-CPU array of loss and anomaly counters, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the global that holds the process id (tgid) being traced.
pub const TARGET_TGID_GLOBAL: &str = "TARGET_TGID";

/// Entry program for the malloc family (one attach per function; the cookie is the [`Kind`]).
pub const HEAP_ENTER_PROGRAM: &str = "heap_enter";
/// Return program for the malloc family.
pub const HEAP_RETURN_PROGRAM: &str = "heap_return";
/// Entry program for `free`.
pub const FREE_ENTER_PROGRAM: &str = "free_enter";
/// Entry program for mmap, munmap and mremap (the cookie is the [`Kind`]).
pub const MAP_ENTER_PROGRAM: &str = "map_enter";
/// Return program for mmap, munmap and mremap.
pub const MAP_RETURN_PROGRAM: &str = "map_return";

/// Default size of the ring buffer, in bytes (a power of two, as the kernel requires).
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 16 << 20;
/// Default number of buckets in the stack-trace map.
pub const DEFAULT_STACK_MAP_ENTRIES: u32 = 32 << 10;
/// Frames kept per stack, innermost first.
pub const STACK_DEPTH: u32 = 64;
/// Calls in flight (threads inside an allocator call) that can be tracked at once.
pub const PENDING_CALL_ENTRIES: u32 = 16 << 10;

/// `MAP_ANONYMOUS` on Linux.
pub const MAP_ANONYMOUS: u64 = 0x20;
/// `MAP_FAILED` as the raw return value of `mmap` and `mremap`.
pub const MAP_FAILED: u64 = u64::MAX;

/// The allocator function an event comes from.
///
/// Its value is also the attach cookie of the entry probes, so the same
/// program serves every function of a family.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Malloc = 1,
    Calloc = 2,
    Realloc = 3,
    Reallocarray = 4,
    Free = 5,
    PosixMemalign = 6,
    AlignedAlloc = 7,
    Memalign = 8,
    Valloc = 9,
    Pvalloc = 10,
    Mmap = 11,
    Munmap = 12,
    Mremap = 13,
}

impl Kind {
    /// Every kind, in the order of its value.
    pub const ALL: [Kind; 13] = [
        Kind::Malloc,
        Kind::Calloc,
        Kind::Realloc,
        Kind::Reallocarray,
        Kind::Free,
        Kind::PosixMemalign,
        Kind::AlignedAlloc,
        Kind::Memalign,
        Kind::Valloc,
        Kind::Pvalloc,
        Kind::Mmap,
        Kind::Munmap,
        Kind::Mremap,
    ];

    /// Converts the raw value carried by an event or a cookie.
    ///
    /// A `match` rather than a table lookup: the verifier rejects indexing
    /// a read-only array with a value it cannot bound.
    #[must_use]
    pub const fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Malloc,
            2 => Kind::Calloc,
            3 => Kind::Realloc,
            4 => Kind::Reallocarray,
            5 => Kind::Free,
            6 => Kind::PosixMemalign,
            7 => Kind::AlignedAlloc,
            8 => Kind::Memalign,
            9 => Kind::Valloc,
            10 => Kind::Pvalloc,
            11 => Kind::Mmap,
            12 => Kind::Munmap,
            13 => Kind::Mremap,
            _ => return None,
        })
    }

    /// The C library symbol this kind is probed at.
    #[must_use]
    pub const fn symbol(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::Calloc => "calloc",
            Kind::Realloc => "realloc",
            Kind::Reallocarray => "reallocarray",
            Kind::Free => "free",
            Kind::PosixMemalign => "posix_memalign",
            Kind::AlignedAlloc => "aligned_alloc",
            Kind::Memalign => "memalign",
            Kind::Valloc => "valloc",
            Kind::Pvalloc => "pvalloc",
            Kind::Mmap => "mmap",
            Kind::Munmap => "munmap",
            Kind::Mremap => "mremap",
        }
    }

    /// Whether this kind belongs to the mmap family rather than the malloc family.
    #[must_use]
    pub const fn is_mapping(self) -> bool {
        matches!(self, Kind::Mmap | Kind::Munmap | Kind::Mremap)
    }
}

/// One allocator call that completed, as the kernel side saw it.
///
/// Which fields mean what depends on [`Event::kind`]:
///
/// | kind | `address` | `size` | `old_address` | `old_size` |
/// |---|---|---|---|---|
/// | malloc, valloc, pvalloc | result | requested | 0 | 0 |
/// | calloc, reallocarray | result | `n * size` | old pointer (reallocarray) | 0 |
/// | realloc | result (0 when it freed) | requested | old pointer | 0 |
/// | posix_memalign, aligned_alloc, memalign | result | requested | 0 | alignment |
/// | free | freed pointer | 0 | 0 | 0 |
/// | mmap | result | length | 0 | flags |
/// | munmap | start | length | 0 | 0 |
/// | mremap | result | new length | old address | old length |
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` at the call's return (`CLOCK_MONOTONIC`).
    pub timestamp_ns: u64,
    pub address: u64,
    pub size: u64,
    pub old_address: u64,
    pub old_size: u64,
    /// The return address into the function that called the allocator.
    pub caller: u64,
    /// Index into the stack-trace map, or a negative errno when the stack
    /// could not be stored (then only [`Event::caller`] is known).
    pub stack_id: i32,
    /// Thread that made the call.
    pub tid: u32,
    /// A [`Kind`] value.
    pub kind: u32,
    /// [`STACK_WITHOUT_CALLER`], or 0.
    pub flags: u32,
}

/// [`Event::flags`]: the stored stack starts at the caller's caller (the
/// full stack collided with another in the map, and the stack without its
/// first frame was stored instead); the caller is [`Event::caller`].
pub const STACK_WITHOUT_CALLER: u32 = 1;

/// The arguments of an allocator call, kept from its entry to its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    /// Stack pointer at entry: tells the outermost call of a thread from the
    /// allocator's own nested calls (`realloc(NULL, n)` calling `malloc`).
    pub sp: u64,
    pub args: [u64; 5],
    pub kind: u32,
    /// Return probes still to fire for this call before it is complete: a
    /// probed function that tail-jumps into another has both their return
    /// probes on one return.
    pub chained: u32,
}

/// Indexes into the counters map. Every place the kernel side can drop or
/// distort an event has one, so userspace can say what it may have missed.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// An event was dropped because the ring buffer was full.
    RingBufferFull = 0,
    /// `bpf_get_stackid` found another stack in the bucket (`EEXIST`):
    /// the event kept only its immediate caller.
    StackCollision = 1,
    /// `bpf_get_stackid` failed for another reason: the event kept only its
    /// immediate caller.
    StackFailed = 2,
    /// The map of calls in flight was full: the call was not traced.
    PendingFull = 3,
    /// A return probe fired with no matching entry (the call was not traced).
    ReturnWithoutEntry = 4,
    /// `posix_memalign`'s result pointer could not be read: the call was not traced.
    ResultUnreadable = 5,
    /// An allocator call made by the allocator itself, skipped on purpose.
    NestedCall = 6,
    /// A call in flight was replaced before its return was seen.
    StaleCall = 7,
}

/// Number of entries in the counters map.
pub const COUNTER_SLOTS: u32 = 8;

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn raw_values_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_raw(kind as u32), Some(kind));
        }
        assert_eq!(Kind::from_raw(0), None);
        assert_eq!(Kind::from_raw(14), None);
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: both are `#[repr(C)]`, `Copy`, made of integers only, and every
    // bit pattern is a valid value.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PendingCall {}
}
