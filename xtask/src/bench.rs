//! Benchmarks: placeholder until the workload exists.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
