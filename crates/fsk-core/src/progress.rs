//! Progress of long operations: each operation names its phases (`plan`, `scan keys`,
//! `rewrite`, `commit`, ...) with the total it will count when the plan knows it (bytes to
//! rewrite, rows to write), and advances as the work is done. A [`Progress`] handle in an
//! operation's options carries a [`ProgressSink`]: the CLI's is an indicatif bar; tests record
//! the events. Without a sink (the default) reporting costs nothing.
//!
//! Advances are counted exactly: within a phase with a total, the advances add up to the total
//! when the phase completes (a rewrite advances each file's bytes in proportion to the rows
//! read from it, the remainder with its last batch).

use std::fmt;
use std::sync::Arc;

/// What a phase counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Bytes of data files (compressed, as stored).
    Bytes,
    /// Rows.
    Rows,
    /// Files.
    Files,
}

impl Unit {
    /// The unit's name: `bytes`, `rows` or `files`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Rows => "rows",
            Unit::Files => "files",
        }
    }
}

/// Receives an operation's progress. Called from the operation's tasks, possibly on several
/// threads at once; calls should be cheap (an indicatif bar's are).
pub trait ProgressSink: Send + Sync {
    /// A new phase begins; `total` is what it will count, when known. Ends the phase before.
    fn phase(&self, name: &'static str, total: Option<u64>, unit: Unit);
    /// `amount` more units of the current phase are done.
    fn advance(&self, amount: u64);
    /// The operation is over (successfully or not).
    fn finish(&self) {}
}

/// A handle on an operation's progress sink (none by default). Cloning shares the sink.
///
/// Progress does not change what an operation does, so every `Progress` compares equal:
/// options that carry one still compare by their settings.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn ProgressSink>>);

impl Progress {
    /// Progress reported to `sink`.
    pub fn new(sink: Arc<dyn ProgressSink>) -> Self {
        Progress(Some(sink))
    }

    /// No progress reporting.
    pub fn none() -> Self {
        Progress(None)
    }

    /// Whether a sink receives the progress.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Begins phase `name` counting `total` (when known) of `unit`.
    pub fn phase(&self, name: &'static str, total: Option<u64>, unit: Unit) {
        if let Some(sink) = &self.0 {
            sink.phase(name, total, unit);
        }
    }

    /// Advances the current phase by `amount`.
    pub fn advance(&self, amount: u64) {
        if let Some(sink) = &self.0
            && amount > 0
        {
            sink.advance(amount);
        }
    }

    /// Ends the operation's progress.
    pub fn finish(&self) {
        if let Some(sink) = &self.0 {
            sink.finish();
        }
    }

    /// A meter that advances `bytes` in proportion to rows as `rows` rows are consumed, for
    /// reading a file (or group of files) of known size and row count.
    pub(crate) fn meter(&self, bytes: u64, rows: u64) -> Meter {
        Meter {
            progress: self.clone(),
            bytes,
            rows,
            rows_done: 0,
            bytes_done: 0,
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reported)"
        } else {
            "Progress(none)"
        })
    }
}

impl PartialEq for Progress {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Progress {}

/// Advances a known number of bytes in proportion to rows consumed; whatever remains is
/// advanced by [`Meter::done`] (or on drop), so a phase's advances add up to its total even
/// when a footer's row count and the rows read differ.
pub(crate) struct Meter {
    progress: Progress,
    bytes: u64,
    rows: u64,
    rows_done: u64,
    bytes_done: u64,
}

impl Meter {
    /// `rows` more rows were consumed.
    pub(crate) fn rows(&mut self, rows: u64) {
        if !self.progress.is_enabled() {
            return;
        }
        self.rows_done = (self.rows_done + rows).min(self.rows);
        let due = if self.rows == 0 {
            0
        } else {
            (u128::from(self.bytes) * u128::from(self.rows_done) / u128::from(self.rows)) as u64
        };
        if due > self.bytes_done {
            self.progress.advance(due - self.bytes_done);
            self.bytes_done = due;
        }
    }

    /// Everything was consumed: advances the rest.
    pub(crate) fn done(mut self) {
        self.finish_rest();
    }

    fn finish_rest(&mut self) {
        if self.bytes > self.bytes_done {
            self.progress.advance(self.bytes - self.bytes_done);
            self.bytes_done = self.bytes;
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // A failed read still accounts its bytes: the phase total stays honest about what
        // was attempted, and a failing operation ends anyway.
        self.finish_rest();
    }
}

/// A sink that records every event, for tests (the conformance suite asserts phases and
/// totals on every engine with it).
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: std::sync::Mutex<Vec<ProgressEvent>>,
}

/// An event a [`RecordingSink`] recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A phase began.
    Phase {
        /// Its name.
        name: &'static str,
        /// Its total, when known.
        total: Option<u64>,
        /// What it counts.
        unit: Unit,
    },
    /// The current phase advanced.
    Advance(u64),
    /// The operation ended.
    Finish,
}

/// One phase as recorded: its name, total, unit, and the sum of its advances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedPhase {
    /// The phase's name.
    pub name: &'static str,
    /// Its total, when known.
    pub total: Option<u64>,
    /// What it counts.
    pub unit: Unit,
    /// The sum of its advances.
    pub done: u64,
}

impl RecordingSink {
    /// A new, empty recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<ProgressEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The phases so far, each with the sum of its advances.
    pub fn phases(&self) -> Vec<RecordedPhase> {
        let mut phases: Vec<RecordedPhase> = Vec::new();
        for event in self.events() {
            match event {
                ProgressEvent::Phase { name, total, unit } => phases.push(RecordedPhase {
                    name,
                    total,
                    unit,
                    done: 0,
                }),
                ProgressEvent::Advance(n) => {
                    if let Some(last) = phases.last_mut() {
                        last.done += n;
                    }
                }
                ProgressEvent::Finish => {}
            }
        }
        phases
    }

    fn push(&self, event: ProgressEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

impl ProgressSink for RecordingSink {
    fn phase(&self, name: &'static str, total: Option<u64>, unit: Unit) {
        self.push(ProgressEvent::Phase { name, total, unit });
    }
    fn advance(&self, amount: u64) {
        self.push(ProgressEvent::Advance(amount));
    }
    fn finish(&self) {
        self.push(ProgressEvent::Finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_advances_exactly_its_bytes() {
        let sink = RecordingSink::new();
        let shared: Arc<RecordingSink> = Arc::clone(&sink);
        let progress = Progress::new(shared);
        progress.phase("rewrite", Some(1000), Unit::Bytes);
        let mut meter = progress.meter(1000, 3);
        meter.rows(1);
        meter.rows(1);
        assert_eq!(sink.phases()[0].done, 666, "two thirds, rounded down");
        meter.rows(5);
        meter.done();
        let phases = sink.phases();
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].done, 1000, "{phases:?}");
        // Fewer rows than the footer said: the rest is advanced at the end.
        let mut meter = progress.meter(10, 100);
        meter.rows(3);
        drop(meter);
        assert_eq!(sink.phases()[0].done, 1010);
    }

    #[test]
    fn no_sink_costs_nothing_and_compares_equal() {
        let progress = Progress::none();
        assert!(!progress.is_enabled());
        progress.phase("plan", None, Unit::Files);
        progress.advance(5);
        let recorded = Progress::new(RecordingSink::new());
        assert_eq!(progress, recorded);
        assert_eq!(format!("{recorded:?}"), "Progress(reported)");
    }
}
