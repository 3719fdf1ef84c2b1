//! Aggregation throughput on synthetic events, on one core.
//!
//! Feeds the aggregator a stream shaped like a busy allocator's: mallocs
//! from 2,000 sites and frees of live blocks, around a working set of
//! 100,000 blocks, and prints events per second. `cargo xtask bench` runs it.

use std::time::Instant;

use memtrace::aggregate::Aggregator;
use memtrace_common::{Event, Kind};

const EVENTS: u64 = 20_000_000;
const WORKING_SET: u64 = 100_000;
const SITES: u64 = 2_000;

/// A small, fast, deterministic generator (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() {
    let mut rng = 42;
    let address = |generation: u64, slot: u64| 0x1000_0000 + (generation * WORKING_SET + slot) * 64;
    let mut events = Vec::with_capacity(EVENTS as usize);
    for n in 0.. {
        if events.len() as u64 >= EVENTS {
            break;
        }
        let (generation, slot) = (n / WORKING_SET, n % WORKING_SET);
        let site = next(&mut rng) % SITES;
        events.push(Event {
            timestamp_ns: n,
            address: address(generation, slot),
            size: 16 + next(&mut rng) % 512,
            caller: 0x40_0000 + site * 16,
            stack_id: site as i32,
            tid: 1,
            kind: Kind::Malloc as u32,
            ..Event::default()
        });
        if generation > 0 {
            events.push(Event {
                timestamp_ns: n,
                address: address(generation - 1, slot),
                tid: 1,
                kind: Kind::Free as u32,
                ..Event::default()
            });
        }
    }

    let mut aggregator = Aggregator::new(4096);
    let started = Instant::now();
    for event in &events {
        aggregator.apply(std::hint::black_box(event));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let totals = aggregator.totals();
    assert_eq!(
        aggregator.untracked().frees,
        0,
        "every free matches a live block"
    );
    println!(
        "aggregation: {:.1} M events/s ({} events in {:.3} s, {} live blocks, {} sites)",
        events.len() as f64 / elapsed / 1e6,
        events.len(),
        elapsed,
        totals.live_count,
        aggregator.sites().len()
    );
}
