//! Progress on stderr for long operations: the core names each phase with its total (bytes
//! to rewrite, rows to write) and advances it; this module draws it as an indicatif bar on a
//! terminal, or as plain lines (`--progress always` off a terminal, for logs).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use fsk::progress::Unit;
use fsk::{Progress, ProgressSink};

/// When progress is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// Never.
    Never,
    /// On a terminal (stderr), unless `--json` or `--quiet`.
    #[default]
    Auto,
    /// Always: a bar on a terminal, plain lines on stderr otherwise.
    Always,
}

/// The progress handle an operation gets for `mode` (with `--json` or `--quiet`, `auto`
/// shows nothing), and the sink to finish when the operation ends.
pub fn progress_for(mode: ProgressMode, json: bool, quiet: bool) -> Shown {
    let terminal = std::io::stderr().is_terminal();
    let sink: Option<Arc<dyn ProgressSink>> = match mode {
        _ if quiet => None,
        ProgressMode::Never => None,
        ProgressMode::Auto if json || !terminal => None,
        ProgressMode::Auto => Some(Arc::new(BarSink::new())),
        ProgressMode::Always if terminal => Some(Arc::new(BarSink::new())),
        ProgressMode::Always => Some(Arc::new(LineSink::new())),
    };
    Shown { sink }
}

/// The progress shown for one operation.
pub struct Shown {
    sink: Option<Arc<dyn ProgressSink>>,
}

impl Shown {
    /// The handle to put in the operation's options.
    pub fn handle(&self) -> Progress {
        match &self.sink {
            Some(sink) => Progress::new(Arc::clone(sink)),
            None => Progress::none(),
        }
    }

    /// Clears the bar (or ends the last line): the operation returned.
    pub fn finish(&self) {
        if let Some(sink) = &self.sink {
            sink.finish();
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An indicatif bar per phase: each phase's bar is made whole (style, total, name) before it
/// is drawn, then replaces the last one, so no frame mixes two phases.
struct BarSink {
    bar: Mutex<ProgressBar>,
}

impl BarSink {
    fn new() -> Self {
        BarSink {
            bar: Mutex::new(ProgressBar::hidden()),
        }
    }
}

fn style(unit: Unit, total: Option<u64>) -> ProgressStyle {
    let template = match (unit, total) {
        (Unit::Bytes, Some(_)) => {
            "{spinner} {msg:<11} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta}) {elapsed}"
        }
        (Unit::Bytes, None) => {
            "{spinner} {msg:<11} {binary_bytes} ({binary_bytes_per_sec}) {elapsed}"
        }
        (Unit::Rows, Some(_)) => {
            "{spinner} {msg:<11} [{bar:30}] {human_pos}/{human_len} rows ({rows_per_sec}, eta {eta}) {elapsed}"
        }
        (Unit::Rows, None) => "{spinner} {msg:<11} {human_pos} rows ({rows_per_sec}) {elapsed}",
        (Unit::Files, Some(_)) => "{spinner} {msg:<11} [{bar:30}] {pos}/{len} files {elapsed}",
        (Unit::Files, None) => "{spinner} {msg:<11} {elapsed}",
    };
    ProgressStyle::with_template(template)
        .expect("valid template")
        .with_key(
            "rows_per_sec",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                // Whole rows per second, grouped (`{per_sec}` prints four decimals).
                let _ = write!(
                    w,
                    "{} rows/s",
                    indicatif::HumanCount(state.per_sec().max(0.0) as u64)
                );
            },
        )
        .progress_chars("=> ")
}

impl ProgressSink for BarSink {
    fn phase(&self, name: &'static str, total: Option<u64>, unit: Unit) {
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
        bar.set_style(style(unit, total));
        bar.set_message(name);
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut current) = self.bar.lock() {
            current.finish_and_clear();
            *current = bar;
        }
    }

    fn advance(&self, amount: u64) {
        if let Ok(bar) = self.bar.lock() {
            bar.inc(amount);
        }
    }

    fn finish(&self) {
        if let Ok(bar) = self.bar.lock() {
            bar.finish_and_clear();
        }
    }
}

/// Plain lines on stderr: one when a phase ends (what it counted, how long it took) and one
/// at most every few seconds while it runs.
struct LineSink {
    state: Mutex<Option<LinePhase>>,
}

struct LinePhase {
    name: &'static str,
    total: Option<u64>,
    unit: Unit,
    done: u64,
    started: Instant,
    printed: Instant,
}

/// How often a running phase prints a line.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl LineSink {
    fn new() -> Self {
        LineSink {
            state: Mutex::new(None),
        }
    }

    fn line(text: String) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "fsk: {text}");
    }

    fn end(phase: &LinePhase) {
        let seconds = phase.started.elapsed().as_secs_f64();
        Self::line(if phase.total.is_none() && phase.done == 0 {
            // Nothing counted (planning, the commit): only how long it took.
            format!("{} done in {seconds:.1} s", phase.name)
        } else {
            format!(
                "{} done: {} in {seconds:.1} s",
                phase.name,
                amount(phase.done, phase.unit)
            )
        });
    }
}

/// `n` of `unit`, bytes in binary units.
fn amount(n: u64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => indicatif::BinaryBytes(n).to_string(),
        Unit::Rows => format!("{n} rows"),
        Unit::Files => format!("{n} files"),
    }
}

impl ProgressSink for LineSink {
    fn phase(&self, name: &'static str, total: Option<u64>, unit: Unit) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(previous) = state.take() {
            Self::end(&previous);
        }
        Self::line(match total {
            Some(total) => format!("{name}: {}", amount(total, unit)),
            None => name.to_string(),
        });
        let now = Instant::now();
        *state = Some(LinePhase {
            name,
            total,
            unit,
            done: 0,
            started: now,
            printed: now,
        });
    }

    fn advance(&self, n: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some(phase) = state.as_mut() else {
            return;
        };
        phase.done += n;
        if phase.printed.elapsed() >= LINE_EVERY {
            phase.printed = Instant::now();
            let share = phase
                .total
                .filter(|t| *t > 0)
                .map(|t| format!(" ({:.0}%)", phase.done as f64 * 100.0 / t as f64))
                .unwrap_or_default();
            Self::line(format!(
                "{}: {}{share}",
                phase.name,
                amount(phase.done, phase.unit)
            ));
        }
    }

    fn finish(&self) {
        if let Ok(mut state) = self.state.lock()
            && let Some(last) = state.take()
        {
            Self::end(&last);
        }
    }
}
