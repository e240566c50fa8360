//! Cross-field validation: each section reports its problems into one [`Validator`].

use std::path::{Path, PathBuf};

/// Collects problems while the configuration sections check themselves.
#[derive(Debug)]
pub struct Validator {
    base_dir: PathBuf,
    problems: Vec<(String, String, String)>,
}

impl Validator {
    pub(super) fn new(base_dir: PathBuf) -> Self {
        Validator {
            base_dir,
            problems: Vec::new(),
        }
    }

    /// Records a problem at `key` with a message and the fix.
    pub fn problem(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push((key.into(), message.into(), fix.into()));
    }

    /// The folder relative paths resolve from.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Checks that `value` is a URL whose scheme is one of `schemes`.
    pub fn url(&mut self, key: &str, value: &str, schemes: &[&str]) {
        match url::Url::parse(value) {
            Ok(u) if schemes.contains(&u.scheme()) => {
                if u.scheme().starts_with("http") && u.host_str().is_none() {
                    self.problem(
                        key,
                        format!("`{value}` has no host"),
                        "write it as http://host:port",
                    );
                }
            }
            Ok(u) => self.problem(
                key,
                format!(
                    "`{value}` has scheme `{}`, which is not supported here",
                    u.scheme()
                ),
                format!(
                    "use one of: {}",
                    schemes
                        .iter()
                        .map(|s| format!("{s}://"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Err(e) => self.problem(
                key,
                format!("`{value}` is not a valid URL ({e})"),
                format!("write a URL such as {}://...", schemes[0]),
            ),
        }
    }

    /// Checks that `value` is a `host:port` socket address to listen on.
    pub fn listen_addr(&mut self, key: &str, value: &str) {
        if value.parse::<std::net::SocketAddr>().is_err() {
            self.problem(
                key,
                format!("`{value}` is not a listen address"),
                "write it as IP:PORT, for example 127.0.0.1:8080 or 0.0.0.0:8080",
            );
        }
    }

    /// Checks that a file named in the configuration exists, resolving it from the config's folder.
    pub fn existing_file(&mut self, key: &str, path: &Path) {
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        };
        if !full.is_file() {
            self.problem(
                key,
                format!("file `{}` does not exist", full.display()),
                "create it, or correct the path (relative paths resolve from the configuration file's folder)",
            );
        }
    }

    /// Checks that a number is at least `min`.
    pub fn at_least(&mut self, key: &str, value: u64, min: u64) {
        if value < min {
            self.problem(
                key,
                format!("must be at least {min}, found {value}"),
                format!("set it to {min} or more"),
            );
        }
    }

    pub(super) fn into_problems(self) -> Vec<(String, String, String)> {
        self.problems
    }
}
