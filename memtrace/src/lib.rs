//! memtrace: an eBPF tracer of native allocations.
//!
//! The data flows one way: [`probes`] attach the kernel side to the
//! allocator that [`allocator`] finds, [`session`] drains its events into
//! the [`aggregate`] state, and at the end [`consumers`], [`symbolize`] and
//! [`report`] turn that state into a report.

pub mod aggregate;
pub mod alerts;
pub mod allocator;
pub mod app;
pub mod check;
pub mod classify;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod events_out;
pub mod formats;
pub mod launch;
pub mod memory_map;
pub mod monitor;
pub mod probe_site;
pub mod probes;
pub mod procfs;
pub mod report;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod symbolize;
pub mod target;
pub mod units;
pub mod webhook;
