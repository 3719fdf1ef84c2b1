//! Compiles the eBPF programs in `memtrace-ebpf` and leaves the object in
//! `OUT_DIR`, where `memtrace` embeds it.
//!
//! The eBPF crate needs `-Z build-std=core` and `bpf-linker`. `cargo xtask
//! bootstrap` installs the linker into the workspace's `.tools/bin`, which is
//! put first on `PATH` here so that a plain `cargo build` finds it too.
//! `MEMTRACE_EBPF_TOOLCHAIN` names the toolchain for the eBPF crate
//! (default `nightly`; `stable` works together with `RUSTC_BOOTSTRAP=1`).

use std::{env, path::Path};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .context("`memtrace` has no parent folder")?;

    let tools = workspace.join(".tools").join("bin");
    let path = env::var_os("PATH").unwrap_or_default();
    let path = env::join_paths(std::iter::once(tools).chain(env::split_paths(&path)))
        .context("cannot put `.tools/bin` on `PATH`")?;
    // SAFETY: build scripts are single-threaded until `build_ebpf` spawns cargo.
    unsafe { env::set_var("PATH", path) };

    println!("cargo:rerun-if-env-changed=MEMTRACE_EBPF_TOOLCHAIN");
    let toolchain = env::var("MEMTRACE_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        None | Some("nightly") => Toolchain::Nightly,
        Some(other) => Toolchain::Custom(other),
    };

    // `build_ebpf` watches the eBPF crate; the types it shares live here.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("memtrace-common").display()
    );
    let ebpf = workspace.join("memtrace-ebpf");
    let root_dir = ebpf
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path `{}`", ebpf.display()))?;
    aya_build::build_ebpf(
        [Package {
            name: "memtrace-ebpf",
            root_dir,
            ..Package::default()
        }],
        toolchain,
    )
}
