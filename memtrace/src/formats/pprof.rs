//! pprof profiles: the protobuf `Profile` message, gzip-compressed, as
//! `go tool pprof`, Pyroscope and Parca read it.
//!
//! Each consumer is one sample carrying all four measures; each module is a
//! mapping, each distinct return address a location, each distinct function
//! (by name, file and module) a function. The messages below are written out
//! by hand from the format's field numbers, so no protobuf compiler is needed.

use std::io::{self, Write};

use flate2::{Compression, write::GzEncoder};
use prost::Message as _;
use rustc_hash::FxHashMap;

use super::{Measure, is_unmapped, module_name};
use crate::{report::Report, symbolize::Frame};

/// The whole profile.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string the profile refers to by index; the first is empty.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// String index of the sample type viewers show first.
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// A kind of value and its unit, as string indexes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One stack and its values, one per sample type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Innermost first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A key with a string or a number.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// An object file mapped into the process.
#[expect(clippy::struct_excessive_bools, reason = "the format's own fields")]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// A code address and what it was symbolized to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// A source line inside a function.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// A function, by string indexes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// The sample type and unit names of a measure, as pprof's heap profiles name them.
#[must_use]
pub fn sample_type_names(measure: Measure) -> (&'static str, &'static str) {
    match measure {
        Measure::LiveBytes => ("inuse_space", "bytes"),
        Measure::LiveCount => ("inuse_objects", "count"),
        Measure::AllocBytes => ("alloc_space", "bytes"),
        Measure::AllocCount => ("alloc_objects", "count"),
    }
}

/// Writes `report` as a gzip-compressed pprof profile that opens on `measure`.
pub fn write(report: &Report, measure: Measure, out: &mut dyn Write) -> io::Result<()> {
    let encoded = build(report, measure).encode_to_vec();
    let mut gzip = GzEncoder::new(out, Compression::default());
    gzip.write_all(&encoded)?;
    gzip.finish()?;
    Ok(())
}

/// The profile of `report`, before encoding.
#[must_use]
pub fn build(report: &Report, measure: Measure) -> Profile {
    let mut builder = Builder::default();
    builder.strings.intern("");

    let sample_type = Measure::ALL
        .iter()
        .map(|&m| {
            let (kind, unit) = sample_type_names(m);
            builder.value_type(kind, unit)
        })
        .collect();
    let kind_key = builder.strings.intern("kind");
    let module_key = builder.strings.intern("module");

    let mut sample = Vec::new();
    for consumer in &report.consumers {
        let values: Vec<i64> = Measure::ALL
            .iter()
            .map(|m| to_i64(m.of(consumer)))
            .collect();
        if values.iter().all(|&v| v == 0) {
            continue;
        }
        let location_id = consumer
            .frames
            .iter()
            .map(|f| builder.location(f))
            .collect();
        let label = vec![
            Label {
                key: kind_key,
                str: builder.strings.intern(&consumer.kind),
                ..Label::default()
            },
            Label {
                key: module_key,
                str: builder.strings.intern(&consumer.module),
                ..Label::default()
            },
        ];
        sample.push(Sample {
            location_id,
            value: values,
            label,
        });
    }

    let comment = vec![builder.strings.intern(&format!(
        "memtrace: pid {} `{}`",
        report.target.pid, report.target.command
    ))];
    let period_type = Some(builder.value_type("space", "bytes"));
    let default_sample_type = builder.strings.intern(sample_type_names(measure).0);
    let Builder {
        strings,
        mappings,
        locations,
        functions,
        ..
    } = builder;
    Profile {
        sample_type,
        sample,
        mapping: by_id(mappings.into_values(), |m| m.id),
        location: by_id(locations.into_values(), |l| l.id),
        function: by_id(functions.into_values(), |f| f.id),
        string_table: strings.table,
        time_nanos: 0,
        duration_nanos: (report.duration_s * 1e9) as i64,
        period_type,
        period: 1,
        comment,
        default_sample_type,
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Messages collected in a map, put back in id order.
fn by_id<T>(items: impl Iterator<Item = T>, id: fn(&T) -> u64) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_unstable_by_key(id);
    items
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: FxHashMap<String, i64>,
}

impl Strings {
    fn intern(&mut self, text: &str) -> i64 {
        if let Some(&index) = self.index.get(text) {
            return index;
        }
        let index = self.table.len() as i64;
        self.table.push(text.to_owned());
        self.index.insert(text.to_owned(), index);
        index
    }
}

/// Interns strings, mappings, locations and functions, numbering each from 1.
#[derive(Default)]
struct Builder {
    strings: Strings,
    /// By module: the mapping, with its address range grown to every frame seen in it.
    mappings: FxHashMap<String, Mapping>,
    locations: FxHashMap<u64, Location>,
    functions: FxHashMap<(String, String, String), Function>,
}

impl Builder {
    fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.strings.intern(kind),
            unit: self.strings.intern(unit),
        }
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let mapping_id = self.mapping(frame);
        if let Some(location) = self.locations.get(&frame.address) {
            return location.id;
        }
        let function_id = self.function(frame);
        let id = self.locations.len() as u64 + 1;
        self.locations.insert(
            frame.address,
            Location {
                id,
                mapping_id,
                address: frame.address,
                line: vec![Line {
                    function_id,
                    line: frame.line.map_or(0, i64::from),
                }],
                is_folded: false,
            },
        );
        id
    }

    /// A mapping per module. The report keeps no load addresses, so a
    /// mapping's range is the span of the addresses its frames hold; its
    /// file offset follows from any frame's address and file offset.
    fn mapping(&mut self, frame: &Frame) -> u64 {
        let next_id = self.mappings.len() as u64 + 1;
        let filename = self.strings.intern(&frame.module);
        let mapping = self
            .mappings
            .entry(frame.module.clone())
            .or_insert_with(|| Mapping {
                id: next_id,
                memory_start: frame.address,
                memory_limit: frame.address.saturating_add(1),
                filename,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                ..Mapping::default()
            });
        mapping.memory_start = mapping.memory_start.min(frame.address);
        mapping.memory_limit = mapping.memory_limit.max(frame.address.saturating_add(1));
        // Address minus file offset is the same for every frame of one file.
        if let Some(offset) = frame.offset {
            let bias = frame.address.wrapping_sub(offset);
            mapping.file_offset = mapping.memory_start.wrapping_sub(bias);
        }
        mapping.id
    }

    fn function(&mut self, frame: &Frame) -> u64 {
        let name = match &frame.function {
            Some(function) => function.clone(),
            None if is_unmapped(frame) => format!("{:#x} {}", frame.address, frame.module),
            None => format!("{:#x} [{}]", frame.address, module_name(&frame.module)),
        };
        let file = frame.file.clone().unwrap_or_default();
        let key = (name, file, frame.module.clone());
        if let Some(function) = self.functions.get(&key) {
            return function.id;
        }
        let id = self.functions.len() as u64 + 1;
        let name = self.strings.intern(&key.0);
        let filename = self.strings.intern(&key.1);
        self.functions.insert(
            key,
            Function {
                id,
                name,
                system_name: name,
                filename,
                start_line: 0,
            },
        );
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::fixture;

    fn string(profile: &Profile, index: i64) -> &str {
        &profile.string_table[usize::try_from(index).unwrap()]
    }

    #[test]
    fn the_profile_round_trips_through_prost_with_every_measure() {
        let mut report = fixture::sample();
        report.consumers[3].alloc_count = 0;
        report.consumers[3].alloc_bytes = 0;
        let mut gz = Vec::new();
        write(&report, Measure::AllocBytes, &mut gz).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        let profile = Profile::decode(&raw[..]).unwrap();

        assert_eq!(profile.string_table[0], "");
        let types: Vec<_> = profile
            .sample_type
            .iter()
            .map(|t| string(&profile, t.r#type))
            .collect();
        assert_eq!(
            types,
            [
                "inuse_space",
                "inuse_objects",
                "alloc_space",
                "alloc_objects"
            ]
        );
        assert_eq!(string(&profile, profile.default_sample_type), "alloc_space");
        assert_eq!(
            profile.sample.len(),
            3,
            "the consumer with nothing is left out"
        );
        let first = &report.consumers[0];
        assert_eq!(
            profile.sample[0].value,
            [
                first.live_bytes,
                first.live_count,
                first.alloc_bytes,
                first.alloc_count
            ]
            .map(to_i64)
        );
    }

    #[test]
    fn shared_addresses_and_modules_are_stored_once() {
        let profile = build(&fixture::sample(), Measure::LiveBytes);
        // 0x1010, 0x1020, 0x1030 (shared), 0x2010, jit, 0x1040, 0x1050.
        assert_eq!(profile.location.len(), 7);
        assert_eq!(profile.mapping.len(), 3);
        let server = profile
            .mapping
            .iter()
            .find(|m| string(&profile, m.filename) == "/usr/bin/server")
            .unwrap();
        assert_eq!((server.memory_start, server.memory_limit), (0x1010, 0x1051));
        for (i, location) in profile.location.iter().enumerate() {
            assert_eq!(location.id, i as u64 + 1, "ids are dense and in order");
        }
    }
}
