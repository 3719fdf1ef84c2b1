//! Folded stacks: one line per stack, frames root first joined by `;`, a
//! space and the stack's value, the input of `flamegraph.pl` and inferno.

use std::io::{self, Write};

use rustc_hash::FxHashMap;

use super::{Measure, frame_name, weighed};
use crate::report::Report;

/// The report's stacks, root first, with their value in `measure`; stacks
/// that name the same frames are merged, zero values left out. Sorted by
/// stack, so equal reports fold to equal text.
pub fn stacks(report: &Report, measure: Measure) -> Vec<(String, u64)> {
    let mut merged: FxHashMap<String, u64> = FxHashMap::default();
    for (consumer, value) in weighed(report, measure) {
        let names: Vec<String> = consumer.frames.iter().rev().map(frame_name).collect();
        let stack = if names.is_empty() {
            format!("[no stack] [{}]", consumer.kind)
        } else {
            names.join(";")
        };
        *merged.entry(stack).or_default() += value;
    }
    let mut stacks: Vec<_> = merged.into_iter().collect();
    stacks.sort_unstable();
    stacks
}

/// Writes the folded stacks of `report` weighed by `measure`.
pub fn write(report: &Report, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    for (stack, value) in stacks(report, measure) {
        writeln!(out, "{stack} {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    #[test]
    fn stacks_are_written_root_first_without_zero_values() {
        let mut out = Vec::new();
        write(&fixture::sample(), Measure::LiveBytes, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "main [server];0x7f00dead0000 [jit] 300\n\
             main [server];build_cache [server];make_node [server] 4096\n\
             main [server];load_config [libconf.so] 1000\n"
        );
    }

    #[test]
    fn stacks_with_the_same_frames_are_merged() {
        let mut report = fixture::sample();
        let twin = report.consumers[1].clone();
        report.consumers.push(twin);
        let stacks = stacks(&report, Measure::LiveCount);
        let config = stacks
            .iter()
            .find(|(s, _)| s.contains("load_config"))
            .unwrap();
        assert_eq!(config.1, 2);
        assert_eq!(stacks.len(), 3);
    }
}
