//! The history kept in `--data-dir`: snapshots, consumer samples and alerts, one file per day.
//!
//! Files are JSON lines named `snapshots-YYYY-MM-DD.jsonl`,
//! `consumers-YYYY-MM-DD.jsonl` and `alerts-YYYY-MM-DD.jsonl` (UTC dates).
//! They are only ever appended to, each record as one line in a single
//! write, flushed at once, so a memtrace killed at any moment leaves at most
//! one torn line at the end of a file. Readers skip such a line with a
//! warning, and a writer that reopens the file first ends it, so the next
//! record starts on a line of its own.
//!
//! Consumer samples are compact: one line per sampling time holding
//! `[id, live bytes, live count, old bytes]` per consumer, and a line naming
//! a consumer (`{"id", "m": module, "l": label}`) the first time it appears
//! in a day's file.
//!
//! [`Store::prune`] deletes the files of days that ended longer than the
//! retention ago, then the oldest days until the directory fits the size cap
//! (the current day is always kept).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    alerts::Alert,
    snapshot::{ConsumerSample, Snapshot},
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to create the data directory `{}`", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write to `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The kinds of records, each in its own files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Snapshots,
    Consumers,
    Alerts,
}

impl Stream {
    const ALL: [Stream; 3] = [Stream::Snapshots, Stream::Consumers, Stream::Alerts];

    fn prefix(self) -> &'static str {
        match self {
            Stream::Snapshots => "snapshots",
            Stream::Consumers => "consumers",
            Stream::Alerts => "alerts",
        }
    }
}

/// Consumer samples taken at one time, as loaded back.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerRecord {
    pub t_s: f64,
    pub unix_s: u64,
    pub samples: Vec<ConsumerSample>,
}

/// One line of a consumers file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum ConsumerLine {
    Name {
        id: u64,
        #[serde(rename = "m")]
        module: String,
        #[serde(rename = "l")]
        label: String,
    },
    Samples {
        t: f64,
        unix: u64,
        /// `[id, live bytes, live count, old bytes]` each.
        c: Vec<[u64; 4]>,
    },
}

/// A file open for appending, with the day it holds.
#[derive(Debug)]
struct OpenFile {
    date: String,
    file: File,
}

/// The data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    retention: Duration,
    max_bytes: Option<u64>,
    open: HashMap<Stream, OpenFile>,
    /// Consumers already named in today's consumers file.
    named: HashSet<u64>,
    bytes_written: u64,
}

impl Store {
    /// Opens (creating it if need be) the data directory `dir`.
    pub fn open(
        dir: &Path,
        retention: Duration,
        max_bytes: Option<u64>,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            retention,
            max_bytes,
            open: HashMap::new(),
            named: HashSet::new(),
            bytes_written: 0,
        })
    }

    /// Bytes appended since the store was opened.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.append_json(Stream::Snapshots, snapshot.unix_s, snapshot)
    }

    pub fn record_alert(&mut self, alert: &Alert) -> Result<(), StoreError> {
        self.append_json(Stream::Alerts, alert.unix_s, alert)
    }

    /// Records the consumers sampled at one time.
    pub fn record_consumers(
        &mut self,
        t_s: f64,
        unix_s: u64,
        samples: &[ConsumerSample],
    ) -> Result<(), StoreError> {
        let date = date_of(unix_s);
        if self
            .open
            .get(&Stream::Consumers)
            .is_none_or(|f| f.date != date)
        {
            self.named.clear();
        }
        for sample in samples {
            if self.named.insert(sample.id) {
                let name = ConsumerLine::Name {
                    id: sample.id,
                    module: sample.module.clone(),
                    label: sample.label.clone(),
                };
                self.append_json(Stream::Consumers, unix_s, &name)?;
            }
        }
        let line = ConsumerLine::Samples {
            t: round_ms(t_s),
            unix: unix_s,
            c: samples
                .iter()
                .map(|s| [s.id, s.live_bytes, s.live_count, s.old_bytes])
                .collect(),
        };
        self.append_json(Stream::Consumers, unix_s, &line)
    }

    /// Every snapshot stored, oldest first.
    pub fn load_snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        self.load(Stream::Snapshots)
    }

    /// Every alert stored, oldest first.
    pub fn load_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.load(Stream::Alerts)
    }

    /// Every set of consumer samples stored, oldest first.
    pub fn load_consumers(&self) -> Result<Vec<ConsumerRecord>, StoreError> {
        let mut names: HashMap<u64, (String, String)> = HashMap::new();
        let mut records = Vec::new();
        for line in self.load::<ConsumerLine>(Stream::Consumers)? {
            match line {
                ConsumerLine::Name { id, module, label } => {
                    names.insert(id, (module, label));
                }
                ConsumerLine::Samples { t, unix, c } => records.push(ConsumerRecord {
                    t_s: t,
                    unix_s: unix,
                    samples: c
                        .into_iter()
                        .map(|[id, live_bytes, live_count, old_bytes]| {
                            let (module, label) = names.get(&id).cloned().unwrap_or_default();
                            ConsumerSample {
                                id,
                                module,
                                label,
                                live_bytes,
                                live_count,
                                old_bytes,
                            }
                        })
                        .collect(),
                }),
            }
        }
        Ok(records)
    }

    /// Deletes what is past the retention, then the oldest days beyond the
    /// size cap; returns the files deleted.
    pub fn prune(&mut self, now_unix_s: u64) -> Result<Vec<PathBuf>, StoreError> {
        let days = self.days()?;
        let today = date_of(now_unix_s);
        let cutoff = date_of(now_unix_s.saturating_sub(self.retention.as_secs()));
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for (date, files) in days {
            if date < cutoff && date != today {
                removed.extend(files.into_iter().map(|(path, _)| path));
            } else {
                kept.push((date, files));
            }
        }
        if let Some(cap) = self.max_bytes {
            let mut total: u64 = kept.iter().flat_map(|(_, f)| f).map(|(_, size)| size).sum();
            for (date, files) in &kept {
                if total <= cap || *date == today {
                    break;
                }
                total -= files.iter().map(|(_, size)| size).sum::<u64>();
                removed.extend(files.iter().map(|(path, _)| path.clone()));
            }
        }
        for path in &removed {
            if let Err(err) = fs::remove_file(path) {
                log::warn!("failed to remove `{}`: {err}", path.display());
            }
        }
        self.open.retain(|_, f| f.date >= cutoff);
        Ok(removed)
    }

    /// Files of the store by date, oldest first, with their sizes.
    fn days(&self) -> Result<BTreeMap<String, Vec<(PathBuf, u64)>>, StoreError> {
        let read_error = |source| StoreError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut days: BTreeMap<String, Vec<(PathBuf, u64)>> = BTreeMap::new();
        for entry in fs::read_dir(&self.dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name();
            let Some(date) = name.to_str().and_then(date_in_name) else {
                continue;
            };
            let size = entry.metadata().map_or(0, |m| m.len());
            days.entry(date.to_owned())
                .or_default()
                .push((entry.path(), size));
        }
        Ok(days)
    }

    fn load<T: DeserializeOwned>(&self, stream: Stream) -> Result<Vec<T>, StoreError> {
        let mut items = Vec::new();
        for (_, files) in self.days()? {
            for (path, _) in files {
                if file_stream(&path) == Some(stream) {
                    items.extend(read_lines(&path)?);
                }
            }
        }
        Ok(items)
    }

    fn append_json(
        &mut self,
        stream: Stream,
        unix_s: u64,
        record: &impl Serialize,
    ) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record).map_err(|err| StoreError::Write {
            path: self.dir.clone(),
            source: io::Error::other(err),
        })?;
        line.push(b'\n');
        self.append(stream, unix_s, &line)
    }

    /// Appends one whole line, with one write, to the file of `stream` for the day of `unix_s`.
    fn append(&mut self, stream: Stream, unix_s: u64, line: &[u8]) -> Result<(), StoreError> {
        let date = date_of(unix_s);
        let path = self.dir.join(format!("{}-{date}.jsonl", stream.prefix()));
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        if self.open.get(&stream).is_none_or(|f| f.date != date) {
            let file = open_for_append(&path).map_err(write_error)?;
            self.open.insert(stream, OpenFile { date, file });
        }
        let Some(open) = self.open.get_mut(&stream) else {
            unreachable!("opened just above");
        };
        open.file
            .write_all(line)
            .and_then(|()| open.file.flush())
            .map_err(write_error)?;
        self.bytes_written += line.len() as u64;
        Ok(())
    }
}

/// Opens `path` for appending; ends a torn last line first, so the next
/// record starts on a line of its own.
fn open_for_append(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    if file.metadata()?.len() > 0 {
        let mut last = [0; 1];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// The records of a JSON-lines file; lines that do not parse (a torn last
/// line after a crash) are skipped with a warning.
fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, StoreError> {
    let text = fs::read_to_string(path).map_err(|source| StoreError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut items = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(item) => items.push(item),
            Err(err) => log::warn!(
                "skipping line {} of `{}`, which is torn or corrupt: {err}",
                number + 1,
                path.display()
            ),
        }
    }
    Ok(items)
}

/// The stream a file of the store belongs to.
fn file_stream(path: &Path) -> Option<Stream> {
    let name = path.file_name()?.to_str()?;
    Stream::ALL
        .into_iter()
        .find(|s| name.starts_with(s.prefix()) && name[s.prefix().len()..].starts_with('-'))
}

/// The `YYYY-MM-DD` in a store file's name.
fn date_in_name(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".jsonl")?;
    let (prefix, date) = stem.split_once('-')?;
    let valid = Stream::ALL.iter().any(|s| s.prefix() == prefix)
        && date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    valid.then_some(date)
}

/// The UTC date of a Unix time, as `YYYY-MM-DD`.
#[must_use]
pub fn date_of(unix_s: u64) -> String {
    let (year, month, day) = civil_from_days((unix_s / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` days after 1970-01-01.
///
/// Counts in 400-year eras of 146 097 days, with years starting on March 1
/// so that the leap day falls at the end of a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// Seconds rounded to milliseconds, so stored times stay short.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{procfs::MemoryStatus, snapshot::ProcessStats};

    const DAY: u64 = 86_400;
    /// 2026-12-03 00:00:00 UTC.
    const DEC_3: u64 = 1_796_256_000;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("memtrace-store-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn snapshot(t_s: f64, unix_s: u64) -> Snapshot {
        let status = MemoryStatus {
            rss: 180 << 20,
            rss_anon: 150 << 20,
            rss_file: 30 << 20,
            rss_shmem: 0,
            threads: 12,
        };
        let process = ProcessStats {
            fds: Some(42),
            cpu_s: Some(t_s / 10.0),
            uptime_s: Some(t_s + 100.0),
        };
        Snapshot::new(t_s, unix_s, status, 120 << 20, 8 << 20, process)
    }

    fn consumers(n: u64, t: u64) -> Vec<ConsumerSample> {
        (0..n)
            .map(|id| ConsumerSample {
                id: 1000 + id,
                module: format!("/usr/lib/x86_64-linux-gnu/libservice{id}.so"),
                label: format!("service::cache::Table::insert_{id}"),
                live_bytes: (id + 1) * 3_000_000 + t * 1000,
                live_count: (id + 1) * 1500 + t,
                old_bytes: id * 2_000_000,
            })
            .collect()
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(DEC_3), "2026-12-03");
        assert_eq!(date_of(DEC_3 - 1), "2026-12-02");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(4_107_542_400), "2100-03-01");
    }

    #[test]
    fn reopened_store_continues_the_history() {
        let dir = TempDir::new("reopen");
        let mut store = Store::open(&dir.0, Duration::from_secs(7 * DAY), None).expect("opens");
        store
            .record_snapshot(&snapshot(0.0, DEC_3 + 10))
            .expect("writes");
        store
            .record_consumers(0.0, DEC_3 + 10, &consumers(3, 0))
            .expect("writes");
        drop(store);

        let mut store = Store::open(&dir.0, Duration::from_secs(7 * DAY), None).expect("reopens");
        store
            .record_snapshot(&snapshot(0.0, DEC_3 + DAY + 5))
            .expect("writes");
        store
            .record_consumers(0.0, DEC_3 + DAY + 5, &consumers(3, 1))
            .expect("writes");
        let snapshots = store.load_snapshots().expect("loads");
        assert_eq!(
            snapshots,
            [snapshot(0.0, DEC_3 + 10), snapshot(0.0, DEC_3 + DAY + 5)]
        );
        let records = store.load_consumers().expect("loads");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].samples, consumers(3, 1));
    }

    #[test]
    fn torn_last_line_is_skipped_and_the_next_record_starts_clean() {
        let dir = TempDir::new("torn");
        let mut store = Store::open(&dir.0, Duration::from_secs(DAY), None).expect("opens");
        store
            .record_snapshot(&snapshot(1.0, DEC_3))
            .expect("writes");
        drop(store);
        // What a kill in the middle of a write leaves.
        let path = dir.0.join("snapshots-2026-12-03.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).expect("opens");
        file.write_all(br#"{"t":2.0,"unix":1796256002,"rss":18"#)
            .expect("writes");
        drop(file);

        let mut store = Store::open(&dir.0, Duration::from_secs(DAY), None).expect("reopens");
        assert_eq!(
            store.load_snapshots().expect("loads"),
            [snapshot(1.0, DEC_3)]
        );
        store
            .record_snapshot(&snapshot(3.0, DEC_3 + 3))
            .expect("writes");
        assert_eq!(
            store.load_snapshots().expect("loads"),
            [snapshot(1.0, DEC_3), snapshot(3.0, DEC_3 + 3)]
        );
    }

    #[test]
    fn days_past_the_retention_are_removed() {
        let dir = TempDir::new("age");
        let mut store = Store::open(&dir.0, Duration::from_secs(2 * DAY), None).expect("opens");
        for day in 0..5 {
            store
                .record_snapshot(&snapshot(0.0, DEC_3 + day * DAY))
                .expect("writes");
        }
        let removed = store.prune(DEC_3 + 4 * DAY + 60).expect("prunes");
        assert_eq!(removed.len(), 2);
        let left: Vec<u64> = store
            .load_snapshots()
            .expect("loads")
            .iter()
            .map(|s| s.unix_s)
            .collect();
        assert_eq!(left, [DEC_3 + 2 * DAY, DEC_3 + 3 * DAY, DEC_3 + 4 * DAY]);
    }

    #[test]
    fn oldest_days_go_first_when_over_the_size_cap() {
        let dir = TempDir::new("size");
        let line = serde_json::to_vec(&snapshot(0.0, DEC_3))
            .expect("serializes")
            .len() as u64
            + 1;
        let mut store =
            Store::open(&dir.0, Duration::from_secs(30 * DAY), Some(10 * line)).expect("opens");
        for day in 0..4 {
            for i in 0..4 {
                store
                    .record_snapshot(&snapshot(0.0, DEC_3 + day * DAY + i))
                    .expect("writes");
            }
        }
        let removed = store.prune(DEC_3 + 3 * DAY + 100).expect("prunes");
        assert_eq!(removed.len(), 2);
        let left = store.load_snapshots().expect("loads");
        assert_eq!(left.len(), 8);
        assert_eq!(left[0].unix_s, DEC_3 + 2 * DAY);
    }

    #[test]
    fn a_day_at_default_intervals_stays_under_five_megabytes() {
        let dir = TempDir::new("volume");
        let mut store = Store::open(&dir.0, Duration::from_secs(7 * DAY), None).expect("opens");
        // A snapshot every 30 s with 20 consumers, and a few alerts.
        for i in 0..(DAY / 30) {
            let t = (i * 30) as f64 + 0.123;
            store
                .record_snapshot(&snapshot(t, DEC_3 + i * 30))
                .expect("writes");
            store
                .record_consumers(t, DEC_3 + i * 30, &consumers(20, i))
                .expect("writes");
        }
        let bytes = store.bytes_written();
        eprintln!("bytes written in a day: {bytes}");
        assert!(bytes < 5_000_000, "{bytes} bytes a day");
        let on_disk: u64 = fs::read_dir(&dir.0)
            .expect("lists")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum();
        assert_eq!(on_disk, bytes);
    }

    #[test]
    fn files_not_of_the_store_are_left_alone() {
        assert_eq!(
            date_in_name("snapshots-2026-12-03.jsonl"),
            Some("2026-12-03")
        );
        assert_eq!(date_in_name("notes-2026-12-03.jsonl"), None);
        assert_eq!(date_in_name("alerts-2026-1-03.jsonl"), None);
        assert_eq!(
            file_stream(Path::new("/x/consumers-2026-12-03.jsonl")),
            Some(Stream::Consumers)
        );
    }
}
