//! A progress bar over the key space with an ETA, on stderr, hidden when stderr is not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of one reconciliation, in keys settled.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr when it is a terminal, otherwise nothing is drawn.
    pub fn stderr() -> Progress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {percent:>3}% of {human_len} keys, {elapsed} elapsed, eta {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Progress { bar }
    }

    /// Draws nothing.
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Starts over `keys` keys.
    pub fn start(&self, message: &str, keys: u64) {
        self.bar.set_message(message.to_string());
        self.bar.set_length(keys);
        self.bar.set_position(0);
    }

    /// Sets the total, once it is known.
    pub fn set_length(&self, keys: u64) {
        self.bar.set_length(keys);
    }

    /// Marks `keys` more keys settled.
    pub fn inc(&self, keys: u64) {
        self.bar.inc(keys);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
