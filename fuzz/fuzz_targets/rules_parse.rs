//! Arbitrary bytes as a rule file: parsing must never panic, and every error must be located.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strangler_diff::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match RuleSet::parse(text, "fuzz.toml") {
        Ok(set) => {
            // a parsed rule set must be usable
            let doc = serde_json::json!({"a": [1, {"b": null}], "c": "x"});
            let _ = strangler_diff::compare_json(&doc, &doc, &set);
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for e in &errors.errors {
                assert!(e.line() >= 1 && e.column() >= 1);
                let lines = text.lines().count().max(1) + 1;
                assert!(e.line() <= lines, "line {} beyond input: {e}", e.line());
            }
        }
    }
});
