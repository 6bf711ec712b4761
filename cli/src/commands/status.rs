//! The live status block on the terminal: one line per query, redrawn in place.
//!
//! Console-sink output and the status block share the terminal; the block is erased before
//! anything else is printed and redrawn after, so tables are never interleaved with it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use sluice_driver::progress::StreamingQueryProgress;

/// The status block (a no-op when stderr is not a terminal).
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<Board>>,
    enabled: bool,
}

#[derive(Debug, Default)]
struct Board {
    lines: BTreeMap<String, String>,
    drawn: usize,
}

impl StatusBoard {
    /// A board that draws only if stderr is a terminal.
    pub fn new() -> Self {
        Self { inner: Arc::default(), enabled: std::io::stderr().is_terminal() }
    }

    /// Records a query's latest progress and redraws.
    pub fn update(&self, query: &str, p: &StreamingQueryProgress) {
        if !self.enabled {
            return;
        }
        let mut line = format!(
            "[{query}] batch {} | input {:.1} rows/s | processed {:.1} rows/s",
            p.batch_id,
            finite(p.input_rows_per_second),
            finite(p.processed_rows_per_second)
        );
        if let Some(wm) = p.event_time.get("watermark") {
            line.push_str(&format!(" | watermark {wm}"));
        }
        let state_rows: u64 = p.state_operators.iter().map(|s| s.num_rows_total).sum();
        if !p.state_operators.is_empty() {
            line.push_str(&format!(" | state {state_rows} rows"));
        }
        if let Ok(mut b) = self.inner.lock() {
            b.lines.insert(query.to_string(), line);
            let mut err = std::io::stderr().lock();
            erase(&mut b, &mut err);
            draw(&mut b, &mut err);
        }
    }

    /// Prints `text` to stdout with the block erased around it.
    pub fn print(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        if !self.enabled {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            return;
        }
        if let Ok(mut b) = self.inner.lock() {
            let mut err = std::io::stderr().lock();
            erase(&mut b, &mut err);
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            draw(&mut b, &mut err);
        }
    }

    /// Prints `line` to stderr with the block erased around it.
    pub fn note(&self, line: &str) {
        let mut err = std::io::stderr().lock();
        match self.inner.lock() {
            Ok(mut b) if self.enabled => {
                erase(&mut b, &mut err);
                let _ = writeln!(err, "{line}");
                draw(&mut b, &mut err);
            }
            _ => {
                let _ = writeln!(err, "{line}");
            }
        }
    }

    /// Erases the block for good (before the final messages).
    pub fn finish(&self) {
        if let Ok(mut b) = self.inner.lock() {
            erase(&mut b, &mut std::io::stderr().lock());
            b.lines.clear();
        }
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn erase(b: &mut Board, err: &mut impl Write) {
    for _ in 0..b.drawn {
        let _ = write!(err, "\x1b[1A\x1b[2K");
    }
    b.drawn = 0;
    let _ = err.flush();
}

fn draw(b: &mut Board, err: &mut impl Write) {
    for line in b.lines.values() {
        let _ = writeln!(err, "{line}");
    }
    b.drawn = b.lines.len();
    let _ = err.flush();
}
