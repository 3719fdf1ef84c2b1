//! A check's verdict for people (a short summary), for CI test reports
//! (`JUnit` XML) and for GitHub Actions (workflow-command annotations).

use std::{io, path::Path};

use super::{Breach, LeakSite, SiteStatus, Verdict};
use crate::report::{Report, bytes, count};

/// Sites listed in the summary.
const SUMMARY_SITES: usize = 10;

/// Writes the verdict in a few lines: the outcome, the broken budgets, the
/// count of sites by status and the largest sites.
pub fn write_summary(
    verdict: &Verdict,
    report: &Report,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    writeln!(
        out,
        "memtrace check: {} for pid {} `{}`",
        if verdict.passed() { "PASS" } else { "FAIL" },
        report.target.pid,
        report.target.command
    )?;
    if report.lost.any() {
        writeln!(
            out,
            "  warning: {} events were lost; the leaks below are lower bounds",
            count(report.lost.events)
        )?;
    }
    for breach in &verdict.breaches {
        writeln!(out, "  broken: {breach}")?;
    }
    writeln!(
        out,
        "  leaked: {} in {} blocks and regions at new or grown sites",
        bytes(verdict.leaked_bytes),
        count(verdict.leaked_count)
    )?;
    if let Some(growth) = verdict.growth.filter(|_| verdict.growth_checked) {
        writeln!(
            out,
            "  growth: {}{}/min at most ({:.1} s to {:.1} s)",
            if growth.bytes_per_minute < 0.0 {
                "-"
            } else {
                "+"
            },
            bytes(growth.bytes_per_minute.abs() as u64),
            growth.from_s,
            growth.to_s
        )?;
    }
    writeln!(
        out,
        "  sites:  {} new, {} grew, {} known to the baseline, {} suppressed",
        verdict.count_of("new"),
        verdict.count_of("grew"),
        verdict.count_of("known"),
        verdict.count_of("suppressed")
    )?;
    for site in verdict.sites.iter().take(SUMMARY_SITES) {
        writeln!(
            out,
            "  {:<4} {:<10} {:>24}  {}",
            if site.failed { "FAIL" } else { "ok" },
            site.status.word(),
            site.holding(),
            site.title()
        )?;
    }
    if verdict.sites.len() > SUMMARY_SITES {
        writeln!(
            out,
            "  ... {} more sites",
            verdict.sites.len() - SUMMARY_SITES
        )?;
    }
    Ok(())
}

/// Writes the verdict as `JUnit` XML: a test case per leak site, failed when
/// the site broke a leak budget and skipped when suppressed, and one for the
/// growth budget when there is one.
pub fn write_junit(verdict: &Verdict, report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let growth_case = usize::from(verdict.growth_checked);
    let tests = verdict.sites.len() + growth_case;
    let growth_failed = verdict
        .breaches
        .iter()
        .any(|b| matches!(b, Breach::Growth { .. }));
    let failures = verdict.sites.iter().filter(|s| s.failed).count() + usize::from(growth_failed);
    let skipped = verdict.count_of("suppressed");
    let suite = format!("memtrace leak check of `{}`", report.target.command);

    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="memtrace" tests="{tests}" failures="{failures}" skipped="{skipped}" errors="0">"#
    )?;
    writeln!(
        out,
        r#"  <testsuite name="{}" tests="{tests}" failures="{failures}" skipped="{skipped}" errors="0" time="{:.3}">"#,
        xml(&suite),
        report.duration_s
    )?;
    for site in &verdict.sites {
        site_case(site, out)?;
    }
    if verdict.growth_checked {
        writeln!(
            out,
            r#"    <testcase classname="memtrace.growth" name="memory growth">"#
        )?;
        for breach in verdict
            .breaches
            .iter()
            .filter(|b| matches!(b, Breach::Growth { .. }))
        {
            writeln!(
                out,
                r#"      <failure type="growth" message="{}"/>"#,
                xml(&breach.to_string())
            )?;
        }
        writeln!(out, "    </testcase>")?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

fn site_case(site: &LeakSite, out: &mut dyn io::Write) -> io::Result<()> {
    let classname = format!("memtrace.leaks.{}", site.key.kind);
    writeln!(
        out,
        r#"    <testcase classname="{}" name="{}">"#,
        xml(&classname),
        xml(&site.title())
    )?;
    let stack: String = site
        .frames
        .iter()
        .map(|f| {
            let function = f.function.as_deref().unwrap_or("??");
            match (&f.file, f.line) {
                (Some(file), Some(line)) => {
                    format!("  {function} at {file}:{line} [{}]\n", f.module)
                }
                _ => format!("  {function} [{} {:#x}]\n", f.module, f.address),
            }
        })
        .collect();
    match &site.status {
        SiteStatus::Suppressed(pattern) => {
            let message = format!("{} suppressed by `leak:{pattern}`", site.holding());
            writeln!(out, r#"      <skipped message="{}"/>"#, xml(&message))?;
        }
        status if site.failed => {
            let message = match status {
                SiteStatus::Grew { baseline_bytes, .. } => format!(
                    "{} leaked, grown from {} in the baseline",
                    site.holding(),
                    bytes(*baseline_bytes)
                ),
                _ => format!("{} leaked at a new site", site.holding()),
            };
            writeln!(
                out,
                r#"      <failure type="leak" message="{}">{}</failure>"#,
                xml(&message),
                xml(&stack)
            )?;
        }
        _ => {
            let note = format!("{} ({})\n{stack}", site.holding(), site.status.word());
            writeln!(out, "      <system-out>{}</system-out>", xml(&note))?;
        }
    }
    writeln!(out, "    </testcase>")
}

/// Writes a GitHub Actions `::error` annotation for each failing site, at its
/// first frame with a source line, and one for a broken growth budget.
/// Paths under `workspace` (the checkout, `$GITHUB_WORKSPACE`) are made
/// relative to it, as annotations need.
pub fn write_github(
    verdict: &Verdict,
    workspace: Option<&Path>,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    for site in verdict.sites.iter().filter(|s| s.failed) {
        let message = format!(
            "{} leaked ({}) in {}",
            site.holding(),
            site.status.word(),
            site.title()
        );
        match site.source() {
            Some((file, line)) => {
                let file = workspace
                    .and_then(|w| Path::new(file).strip_prefix(w).ok())
                    .map_or_else(|| file.to_owned(), |p| p.display().to_string());
                writeln!(
                    out,
                    "::error file={},line={line},title={}::{}",
                    property(&file),
                    property("memtrace: leak"),
                    data(&message)
                )?;
            }
            None => writeln!(
                out,
                "::error title={}::{}",
                property("memtrace: leak"),
                data(&message)
            )?,
        }
    }
    for breach in &verdict.breaches {
        if let Breach::Growth { .. } = breach {
            writeln!(
                out,
                "::error title={}::{}",
                property("memtrace: memory growth"),
                data(&breach.to_string())
            )?;
        }
    }
    Ok(())
}

/// Escapes text for XML content and attribute values; characters XML 1.0
/// cannot hold become U+FFFD.
#[must_use]
pub fn xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escapes a workflow command's message.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        check::{CheckOptions, Suppressions, evaluate},
        formats::fixture,
    };

    #[test]
    fn annotations_point_at_the_first_source_line_relative_to_the_workspace() {
        let verdict = evaluate(
            &fixture::sample(),
            &CheckOptions::default(),
            &Suppressions::default(),
            None,
        );
        let mut out = Vec::new();
        write_github(&verdict, Some(Path::new("/src")), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("::error file=app.c,line=7,title=memtrace%3A leak::4.00 KiB in 4 blocks leaked (new)"),
            "{text}"
        );
        // The JIT site's first frame has no line; its caller's does.
        assert!(
            lines[2].starts_with("::error file=app.c,line=20,"),
            "{text}"
        );
    }

    #[test]
    fn workflow_command_values_are_escaped() {
        assert_eq!(data("50%\nmore"), "50%25%0Amore");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn xml_escaping_covers_markup_and_control_characters() {
        assert_eq!(xml(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml("bell\u{7}"), "bell\u{fffd}");
    }
}
