//! Turning code addresses into functions, files and lines, with blazesym.
//!
//! Addresses are first placed in the target's [`MemoryMap`], then symbolized
//! by file offset in the object on disk, so a report can be written after the
//! process is gone. Results are cached per object and offset.

use std::path::Path;

use blazesym::symbolize::{Input, Symbolized, Symbolizer as Blazesym, source::Elf, source::Source};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::memory_map::{Location, MemoryMap};

/// Module name of code generated at run time.
pub const JIT_MODULE: &str = "[jit]";
/// Module name of an address no mapping holds.
pub const UNKNOWN_MODULE: &str = "[unknown]";

/// One symbolized stack frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The return address, as the process saw it.
    pub address: u64,
    pub function: Option<String>,
    /// The object's path, [`JIT_MODULE`] or [`UNKNOWN_MODULE`].
    pub module: String,
    /// The return address's offset in the object's file, for frames in a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Clone, Debug, Default)]
struct Symbol {
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

/// A caching symbolizer.
#[derive(Debug, Default)]
pub struct Symbolizer {
    blazesym: Blazesym,
    cache: FxHashMap<(String, u64), Symbol>,
}

impl Symbolizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Symbolizes return addresses (each looked up one byte back, inside the
    /// call instruction, so the line is the call's).
    pub fn frames(&mut self, map: &MemoryMap, addresses: &[u64]) -> Vec<Frame> {
        let locations: Vec<_> = addresses
            .iter()
            .map(|&a| map.locate(a.saturating_sub(1)))
            .collect();
        self.fill_cache(&locations);

        addresses
            .iter()
            .zip(locations)
            .map(|(&address, location)| match location {
                Location::File { path, offset } => {
                    let symbol = self
                        .cache
                        .get(&(path.clone(), offset))
                        .cloned()
                        .unwrap_or_default();
                    Frame {
                        address,
                        function: symbol.function,
                        module: path,
                        offset: Some(offset + 1),
                        file: symbol.file,
                        line: symbol.line,
                    }
                }
                Location::Jit => unknown_frame(address, JIT_MODULE),
                Location::Unknown => unknown_frame(address, UNKNOWN_MODULE),
            })
            .collect()
    }

    fn fill_cache(&mut self, locations: &[Location]) {
        let mut missing: FxHashMap<&str, Vec<u64>> = FxHashMap::default();
        for location in locations {
            if let Location::File { path, offset } = location
                && !self.cache.contains_key(&(path.clone(), *offset))
            {
                missing.entry(path).or_default().push(*offset);
            }
        }
        for (path, mut offsets) in missing {
            offsets.sort_unstable();
            offsets.dedup();
            let source = Source::Elf(Elf::new(Path::new(path)));
            let symbols = match self
                .blazesym
                .symbolize(&source, Input::FileOffset(&offsets))
            {
                Ok(symbols) => symbols,
                Err(err) => {
                    log::debug!("cannot symbolize `{path}`: {err}");
                    Vec::new()
                }
            };
            for (i, offset) in offsets.iter().enumerate() {
                let symbol = match symbols.get(i) {
                    Some(Symbolized::Sym(sym)) => Symbol {
                        function: Some(sym.name.to_string()),
                        file: sym
                            .code_info
                            .as_ref()
                            .map(|info| info.to_path().display().to_string()),
                        line: sym.code_info.as_ref().and_then(|info| info.line),
                    },
                    _ => Symbol::default(),
                };
                self.cache.insert((path.to_owned(), *offset), symbol);
            }
        }
    }
}

fn unknown_frame(address: u64, module: &str) -> Frame {
    Frame {
        address,
        function: None,
        module: module.to_owned(),
        offset: None,
        file: None,
        line: None,
    }
}
