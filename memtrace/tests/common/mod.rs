//! What the integration tests share: the fixture report and external tools.

#![allow(dead_code, reason = "each test binary uses its own part")]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use memtrace::report::Report;

/// The fixture folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A real report: `memtrace run` of a C program that leaks from three
/// sites and frees everything it allocates at a fourth.
pub fn leak_report() -> Report {
    let text =
        std::fs::read_to_string(fixtures().join("leak-report.json")).expect("fixture is readable");
    serde_json::from_str(&text).expect("fixture is a report")
}

/// The path of an external tool, or a failure that says how to install it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed: install Debian's `{package}` package \
             (`cargo xtask bootstrap` installs it)"
        )
    })
}
