//! A Node.js native addon: its allocations are charged to the addon.

use std::process::Command;

use crate::harness::{compile, consumers_in, run_traced, sum};

/// The addon leaks 100 blocks of 4 KiB from inside `node`; they are charged
/// to `addon.node`, not to node or libc, with the exact bytes.
#[test]
fn leak_in_a_node_addon_is_charged_to_the_addon() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "this test needs `node` on PATH (the machine image ships Node.js)"
    );
    assert!(
        std::path::Path::new("/usr/include/node/node_api.h").exists(),
        "this test needs Node.js's headers in /usr/include/node"
    );
    let addon = compile(
        "addon.node",
        &["addon.c"],
        &["-shared", "-fPIC", "-I/usr/include/node"],
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/addon.js");
    let (code, report) = run_traced(
        "node",
        &[
            "node",
            script.to_str().expect("utf-8 path"),
            addon.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(report["lost"]["events"], 0);
    let leaks = consumers_in(&report, "addon_allocate");
    assert_eq!(sum(&leaks, "live_bytes"), 100 * 4096);
    assert_eq!(sum(&leaks, "live_count"), 100);
    for leak in &leaks {
        let module = leak["module"].as_str().expect("module");
        assert!(module.ends_with("/addon.node"), "charged to {module}");
    }
}
