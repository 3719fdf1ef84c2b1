//! `--events FILE|-`: snapshots, patterns and alerts streamed as JSON lines as they happen.
//!
//! Every line is one JSON object with a `type` field: `snapshot` (the
//! snapshot's own fields beside it), `pattern` (a verdict, and the consumer
//! it is about unless it is about the whole process) or `alert` (the alert
//! under `alert`, whose own `type` says threshold or pattern). Each line is
//! flushed as it is written, so a reader following the file sees events
//! when they happen. A stream that fails (a closed pipe, a full disk) is
//! reported once and then left alone.

use std::{
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
};

use serde::Serialize;

use crate::{
    alerts::{Alert, ConsumerRef},
    classify::Verdict,
    snapshot::Snapshot,
};

/// One event of the stream.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event<'a> {
    Snapshot(&'a Snapshot),
    Pattern {
        t_s: f64,
        unix_s: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        consumer: Option<&'a ConsumerRef>,
        #[serde(flatten)]
        verdict: &'a Verdict,
    },
    Alert {
        alert: &'a Alert,
    },
}

/// Where events go.
pub struct EventStream {
    out: Box<dyn Write + Send>,
    broken: bool,
    written: u64,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("broken", &self.broken)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// Streams to `path`, appending, or to stdout when `path` is `-`.
    pub fn open(path: &Path) -> io::Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::to_writer(Box::new(io::stdout())));
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::to_writer(Box::new(file)))
    }

    /// Streams to any writer.
    #[must_use]
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            broken: false,
            written: 0,
        }
    }

    /// Events written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes one event as one line, and flushes it.
    pub fn emit(&mut self, event: &Event<'_>) {
        if self.broken {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        match self.out.write_all(&line).and_then(|()| self.out.flush()) {
            Ok(()) => self.written += 1,
            Err(err) => {
                self.broken = true;
                log::warn!("stopped streaming events: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{
        alerts::{AlertKind, AlertState},
        classify::{Pattern, Severity},
        procfs::MemoryStatus,
        snapshot::ProcessStats,
    };

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A writer whose reader went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_a_json_object_with_a_type() {
        let shared = Shared::default();
        let mut stream = EventStream::to_writer(Box::new(shared.clone()));
        let snapshot = Snapshot::new(
            1.0,
            2,
            MemoryStatus::default(),
            0,
            0,
            ProcessStats::default(),
        );
        let verdict = Verdict {
            pattern: Pattern::Leak,
            confidence: 88,
            severity: Severity::Medium,
            rate_bytes_per_min: 1.0,
            window_s: 60.0,
            current_bytes: 5,
            time_to_limit_s: None,
        };
        let consumer = ConsumerRef {
            id: 3,
            module: "libx.so".into(),
            label: "f".into(),
            frames: Vec::new(),
        };
        let alert = Alert {
            id: 1,
            t_s: 1.0,
            unix_s: 2,
            kind: AlertKind::Pattern,
            state: AlertState::Firing,
            key: "pattern:3".into(),
            severity: Severity::Medium,
            consumer: None,
            message: "m".into(),
            recommendations: Vec::new(),
        };
        stream.emit(&Event::Snapshot(&snapshot));
        stream.emit(&Event::Pattern {
            t_s: 1.0,
            unix_s: 2,
            consumer: Some(&consumer),
            verdict: &verdict,
        });
        stream.emit(&Event::Alert { alert: &alert });

        let text =
            String::from_utf8(shared.0.lock().expect("not poisoned").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        let types: Vec<&str> = lines
            .iter()
            .map(|l| l["type"].as_str().expect("a type"))
            .collect();
        assert_eq!(types, ["snapshot", "pattern", "alert"]);
        assert_eq!(lines[1]["pattern"], "leak");
        assert_eq!(lines[1]["consumer"]["module"], "libx.so");
        assert_eq!(lines[2]["alert"]["type"], "pattern");
    }

    #[test]
    fn closed_stream_stops_quietly() {
        let mut stream = EventStream::to_writer(Box::new(Closed));
        let snapshot = Snapshot::default();
        stream.emit(&Event::Snapshot(&snapshot));
        stream.emit(&Event::Snapshot(&snapshot));
        assert_eq!(stream.written(), 0);
        assert!(stream.broken);
    }
}
