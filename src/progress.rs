//! Progress bars for the long stages, shown only on an interactive terminal
//! (never in a scheduler's log file) and never with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

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

impl Progress for Terminal {
    fn scan_bar(&self, rows: u64) -> Option<ProgressBar> {
        if !self.enabled {
            return None;
        }
        let bar = ProgressBar::new(rows);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:14} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
            )
            .expect("static template is valid")
            .progress_chars("=> "),
        );
        bar.set_message("scanning events");
        Some(bar)
    }
}
