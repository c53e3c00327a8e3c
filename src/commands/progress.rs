//! Progress on a terminal: a bar for the event scan, with its rate in words
//! (`73.2M rows/s`), and a spinner for each other stage that can take a
//! while (loading the population, writing patients.parquet, the PCN lists
//! and workbooks, the report). Shown only on an interactive terminal (never
//! in a scheduler's log file) and never with `--quiet`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::engine::Progress;

pub struct Terminal {
    enabled: bool,
}

impl Terminal {
    pub fn new(quiet: bool) -> Terminal {
        Terminal {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

/// A rate in words: `73.2M rows/s`, `950k rows/s`, `12 rows/s`.
pub fn rate(per_second: f64, unit: &str) -> String {
    let (value, suffix) = match per_second {
        r if r >= 1e9 => (r / 1e9, "G"),
        r if r >= 1e6 => (r / 1e6, "M"),
        r if r >= 1e3 => (r / 1e3, "k"),
        r => (r, ""),
    };
    if suffix.is_empty() || value >= 100.0 {
        format!("{value:.0}{suffix} {unit}/s")
    } else {
        format!("{value:.1}{suffix} {unit}/s")
    }
}

impl Progress for Terminal {
    fn scan_bar(&self, rows: u64) -> Option<ProgressBar> {
        if !self.enabled {
            return None;
        }
        let bar = ProgressBar::new(rows);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:14} [{bar:40}] {human_pos}/{human_len} rows ({rate}, {eta} left)",
            )
            .expect("static template is valid")
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(state.per_sec(), "rows"));
                },
            )
            .progress_chars("=> "),
        );
        bar.set_message("scanning events");
        Some(bar)
    }

    fn stage(&self, label: &str) -> Option<ProgressBar> {
        if !self.enabled {
            return None;
        }
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .expect("static template is valid"),
        );
        spinner.set_message(label.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        Some(spinner)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_read_as_words() {
        assert_eq!(super::rate(73_227_162.300_3, "rows"), "73.2M rows/s");
        assert_eq!(super::rate(950_400.0, "rows"), "950k rows/s");
        assert_eq!(super::rate(1_500.0, "rows"), "1.5k rows/s");
        assert_eq!(super::rate(12.4, "rows"), "12 rows/s");
        assert_eq!(super::rate(2.5e9, "rows"), "2.5G rows/s");
    }
}
