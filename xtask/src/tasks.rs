//! Build, demo and test.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::bootstrap::{self, Toolchain};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs a command, failing with its name when it does not succeed.
pub fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("failed to start `{}`", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `cargo` command run at the workspace root with memtrace's build environment.
pub fn cargo(toolchain: &Toolchain) -> Command {
    // The rustup proxy, not `$CARGO`: some steps pick a toolchain with `+name`.
    let mut command = Command::new("cargo");
    command.current_dir(workspace_root());
    toolchain.apply(&mut command);
    command
}

/// Bootstraps and builds the release binary; returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    let toolchain = bootstrap::run()?;
    build_with(&toolchain)
}

pub fn build_with(toolchain: &Toolchain) -> anyhow::Result<PathBuf> {
    run_checked(cargo(toolchain).args(["build", "--release", "--package", "memtrace"]))?;
    Ok(workspace_root().join("target/release/memtrace"))
}

/// Compiles a C program from `demo/` or `tests/workloads/` into `target/c/`.
pub fn compile_c(output: &str, sources: &[&str], flags: &[&str]) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let out_dir = root.join("target/c");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(output);
    run_checked(
        Command::new("gcc")
            .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
            .arg(&out)
            .args(sources.iter().map(|s| root.join(s)))
            .args(flags),
    )?;
    Ok(out)
}

/// Traces the bundled leaky demo and prints the report.
pub fn demo() -> anyhow::Result<()> {
    let memtrace = build()?;
    let library = compile_c(
        "libsessions.so",
        &["demo/sessions.c"],
        &["-shared", "-fPIC"],
    )?;
    let server = compile_c(
        "demo-server",
        &["demo/server.c"],
        &["-L", "target/c", "-lsessions", "-Wl,-rpath,$ORIGIN"],
    )?;
    eprintln!(
        "xtask: tracing {} (its session cache in {} leaks)",
        server.display(),
        library.display()
    );
    run_checked(
        Command::new(memtrace)
            .args(["run", "--top", "5", "--"])
            .arg(server)
            .args(["--requests", "20000"]),
    )
}

/// fmt, clippy, unit tests, then the integration tests (as root).
pub fn test() -> anyhow::Result<()> {
    let toolchain = bootstrap::run()?;
    run_checked(cargo(&toolchain).args(["fmt", "--all", "--check"]))?;
    run_checked(cargo(&toolchain).args([
        "clippy",
        "--workspace",
        "--exclude",
        "memtrace-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate only builds for its own target, with `core` built from source.
    run_checked(
        cargo(&toolchain)
            .arg(format!("+{}", toolchain.name))
            .args([
                "clippy",
                "--package",
                "memtrace-ebpf",
                "--target",
                "bpfel-unknown-none",
            ])
            .args(["-Z", "build-std=core", "--", "-D", "warnings"]),
    )?;
    run_checked(cargo(&toolchain).args([
        "test",
        "--workspace",
        "--exclude",
        "memtrace-ebpf",
        "--exclude",
        "memtrace-tests",
    ]))?;

    let memtrace = build_with(&toolchain)?;
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var_os("CI").is_some() {
            bail!("the eBPF integration tests need root, and CI must run them: run as root");
        }
        eprintln!(
            "xtask: SKIPPED the eBPF integration tests: they need root (run `sudo cargo xtask test`)"
        );
        return Ok(());
    }
    run_checked(
        cargo(&toolchain)
            .args([
                "test",
                "--package",
                "memtrace-tests",
                "--",
                "--test-threads",
                "2",
            ])
            .env("MEMTRACE_BIN", memtrace),
    )
}
