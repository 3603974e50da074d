//! Progress of a long tool run: a bar with rate and ETA on a terminal (`indicatif`), a plain line
//! every few seconds otherwise (logs, CI), so an operator always sees that it moves.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Counts work done; shows it as a bar or as periodic lines. Cheap to update from a hot loop.
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
    quiet: bool,
}

struct Plain {
    done: u64,
    total: Option<u64>,
    started: Instant,
    printed: Instant,
}

impl Progress {
    /// Progress of `label`, `total` units if known. Nothing is shown when `quiet`.
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Self {
        let now = Instant::now();
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}"
            } else {
                "{msg} {spinner} {human_pos} {per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            label: label.to_string(),
            bar,
            plain: Mutex::new(Plain {
                done: 0,
                total,
                started: now,
                printed: now,
            }),
            quiet,
        }
    }

    /// Progress that shows nothing (tests, `--json`).
    pub fn hidden() -> Self {
        Self::new("", None, true)
    }

    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
        if let Ok(mut plain) = self.plain.lock() {
            plain.total = Some(total);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let Ok(mut plain) = self.plain.lock() else {
            return;
        };
        plain.done += n;
        if !self.quiet && plain.printed.elapsed() >= PLAIN_EVERY {
            plain.printed = Instant::now();
            eprintln!("{}", plain.line(&self.label));
        }
    }

    /// How many units there are, if known.
    pub fn total(&self) -> Option<u64> {
        self.plain.lock().ok().and_then(|p| p.total)
    }

    /// How many units are done.
    pub fn done(&self) -> u64 {
        match &self.bar {
            Some(bar) => bar.position(),
            None => self.plain.lock().map(|p| p.done).unwrap_or(0),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Plain {
    fn line(&self, label: &str) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        match self.total {
            Some(total) if rate > 0.0 && total >= self.done => format!(
                "{label}: {} of {total} ({rate:.0}/s, about {:.0} s left)",
                self.done,
                (total - self.done) as f64 / rate
            ),
            _ => format!("{label}: {} ({rate:.0}/s)", self.done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_says_rate_and_time_left() {
        let plain = Plain {
            done: 500,
            total: Some(1_000),
            started: Instant::now() - Duration::from_secs(5),
            printed: Instant::now(),
        };
        let line = plain.line("replay a.example");
        assert!(
            line.starts_with("replay a.example: 500 of 1000 (1"),
            "{line}"
        );
        assert!(line.contains("about 5 s left"), "{line}");
    }
}
