//! Installing what the build and the tests need, each step only when missing.
//!
//! - A toolchain for the eBPF crate: `nightly` with `rust-src` when nightly
//!   is installed, otherwise `stable` with its `rust-src` and
//!   `RUSTC_BOOTSTRAP=1` (which lets stable take `-Z build-std=core`).
//! - `bpf-linker`, built from crates.io into `.tools/bin` against the LLVM
//!   shared library that ships inside that toolchain.
//! - Debian packages the integration tests use.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::tasks::{run_checked, workspace_root};

/// Debian packages the tests need: a C compiler and the static C library
/// (for the statically-linked target test), util-linux's `setpriv` (to run
/// memtrace without privileges), `protoc` (to decode pprof output) and
/// Chromium (to render SVG flame graphs).
const TEST_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "util-linux",
    "protobuf-compiler",
    "chromium",
];

/// How the eBPF crate gets built on this machine.
#[derive(Clone, Debug)]
pub struct Toolchain {
    /// `nightly` or `stable`.
    pub name: String,
    /// Whether `RUSTC_BOOTSTRAP=1` is needed (stable only).
    pub bootstrap: bool,
}

impl Toolchain {
    /// Environment for cargo commands that build memtrace.
    pub fn apply(&self, command: &mut Command) {
        command.env("MEMTRACE_EBPF_TOOLCHAIN", &self.name);
        if self.bootstrap {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
    }
}

/// Makes sure everything is installed; returns the toolchain to build with.
pub fn run() -> anyhow::Result<Toolchain> {
    let toolchain = choose_toolchain()?;
    ensure_rust_src(&toolchain)?;
    ensure_bpf_linker(&toolchain)?;
    ensure_packages(TEST_PACKAGES)?;
    Ok(toolchain)
}

fn choose_toolchain() -> anyhow::Result<Toolchain> {
    let output = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("failed to run `rustup`: memtrace's eBPF crate needs rustup-managed toolchains")?;
    let list = String::from_utf8_lossy(&output.stdout);
    if list.lines().any(|l| l.starts_with("nightly")) {
        Ok(Toolchain {
            name: "nightly".into(),
            bootstrap: false,
        })
    } else {
        eprintln!(
            "xtask: no nightly toolchain: building the eBPF crate with stable and RUSTC_BOOTSTRAP=1"
        );
        Ok(Toolchain {
            name: "stable".into(),
            bootstrap: true,
        })
    }
}

fn sysroot(toolchain: &Toolchain) -> anyhow::Result<PathBuf> {
    let output = Command::new("rustc")
        .arg(format!("+{}", toolchain.name))
        .args(["--print", "sysroot"])
        .output()
        .context("failed to run `rustc --print sysroot`")?;
    if !output.status.success() {
        bail!("`rustc +{} --print sysroot` failed", toolchain.name);
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

fn ensure_rust_src(toolchain: &Toolchain) -> anyhow::Result<()> {
    let src = sysroot(toolchain)?.join("lib/rustlib/src/rust/library/core");
    if src.exists() {
        return Ok(());
    }
    eprintln!("xtask: installing rust-src for {}", toolchain.name);
    run_checked(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        &toolchain.name,
    ]))
}

/// The `bpf-linker` binary in the project's tools folder.
pub fn bpf_linker_path() -> PathBuf {
    workspace_root().join(".tools/bin/bpf-linker")
}

fn ensure_bpf_linker(toolchain: &Toolchain) -> anyhow::Result<()> {
    let linker = bpf_linker_path();
    if linker.exists()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }

    let sysroot = sysroot(toolchain)?;
    let llvm = find_llvm_library(&sysroot.join("lib"))?;
    let tools = workspace_root().join(".tools");
    std::fs::create_dir_all(tools.join("lib"))?;
    let link = tools.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("failed to link `{}`", link.display()))?;

    eprintln!(
        "xtask: building bpf-linker into {} (about a minute)",
        tools.display()
    );
    let mut install = Command::new("cargo");
    install
        .arg(format!("+{}", toolchain.name))
        .args(["install", "bpf-linker", "--locked", "--no-default-features"])
        .args(["--features", "llvm-22", "--root"])
        .arg(&tools)
        .env("LLVM_PREFIX", &tools)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", sysroot.join("lib").display()),
        );
    if toolchain.bootstrap {
        install.env("RUSTC_BOOTSTRAP", "1");
    }
    run_checked(&mut install)
}

/// The versioned `libLLVM.so.*` inside a toolchain's `lib` folder.
fn find_llvm_library(lib: &Path) -> anyhow::Result<PathBuf> {
    let entries =
        std::fs::read_dir(lib).with_context(|| format!("failed to list `{}`", lib.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no `libLLVM.so.*` in `{}`: bpf-linker cannot be built",
                lib.display()
            )
        })
}

fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    run_checked(Command::new("apt-get").arg("update").arg("-q"))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
