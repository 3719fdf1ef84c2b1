//! The target's memory map over time: which object each code address belongs to.
//!
//! Addresses in stacks are only meaningful against the map of the moment
//! they were taken, and the process may have exited (or unloaded a library)
//! by the time a report is written. So every map ever read is kept: the
//! current one first, then entries that have since gone, newest first.

use crate::procfs::{self, MapEntry};

/// Where a code address lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Inside a file: the object's path, and the address's offset in it.
    File { path: String, offset: u64 },
    /// Executable anonymous memory: code generated at run time.
    Jit,
    /// No executable mapping holds it.
    Unknown,
}

/// Every mapping the target has been seen with.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    /// The latest read, sorted by start address.
    current: Vec<MapEntry>,
    /// Executable entries that disappeared from a later read, newest last.
    retired: Vec<MapEntry>,
}

impl MemoryMap {
    /// Replaces the current map, keeping executable entries that went away.
    pub fn update(&mut self, mut entries: Vec<MapEntry>) {
        entries.sort_by_key(|e| e.start);
        for old in self.current.drain(..) {
            if old.executable && !entries.contains(&old) {
                self.retired.push(old);
            }
        }
        self.current = entries;
    }

    /// Reads the target's map now. Returns false when it could not be read
    /// (the process has exited), leaving what is known in place.
    pub fn refresh(&mut self, pid: u32) -> bool {
        match procfs::read_maps(pid) {
            Ok(entries) if !entries.is_empty() => {
                self.update(entries);
                true
            }
            _ => false,
        }
    }

    /// The executable mapping that holds `address`, if any.
    pub fn executable_entry(&self, address: u64) -> Option<&MapEntry> {
        let index = self.current.partition_point(|e| e.start <= address);
        let current = index
            .checked_sub(1)
            .map(|i| &self.current[i])
            .filter(|e| address < e.end && e.executable);
        current.or_else(|| {
            self.retired
                .iter()
                .rev()
                .find(|e| (e.start..e.end).contains(&address))
        })
    }

    /// Whether any executable mapping holds `address`.
    pub fn is_code(&self, address: u64) -> bool {
        self.executable_entry(address).is_some()
    }

    /// Where `address` lies.
    pub fn locate(&self, address: u64) -> Location {
        match self.executable_entry(address) {
            Some(entry) if entry.is_file() => Location::File {
                path: entry.path.trim_end_matches(" (deleted)").to_owned(),
                offset: entry.file_offset(address),
            },
            Some(_) => Location::Jit,
            None => Location::Unknown,
        }
    }

    /// The path of the main executable: the file mapped at the lowest address
    /// that is not a shared library.
    pub fn main_binary(&self) -> Option<&str> {
        self.current
            .iter()
            .find(|e| e.is_file() && !e.path.contains(".so"))
            .map(|e| e.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: u64, end: u64, executable: bool, path: &str) -> MapEntry {
        MapEntry {
            start,
            end,
            executable,
            offset: 0x1000,
            path: path.to_owned(),
        }
    }

    #[test]
    fn addresses_resolve_to_file_offsets() {
        let mut map = MemoryMap::default();
        map.update(vec![
            entry(0x5000, 0x6000, true, "/usr/lib/libfoo.so"),
            entry(0x1000, 0x2000, true, "/usr/bin/app"),
            entry(0x7000, 0x8000, true, ""),
            entry(0x9000, 0xa000, false, "/usr/lib/libfoo.so"),
        ]);
        assert_eq!(
            map.locate(0x5010),
            Location::File {
                path: "/usr/lib/libfoo.so".into(),
                offset: 0x1010
            }
        );
        assert_eq!(map.locate(0x7010), Location::Jit);
        assert_eq!(map.locate(0x9010), Location::Unknown);
        assert_eq!(map.locate(0x6000), Location::Unknown);
        assert_eq!(map.main_binary(), Some("/usr/bin/app"));
    }

    #[test]
    fn unloaded_libraries_still_resolve() {
        let mut map = MemoryMap::default();
        map.update(vec![entry(0x5000, 0x6000, true, "/usr/lib/plugin.so")]);
        map.update(vec![entry(0x1000, 0x2000, true, "/usr/bin/app")]);
        assert!(
            matches!(map.locate(0x5010), Location::File { ref path, .. } if path == "/usr/lib/plugin.so")
        );
        assert!(map.is_code(0x1010));
    }
}
