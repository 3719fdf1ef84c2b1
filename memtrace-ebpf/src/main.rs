//! memtrace's kernel side: uprobes on the C library's allocator.
//!
//! Entry probes keep each call's arguments in a per-thread map; return probes
//! pair them with the result, take the user stack (complete at that point:
//! the instruction pointer is the return address into the caller, and the
//! caller's frame pointer is restored), and push one [`Event`] into the ring
//! buffer; `free` sends its event at entry. Every place where an event can be
//! lost bumps a counter in `COUNTERS`.
//!
//! Needs Linux 5.15 (ring buffer, attach cookies on uprobes).
#![no_std]
#![no_main]
#![expect(
    clippy::needless_pass_by_value,
    reason = "the aya macros hand each program its context by value"
)]
#![expect(
    clippy::inline_always,
    reason = "BPF-to-BPF calls cost verifier budget and cannot pass map pointers"
)]

use core::cell::UnsafeCell;

use aya_ebpf::{
    EbpfContext as _, Global,
    bindings::{
        BPF_F_USER_STACK, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, bpf_map_def,
        bpf_map_type::BPF_MAP_TYPE_STACK_TRACE, pt_regs,
    },
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_get_stackid, bpf_ktime_get_ns,
        bpf_probe_read_user,
    },
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext},
};
use memtrace_common::{
    COUNTER_SLOTS, Counter, DEFAULT_RING_BUFFER_BYTES, DEFAULT_STACK_MAP_ENTRIES, Event, Kind,
    MAP_ANONYMOUS, MAP_FAILED, PENDING_CALL_ENTRIES, PendingCall, STACK_DEPTH,
    STACK_WITHOUT_CALLER,
};

/// The process being traced. Set by the loader; probes ignore every other process.
#[unsafe(no_mangle)]
static TARGET_TGID: Global<u32> = Global::new(0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BUFFER_BYTES, 0);

/// Stack traces of at most [`STACK_DEPTH`] frames. Defined by hand rather
/// than with aya's `StackTrace`, whose entries hold the kernel's maximum of
/// 127 frames: the shallower map holds twice the stacks in the same kernel
/// memory, and deep stacks that differ only far from the allocation (JIT
/// frames, garbage from frames without frame pointers) share an entry.
#[unsafe(link_section = "maps")]
#[unsafe(export_name = "STACKS")]
static STACKS: StackMap = StackMap(UnsafeCell::new(bpf_map_def {
    type_: BPF_MAP_TYPE_STACK_TRACE,
    key_size: size_of::<u32>() as u32,
    value_size: STACK_DEPTH * size_of::<u64>() as u32,
    max_entries: DEFAULT_STACK_MAP_ENTRIES,
    map_flags: 0,
    id: 0,
    pinning: 0,
}));

#[repr(transparent)]
struct StackMap(UnsafeCell<bpf_map_def>);

// SAFETY: the kernel owns the map; programs only pass its address to helpers.
unsafe impl Sync for StackMap {}

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// malloc-family calls in flight, by thread id.
#[map]
static HEAP_CALLS: HashMap<u32, PendingCall> = HashMap::with_max_entries(PENDING_CALL_ENTRIES, 0);

/// mmap-family calls in flight, by thread id.
#[map]
static MAP_CALLS: HashMap<u32, PendingCall> = HashMap::with_max_entries(PENDING_CALL_ENTRIES, 0);

const EEXIST: i32 = 17;

#[uprobe]
pub fn heap_enter(ctx: ProbeContext) -> u32 {
    if let Some(tid) = target_thread() {
        enter(&ctx, tid, &HEAP_CALLS, cookie(&ctx));
    }
    0
}

#[uretprobe]
pub fn heap_return(ctx: RetProbeContext) -> u32 {
    if let Some(tid) = target_thread() {
        try_heap_return(&ctx, tid);
    }
    0
}

#[uprobe]
pub fn free_enter(ctx: ProbeContext) -> u32 {
    if let Some(tid) = target_thread() {
        try_free_enter(&ctx, tid);
    }
    0
}

#[uprobe]
pub fn map_enter(ctx: ProbeContext) -> u32 {
    if let Some(tid) = target_thread() {
        try_map_enter(&ctx, tid);
    }
    0
}

#[uretprobe]
pub fn map_return(ctx: RetProbeContext) -> u32 {
    if let Some(tid) = target_thread() {
        try_map_return(&ctx, tid);
    }
    0
}

/// The calling thread's id, when it belongs to the traced process.
#[inline(always)]
fn target_thread() -> Option<u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == TARGET_TGID.load() {
        Some(pid_tgid as u32)
    } else {
        None
    }
}

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &pt_regs {
    // SAFETY: the kernel hands uprobe programs a valid `pt_regs`.
    unsafe { &*ctx.regs }
}

#[inline(always)]
fn ret_regs(ctx: &RetProbeContext) -> &pt_regs {
    // SAFETY: as above, for return probes.
    unsafe { &*ctx.regs }
}

/// Whether the thread is already inside an outer call of the malloc family
/// (or `free`), whose frame is at or above `sp` on the stack.
#[inline(always)]
fn inside_heap_call(tid: u32, sp: u64) -> bool {
    match HEAP_CALLS.get_ptr(tid) {
        // SAFETY: the entry belongs to this thread, which is running this program.
        Some(call) => (unsafe { (*call).sp }) >= sp,
        None => false,
    }
}

/// The attach cookie of the running program's link: the [`Kind`] it traces.
#[inline(always)]
fn cookie(ctx: &ProbeContext) -> u32 {
    // SAFETY: reading the attach cookie of the program's own link.
    unsafe { bpf_get_attach_cookie(ctx.as_ptr()) as u32 }
}

/// Kind of a call recorded only so that its return probe knows to ignore it.
const IGNORED: u32 = 0;

/// Records the arguments of a call at its entry.
#[inline(always)]
fn enter(ctx: &ProbeContext, tid: u32, calls: &HashMap<u32, PendingCall>, kind: u32) {
    let regs = regs(ctx);
    let sp = regs.rsp;
    if let Some(outer) = calls.get_ptr_mut(tid) {
        // SAFETY: the entry belongs to this thread, which is running this program.
        let outer_sp = unsafe { (*outer).sp };
        if outer_sp > sp {
            bump(Counter::NestedCall);
            return;
        }
        if outer_sp == sp {
            // A probed function tail-jumped into another (glibc's
            // `reallocarray` into `realloc`): one return will fire both
            // return probes; the outer call's arguments stand.
            // SAFETY: as above.
            unsafe { (*outer).chained += 1 };
            bump(Counter::NestedCall);
            return;
        }
        // An older call, deeper in the stack than this one, never returned.
        bump(Counter::StaleCall);
    }

    let call = PendingCall {
        sp,
        args: [regs.rdi, regs.rsi, regs.rdx, regs.rcx, regs.r8],
        kind,
        chained: 0,
    };
    if calls.insert(tid, call, 0).is_err() {
        bump(Counter::PendingFull);
    }
}

/// Takes the pending call that this return belongs to, if it is the outermost one.
#[inline(always)]
fn take_call(tid: u32, sp: u64, calls: &HashMap<u32, PendingCall>) -> Option<PendingCall> {
    let Some(ptr) = calls.get_ptr_mut(tid) else {
        bump(Counter::ReturnWithoutEntry);
        return None;
    };
    // SAFETY: the entry belongs to this thread, which is running this program.
    let call = unsafe { *ptr };
    // `ret` popped the return address: the outermost call entered 8 bytes lower.
    if call.sp != sp.wrapping_sub(8) {
        return None;
    }
    if call.chained > 0 {
        // The return probe of a function tail-jumped into: the last one to
        // fire takes the call.
        // SAFETY: as above.
        unsafe { (*ptr).chained -= 1 };
        return None;
    }
    let _ = calls.remove(tid);
    Some(call)
}

fn try_heap_return(ctx: &RetProbeContext, tid: u32) {
    let regs = ret_regs(ctx);
    let Some(call) = take_call(tid, regs.rsp, &HEAP_CALLS) else {
        return;
    };
    let ret = regs.rax;
    let [a0, a1, a2, _, _] = call.args;
    let mut event = Event {
        address: ret,
        ..Event::default()
    };
    match Kind::from_raw(call.kind) {
        Some(Kind::Malloc | Kind::Valloc | Kind::Pvalloc) => event.size = a0,
        Some(Kind::Calloc) => event.size = a0.wrapping_mul(a1),
        Some(Kind::Realloc) => {
            // realloc(p, 0) may free `p` and return NULL: that is not a failure.
            if ret == 0 && !(a1 == 0 && a0 != 0) {
                return;
            }
            event.old_address = a0;
            event.size = a1;
        }
        Some(Kind::Reallocarray) => {
            event.old_address = a0;
            event.size = a1.wrapping_mul(a2);
        }
        Some(Kind::AlignedAlloc | Kind::Memalign) => {
            event.old_size = a0;
            event.size = a1;
        }
        Some(Kind::PosixMemalign) => {
            if ret as u32 != 0 {
                return;
            }
            // SAFETY: a helper read of a user address; failure is handled.
            let Ok(address) = (unsafe { bpf_probe_read_user(a0 as *const u64) }) else {
                bump(Counter::ResultUnreadable);
                return;
            };
            event.address = address;
            event.old_size = a1;
            event.size = a2;
        }
        _ => return,
    }
    if event.address == 0 && call.kind != Kind::Realloc as u32 {
        return;
    }
    event.kind = call.kind;
    emit(ctx, tid, event);
}

fn try_free_enter(ctx: &ProbeContext, tid: u32) {
    let regs = regs(ctx);
    let address = regs.rdi;
    // A free made by realloc itself is skipped: the realloc's own event says
    // what happened.
    if address != 0 && !inside_heap_call(tid, regs.rsp) {
        let event = Event {
            // SAFETY: a helper with no preconditions.
            timestamp_ns: unsafe { bpf_ktime_get_ns() },
            address,
            kind: Kind::Free as u32,
            tid,
            ..Event::default()
        };
        send(&event);
    }
    // `free` can map memory for itself (a thread's first free sets up its
    // arena): while it runs, its mmap calls are the allocator's own.
    enter(ctx, tid, &HEAP_CALLS, IGNORED);
}

fn try_map_enter(ctx: &ProbeContext, tid: u32) {
    let regs = regs(ctx);
    let mut kind = cookie(ctx);
    // The malloc family maps and unmaps for itself; its own event covers it.
    if inside_heap_call(tid, regs.rsp) {
        bump(Counter::NestedCall);
        kind = IGNORED;
    }
    // Only anonymous mappings are memory the process allocated.
    if kind == Kind::Mmap as u32 && regs.rcx & MAP_ANONYMOUS == 0 {
        kind = IGNORED;
    }
    // Ignored calls are still recorded, so that their return is not taken
    // for one whose entry was lost.
    enter(ctx, tid, &MAP_CALLS, kind);
}

fn try_map_return(ctx: &RetProbeContext, tid: u32) {
    let regs = ret_regs(ctx);
    let Some(call) = take_call(tid, regs.rsp, &MAP_CALLS) else {
        return;
    };
    let ret = regs.rax;
    let [a0, a1, a2, a3, _] = call.args;
    let mut event = Event::default();
    match Kind::from_raw(call.kind) {
        Some(Kind::Mmap) => {
            if ret == MAP_FAILED {
                return;
            }
            event.address = ret;
            event.size = a1;
            event.old_size = a3;
        }
        Some(Kind::Munmap) => {
            if ret != 0 {
                return;
            }
            event.address = a0;
            event.size = a1;
        }
        Some(Kind::Mremap) => {
            if ret == MAP_FAILED {
                return;
            }
            event.address = ret;
            event.size = a2;
            event.old_address = a0;
            event.old_size = a1;
        }
        _ => return,
    }
    event.kind = call.kind;
    emit(ctx, tid, event);
}

/// Stamps an event with its time and stack and sends it to userspace.
#[inline(always)]
fn emit(ctx: &RetProbeContext, tid: u32, mut event: Event) {
    // SAFETY: a helper with no preconditions.
    event.timestamp_ns = unsafe { bpf_ktime_get_ns() };
    event.tid = tid;
    // At a return probe the instruction pointer is the return address into the caller.
    event.caller = ret_regs(ctx).rip;
    let mut id = stack_id(ctx, 0);
    if id == -i64::from(EEXIST) {
        // Another stack holds this one's bucket. The stack without its first
        // frame hashes elsewhere, and that frame is the caller, which the
        // event carries anyway: nothing is lost.
        let retry = stack_id(ctx, 1);
        if retry >= 0 {
            id = retry;
            event.flags |= STACK_WITHOUT_CALLER;
        }
    }
    if id < 0 {
        bump(if -id == i64::from(EEXIST) {
            Counter::StackCollision
        } else {
            Counter::StackFailed
        });
    }
    event.stack_id = id as i32;
    send(&event);
}

/// Bytes waiting in the ring buffer past which the reader is woken.
///
/// Waking the reader on every event (the ring buffer's default whenever the
/// reader has caught up) costs a cross-CPU wakeup per allocation. Below this
/// mark events wait for the reader's own short poll timeout instead.
const WAKEUP_BYTES: u64 = 256 << 10;

/// The id of the current user stack in `STACKS`, skipping its first `skip`
/// frames, or a negative errno.
#[inline(always)]
fn stack_id(ctx: &RetProbeContext, skip: u64) -> i64 {
    // SAFETY: a helper call with the program's context and a stack-trace map.
    unsafe {
        bpf_get_stackid(
            ctx.as_ptr(),
            STACKS.0.get().cast(),
            u64::from(BPF_F_USER_STACK) | skip,
        )
    }
}

/// Pushes an event into the ring buffer, counting it when there is no room.
#[inline(always)]
fn send(event: &Event) {
    let flags = if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if EVENTS.output::<Event>(event, u64::from(flags)).is_err() {
        bump(Counter::RingBufferFull);
    }
}

#[inline(always)]
fn bump(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; this program cannot be preempted by itself on this CPU.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
