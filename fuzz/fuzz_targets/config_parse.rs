//! Arbitrary bytes as strangler.toml: loading must never panic, an invalid file must list at
//! least one problem, and every problem must name a key and sit inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strangler_core::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz/strangler.toml")) {
        Ok(config) => {
            // A loaded configuration answers the questions services ask of it.
            for c in &config.capabilities {
                assert!(config.capability(&c.name).is_some());
            }
        }
        Err(err) => {
            let problems = err.problems();
            assert!(
                !problems.is_empty(),
                "an invalid file lists its problems: {err}"
            );
            let lines = text.lines().count().max(1) + 1;
            for p in problems {
                assert!(!p.message.is_empty(), "a problem says what is wrong: {p}");
                if let Some((line, col)) = p.line_col {
                    assert!(
                        line >= 1 && col >= 1 && line <= lines,
                        "{p} is outside the file"
                    );
                }
            }
        }
    }
});
