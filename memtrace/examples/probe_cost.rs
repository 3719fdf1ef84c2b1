//! What one probe hit costs, by the instruction at the probe site.
//!
//! `probe_cost PROBE_SITES_BINARY CALLS` times the benchmark's
//! `probe_sites` program calling a function CALLS times, bare and with an
//! idle memtrace probe on its first instruction, for each kind of first
//! instruction; `cargo xtask bench` runs it. Needs root.

use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context as _, bail};
use memtrace::probes::Probes;
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

/// The functions of `probe_sites`, how far into each the probe goes, and
/// whether it is a return probe (which also hits the entry).
const SITES: &[(&str, &str, u64, bool)] = &[
    ("nop", "site_nop", 0, false),
    ("push", "site_push", 0, false),
    ("jcc", "site_jcc", 3, false),
    ("mov", "site_mov", 0, false),
    ("test", "site_test", 0, false),
    ("nop", "site_nop", 0, true),
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .context("usage: probe_cost PROBE_SITES_BINARY CALLS")?;
    let calls: u64 = args.next().context("missing CALLS")?.parse()?;
    let binary = Path::new(&binary);
    let data = std::fs::read(binary)?;
    let file = object::File::parse(&*data)?;

    println!("probe cost by instruction at the probe site ({calls} calls each)");
    for &(name, symbol, skip, return_probe) in SITES {
        let address = file
            .symbols()
            .find(|s| s.name() == Ok(symbol))
            .with_context(|| format!("no `{symbol}` in `{}`", binary.display()))?
            .address();
        let offset = file
            .segments()
            .find_map(|seg| {
                let (offset, size) = seg.file_range();
                (seg.address()..seg.address() + size)
                    .contains(&address)
                    .then(|| address - seg.address() + offset)
            })
            .context("symbol outside every segment")?
            + skip;

        let bare = time(binary, name, calls)?;
        let probes = Probes::attach_idle(binary, offset, return_probe)?;
        let probed = time(binary, name, calls)?;
        drop(probes);
        let what = if return_probe {
            format!("{name}, return probe")
        } else {
            format!("{name}, entry probe")
        };
        println!(
            "  {what:<20} {:>7.2} us per call",
            (probed - bare) / calls as f64 * 1e6
        );
    }
    Ok(())
}

fn time(binary: &Path, site: &str, calls: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = Command::new(binary)
        .arg(site)
        .arg(calls.to_string())
        .status()?;
    if !status.success() {
        bail!("`{}` failed", binary.display());
    }
    Ok(started.elapsed().as_secs_f64())
}
