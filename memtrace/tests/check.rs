//! `memtrace check` on a real report: budgets, suppressions, baselines and
//! the files it reads and writes.

mod common;

use std::{fs, path::Path};

use memtrace::{
    check::{self, CheckArgs, EXIT_FAIL, EXIT_PASS},
    report::Report,
};

fn args(dir: &Path, report: &Report) -> CheckArgs {
    let input = dir.join("report.json");
    fs::write(&input, serde_json::to_string(report).unwrap()).unwrap();
    CheckArgs {
        input: Some(input),
        max_leaked_bytes: None,
        max_leaked_count: None,
        max_growth: None,
        growth_window: std::time::Duration::from_mins(1),
        warmup: std::time::Duration::ZERO,
        suppressions: None,
        baseline: None,
        baseline_margin: 10.0,
        junit: None,
        github: false,
    }
}

fn with_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// The fixture with nothing left allocated.
fn clean_report() -> Report {
    let mut report = common::leak_report();
    for consumer in &mut report.consumers {
        consumer.live_bytes = 0;
        consumer.live_count = 0;
    }
    report
}

#[test]
fn a_clean_report_passes() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        check::run_check(&args(dir.path(), &clean_report())).unwrap(),
        EXIT_PASS
    );
}

#[test]
fn a_leaky_report_fails_with_exit_code_one() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        check::run_check(&args(dir.path(), &common::leak_report())).unwrap(),
        EXIT_FAIL
    );
}

#[test]
fn leaks_within_the_budget_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path(), &common::leak_report());
    args.max_leaked_bytes = Some(2 << 20);
    assert_eq!(check::run_check(&args).unwrap(), EXIT_PASS);
    args.max_leaked_count = Some(100);
    assert_eq!(
        check::run_check(&args).unwrap(),
        EXIT_FAIL,
        "603 blocks and regions leaked"
    );
}

#[test]
fn suppressions_pass_the_sites_they_match_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path(), &common::leak_report());

    args.suppressions = Some(with_file(
        dir.path(),
        "all.supp",
        "# the program's caches\nleak:build_*\nleak:big_map\nleak:load_config\n",
    ));
    assert_eq!(check::run_check(&args).unwrap(), EXIT_PASS);

    args.suppressions = Some(with_file(
        dir.path(),
        "some.supp",
        "leak:build_*\nleak:big_map\n",
    ));
    assert_eq!(
        check::run_check(&args).unwrap(),
        EXIT_FAIL,
        "load_config still leaks"
    );
}

#[test]
fn a_baseline_passes_known_sites_and_fails_new_and_grown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::leak_report();
    let mut args = args(dir.path(), &report);

    // The same program, run again: new addresses, same sites.
    let mut baseline = report.clone();
    for frame in baseline.consumers.iter_mut().flat_map(|c| &mut c.frames) {
        frame.address ^= 0x0000_1234_5000;
    }
    args.baseline = Some(with_file(
        dir.path(),
        "base.json",
        &serde_json::to_string(&baseline).unwrap(),
    ));
    assert_eq!(check::run_check(&args).unwrap(), EXIT_PASS);

    // A baseline without the `big_map` site: it is new.
    baseline.consumers.retain(|c| c.kind != "mmap");
    args.baseline = Some(with_file(
        dir.path(),
        "base.json",
        &serde_json::to_string(&baseline).unwrap(),
    ));
    assert_eq!(check::run_check(&args).unwrap(), EXIT_FAIL);

    // A baseline where `make_node` held half as much: it grew.
    let mut baseline = report.clone();
    let cache = baseline
        .consumers
        .iter_mut()
        .find(|c| c.frames[0].function.as_deref() == Some("make_node"))
        .unwrap();
    cache.live_bytes /= 2;
    args.baseline = Some(with_file(
        dir.path(),
        "base.json",
        &serde_json::to_string(&baseline).unwrap(),
    ));
    assert_eq!(check::run_check(&args).unwrap(), EXIT_FAIL);
    args.baseline_margin = 150.0;
    assert_eq!(
        check::run_check(&args).unwrap(),
        EXIT_PASS,
        "within a 150 % margin"
    );
}

#[test]
fn a_malformed_suppressions_file_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path(), &common::leak_report());
    args.suppressions = Some(with_file(dir.path(), "bad.supp", "leak:ok\n\nleek:typo\n"));
    let message = format!("{:#}", check::run_check(&args).unwrap_err());
    assert!(message.contains("bad.supp"), "{message}");
    assert!(
        message.contains("line 3: expected `leak:PATTERN`"),
        "{message}"
    );

    args.suppressions = Some(dir.path().join("missing.supp"));
    let message = format!("{:#}", check::run_check(&args).unwrap_err());
    assert!(
        message.contains("cannot read the suppressions file"),
        "{message}"
    );
}

#[test]
fn a_bad_baseline_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path(), &common::leak_report());
    args.baseline = Some(with_file(dir.path(), "base.json", "{\"consumers\": []}"));
    let message = format!("{:#}", check::run_check(&args).unwrap_err());
    assert!(
        message.starts_with("cannot use the baseline: `"),
        "{message}"
    );
    assert!(
        message.contains("base.json` is not a memtrace JSON report"),
        "{message}"
    );
    assert!(!message.contains('\n'));
}

/// The `JUnit` file is well-formed XML with a failure for each budget-breaking
/// site, also when names carry markup characters.
#[test]
fn junit_reports_are_well_formed_with_a_failure_per_failing_site() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = common::leak_report();
    report.consumers[0].frames[0].function = Some("std::map<int, char>::operator[]&\"'".to_owned());
    let mut args = args(dir.path(), &report);
    args.suppressions = Some(with_file(dir.path(), "s.supp", "leak:load_config\n"));
    args.junit = Some(dir.path().join("junit.xml"));
    assert_eq!(check::run_check(&args).unwrap(), EXIT_FAIL);

    let xml = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut skipped, mut names) = (0, 0, 0, Vec::new());
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => {
                        cases += 1;
                        let name = e.try_get_attribute("name").unwrap().unwrap();
                        names.push(
                            name.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                                .unwrap()
                                .into_owned(),
                        );
                    }
                    b"failure" => failures += 1,
                    b"skipped" => skipped += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // The malloc and calloc in `load_config` are one site; it is suppressed.
    assert_eq!((cases, failures, skipped), (3, 2, 1), "{xml}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("std::map<int, char>::operator[]&\"' at /tmp/leak/leak.c:11")),
        "{names:?}"
    );
}
