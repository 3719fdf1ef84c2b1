//! Finding the allocator a process really uses, and where its functions are.
//!
//! The malloc family is looked up first in an allocator that interposes on
//! the C library (jemalloc, tcmalloc, mimalloc, or a main binary that
//! exports `malloc`), then in the C library. mmap, munmap and mremap always
//! come from the C library. Functions are found through the ELF dynamic
//! symbol table, and their addresses turned into file offsets, which is what
//! uprobes are placed at.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use iced_x86::Register;
use memtrace_common::Kind;
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

use crate::{probe_site, procfs::MapEntry};

/// Bytes of a function read to choose its probe site.
const PROLOGUE_BYTES: usize = 64;

/// One allocator function to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbePoint {
    pub kind: Kind,
    /// The object file that holds the function, as the target names it.
    pub path: String,
    /// The same file, as memtrace can open it.
    pub attach_path: PathBuf,
    /// File offset of the probe.
    pub offset: u64,
    /// Bytes past the function's first instruction (see [`probe_site`]).
    pub skipped: u64,
    /// Whether the kernel emulates the probed instruction.
    pub emulated: bool,
    /// Whether it would emulate the function's first instruction.
    pub entry_emulated: bool,
}

/// Where every traced function lives in one process.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub points: Vec<ProbePoint>,
    /// Functions that no probed object defines.
    pub missing: Vec<Kind>,
    /// Functions that are another's alias (same code, e.g. glibc's `memalign`
    /// and `aligned_alloc`), probed once, as the second of each pair.
    pub aliases: Vec<(Kind, Kind)>,
    /// The object the malloc family was found in.
    pub heap_object: String,
    /// The C library.
    pub libc: String,
}

impl Plan {
    /// Moves every probe back to its function's first instruction, as a
    /// plain uprobe on the symbol would sit (used to measure what the
    /// choice of site saves).
    pub fn place_at_entries(&mut self) {
        for point in &mut self.points {
            point.offset -= point.skipped;
            point.skipped = 0;
            point.emulated = point.entry_emulated;
        }
    }
}

/// Whether a file name is that of a C library (glibc or musl).
pub fn is_libc(path: &str) -> bool {
    let name = file_name(path);
    name.starts_with("libc.so") || name.starts_with("libc-2.") || name.starts_with("ld-musl-")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether a library is a malloc replacement that interposes on the C library.
fn is_interposing_allocator(path: &str) -> bool {
    let name = file_name(path);
    [
        "libjemalloc",
        "libtcmalloc",
        "libmimalloc",
        "libhoard",
        "libscudo",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Plans the probes for a process whose memory map is `maps`, reading its
/// objects through `open` (which maps a path as the process sees it to one
/// this process can read).
pub fn plan(
    maps: &[MapEntry],
    main_binary: Option<&str>,
    open: &dyn Fn(&str) -> PathBuf,
) -> anyhow::Result<Plan> {
    let mut objects: Vec<&str> = Vec::new();
    for entry in maps.iter().filter(|e| e.is_file()) {
        if !objects.contains(&entry.path.as_str()) {
            objects.push(&entry.path);
        }
    }
    let Some(libc) = objects.iter().copied().find(|p| is_libc(p)) else {
        bail!(
            "the target maps no C library: statically linked programs are not supported \
             (uprobes need the allocator's symbols in a shared library the process maps)"
        );
    };
    let libc_image = ElfImage::read(&open(libc))?;

    // The dynamic linker binds `malloc` to the first object in load order that
    // defines it: the main binary, then its libraries.
    let interposer = main_binary
        .into_iter()
        .chain(
            objects
                .iter()
                .copied()
                .filter(|p| is_interposing_allocator(p)),
        )
        .find_map(|candidate| {
            let image = ElfImage::read(&open(candidate)).ok()?;
            image
                .function("malloc")
                .is_some()
                .then_some((candidate, image))
        });
    let heap_object = match &interposer {
        Some((path, image)) => (*path, image),
        None => (libc, &libc_image),
    };

    let mut plan = Plan {
        heap_object: heap_object.0.to_owned(),
        libc: libc.to_owned(),
        ..Plan::default()
    };
    for kind in Kind::ALL {
        let (path, image) = if kind.is_mapping() {
            (libc, &libc_image)
        } else {
            heap_object
        };
        match image.probe_point(kind, path, open(path)) {
            Some(point) => {
                let same = plan
                    .points
                    .iter()
                    .find(|p| p.path == point.path && p.offset == point.offset);
                // Two probes at one address would see every call twice.
                match same {
                    Some(same) => plan.aliases.push((kind, same.kind)),
                    None => plan.points.push(point),
                }
            }
            None => plan.missing.push(kind),
        }
    }
    if plan.points.iter().all(|p| p.kind != Kind::Malloc) {
        bail!(
            "`{}` does not define `malloc`: cannot trace its allocator",
            heap_object.0
        );
    }
    Ok(plan)
}

/// The parts of an ELF file needed to place probes.
struct ElfImage {
    data: Vec<u8>,
}

impl ElfImage {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let data =
            fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?;
        object::File::parse(&*data)
            .with_context(|| format!("`{}` is not an ELF object", path.display()))?;
        Ok(Self { data })
    }

    fn file(&self) -> object::File<'_> {
        object::File::parse(&*self.data).expect("parsed when read")
    }

    /// The virtual address of a defined function symbol.
    fn function(&self, name: &str) -> Option<u64> {
        let file = self.file();
        let symbols = file.dynamic_symbols().chain(file.symbols());
        symbols
            .filter(|s| s.is_definition() && s.kind() == object::SymbolKind::Text)
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    }

    /// The file offset of a virtual address, through the loadable segment that holds it.
    fn file_offset(&self, address: u64) -> Option<u64> {
        self.file().segments().find_map(|segment| {
            let (offset, size) = segment.file_range();
            let start = segment.address();
            (start..start + size)
                .contains(&address)
                .then(|| address - start + offset)
        })
    }

    fn probe_point(&self, kind: Kind, path: &str, attach_path: PathBuf) -> Option<ProbePoint> {
        let offset = self.file_offset(self.function(kind.symbol())?)?;
        let start = usize::try_from(offset).ok()?;
        let code = self.data.get(start..)?;
        let code = &code[..code.len().min(PROLOGUE_BYTES)];
        let site = probe_site::choose(
            code,
            probe_site::Needs {
                arguments: arguments(kind),
                return_probe: true,
            },
        );
        Some(ProbePoint {
            kind,
            path: path.to_owned(),
            attach_path,
            offset: offset + site.offset,
            skipped: site.offset,
            emulated: site.emulated,
            entry_emulated: probe_site::entry_is_emulated(code),
        })
    }
}

/// The argument registers each entry probe reads.
fn arguments(kind: Kind) -> &'static [Register] {
    use Register::{R8, RCX, RDI, RDX, RSI};
    match kind {
        Kind::Malloc | Kind::Valloc | Kind::Pvalloc | Kind::Free => &[RDI],
        Kind::Calloc | Kind::Realloc | Kind::AlignedAlloc | Kind::Memalign | Kind::Munmap => {
            &[RDI, RSI]
        }
        Kind::Reallocarray | Kind::PosixMemalign => &[RDI, RSI, RDX],
        Kind::Mmap | Kind::Mremap => &[RDI, RSI, RDX, RCX, R8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_names_are_recognised() {
        assert!(is_libc("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(is_libc("/lib/ld-musl-x86_64.so.1"));
        assert!(!is_libc("/usr/lib/libcrypto.so.3"));
        assert!(!is_libc("/usr/lib/libcap.so.2"));
    }

    #[test]
    fn this_process_libc_defines_every_heap_function() {
        let maps = crate::procfs::read_maps(std::process::id()).expect("own maps");
        let plan = plan(&maps, None, &|p| p.into()).expect("plan for own process");
        assert!(is_libc(&plan.libc));
        for kind in [
            Kind::Malloc,
            Kind::Free,
            Kind::Calloc,
            Kind::Realloc,
            Kind::Mmap,
        ] {
            assert!(
                plan.points.iter().any(|p| p.kind == kind),
                "{kind:?} planned"
            );
        }
    }
}
