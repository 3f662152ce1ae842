//! Progress of a `warm` run: a bar on a terminal (objects, bytes, rate, ETA), plain lines
//! every few seconds otherwise (logs, CI), and the closing summary.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LINE_EVERY: Duration = Duration::from_secs(5);
const BAR: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";

#[derive(Default)]
pub struct Counts {
    pub listed: AtomicU64,
    pub listed_bytes: AtomicU64,
    pub stored: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    /// Bytes of objects finished, whatever the result (what the ETA is counted in).
    pub done_bytes: AtomicU64,
    pub hashed_bytes: AtomicU64,
}

impl Counts {
    fn done(&self) -> u64 {
        self.stored.load(Relaxed) + self.skipped.load(Relaxed) + self.failed.load(Relaxed)
    }
}

pub struct Progress {
    started: Instant,
    bar: Option<ProgressBar>,
    last_line: std::sync::Mutex<Instant>,
}

impl Progress {
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(BAR)
                    .expect("a valid template (tested)")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress {
            started: Instant::now(),
            bar,
            last_line: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Redraws the bar, or prints a line if one is due.
    pub fn update(&self, c: &Counts) {
        let (done, listed) = (c.done(), c.listed.load(Relaxed));
        if let Some(bar) = &self.bar {
            bar.set_length(c.listed_bytes.load(Relaxed));
            bar.set_position(c.done_bytes.load(Relaxed));
            bar.set_message(format!("{done}/{listed} objects"));
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LINE_EVERY {
            *last = Instant::now();
            eprintln!("{}", self.line(c));
        }
    }

    fn line(&self, c: &Counts) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let (done_bytes, total) = (c.done_bytes.load(Relaxed), c.listed_bytes.load(Relaxed));
        let rate = done_bytes as f64 / secs;
        let eta = match rate > 0.0 {
            true => format!("{:.0}s", total.saturating_sub(done_bytes) as f64 / rate),
            false => "-".into(),
        };
        format!(
            "warm: {}/{} objects, {} of {} listed, {}/s, ETA {eta}",
            c.done(),
            c.listed.load(Relaxed),
            gb(done_bytes),
            gb(total),
            gb(rate as u64),
        )
    }

    /// The closing summary, on stdout.
    pub fn finish(&self, c: &Counts) -> String {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let hashed = c.hashed_bytes.load(Relaxed);
        format!(
            "warm: {} objects listed: {} stored, {} skipped (already stored or not eligible), {} failed; {} hashed in {:.1}s ({:.2} GB/s)",
            c.listed.load(Relaxed),
            c.stored.load(Relaxed),
            c.skipped.load(Relaxed),
            c.failed.load(Relaxed),
            gb(hashed),
            secs,
            hashed as f64 / secs / 1e9,
        )
    }
}

fn gb(bytes: u64) -> String {
    indicatif::DecimalBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_template_is_valid_and_lines_read_well() {
        assert!(ProgressStyle::with_template(BAR).is_ok());
        let c = Counts::default();
        c.listed.store(4, Relaxed);
        c.listed_bytes.store(4_000_000_000, Relaxed);
        c.stored.store(1, Relaxed);
        c.done_bytes.store(1_000_000_000, Relaxed);
        let p = Progress {
            started: Instant::now() - Duration::from_secs(2),
            bar: None,
            last_line: std::sync::Mutex::new(Instant::now()),
        };
        let line = p.line(&c);
        assert!(
            line.starts_with("warm: 1/4 objects, 1.00 GB of 4.00 GB listed, "),
            "{line}"
        );
        assert!(line.contains("ETA 6s"), "{line}");
    }
}
