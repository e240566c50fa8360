//! The one error type of the registry: files that cannot be read or are not valid contracts.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a contract file, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Where in the file (a JSON pointer or a key), empty for the whole file.
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if !self.at.is_empty() {
            write!(f, ": `{}`", self.at)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n    fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry folder does not exist or cannot be listed.
    #[error("cannot read contract registry {}: {source}", path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Files were read and some are not valid contracts; every problem is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let mut out = format!(
        "contract registry has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string().replace('\n', "\n  "));
    }
    out
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
