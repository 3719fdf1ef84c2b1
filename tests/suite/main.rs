//! memtrace's integration tests: real probes on real processes.
//!
//! They need root (or `CAP_BPF` and `CAP_PERFMON`) and a kernel with
//! uprobes; `cargo xtask test` builds the release binary and runs them with
//! `MEMTRACE_BIN` pointing at it. Workloads are small C programs compiled
//! at test time from `tests/workloads`.

mod attach;
mod check;
mod errors;
mod harness;
mod monitor;
mod node;
mod run;
