//! speedscope profiles: its JSON file format, with frames shared by one
//! sampled profile per measure, opening on the chosen one.

use std::io::{self, Write};

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::{Measure, frame_name, title, weighed};
use crate::report::Report;

/// Where speedscope's file format is described; viewers check this value.
pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

/// A speedscope file.
#[derive(Debug, Serialize)]
pub struct File {
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub shared: Shared,
    pub profiles: Vec<Profile>,
    pub name: String,
    #[serde(rename = "activeProfileIndex")]
    pub active_profile_index: usize,
    pub exporter: String,
}

/// What every profile refers to by index.
#[derive(Debug, Serialize)]
pub struct Shared {
    pub frames: Vec<Frame>,
}

/// A frame: its name, and its source file where known. Calls from one
/// function at different lines are one frame, so that speedscope's views
/// merge them.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Serialize)]
pub struct Frame {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A sampled profile: stacks of frame indexes, root first, and their weights.
#[derive(Debug, Serialize)]
pub struct Profile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    /// `bytes` or `none`.
    pub unit: &'static str,
    #[serde(rename = "startValue")]
    pub start_value: u64,
    #[serde(rename = "endValue")]
    pub end_value: u64,
    pub samples: Vec<Vec<usize>>,
    pub weights: Vec<u64>,
}

/// Writes `report` as a speedscope file that opens on `measure`.
pub fn write(report: &Report, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &build(report, measure))?;
    writeln!(out)
}

/// The speedscope file of `report`.
#[must_use]
pub fn build(report: &Report, measure: Measure) -> File {
    let mut frames = Vec::new();
    let mut index: FxHashMap<Frame, usize> = FxHashMap::default();
    let profiles = Measure::ALL
        .iter()
        .map(|&m| {
            let mut samples = Vec::new();
            let mut weights = Vec::new();
            for (consumer, value) in weighed(report, m) {
                let stack = consumer
                    .frames
                    .iter()
                    .rev()
                    .map(|f| {
                        let frame = Frame {
                            name: frame_name(f),
                            file: f.file.clone(),
                        };
                        *index.entry(frame).or_insert_with_key(|frame| {
                            frames.push(frame.clone());
                            frames.len() - 1
                        })
                    })
                    .collect();
                samples.push(stack);
                weights.push(value);
            }
            Profile {
                kind: "sampled",
                name: m.label().to_owned(),
                unit: if m.is_bytes() { "bytes" } else { "none" },
                start_value: 0,
                end_value: weights.iter().sum(),
                samples,
                weights,
            }
        })
        .collect();
    File {
        schema: SCHEMA,
        shared: Shared { frames },
        profiles,
        name: title(report, measure),
        active_profile_index: Measure::ALL.iter().position(|&m| m == measure).unwrap_or(0),
        exporter: format!("memtrace {}", env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    #[test]
    fn each_measure_is_a_profile_over_shared_frames() {
        let file = build(&fixture::sample(), Measure::LiveCount);
        assert_eq!(file.profiles.len(), 4);
        assert_eq!(file.active_profile_index, 1);
        let live = &file.profiles[0];
        assert_eq!(live.end_value, 4096 + 1000 + 300);
        assert_eq!(live.samples.len(), 3);
        let main = file
            .shared
            .frames
            .iter()
            .filter(|f| f.name == "main [server]")
            .count();
        assert_eq!(main, 1, "main at three lines is one frame");
        assert_eq!(
            file.shared.frames[live.samples[0][0]].name, "main [server]",
            "root first"
        );
    }
}
