//! Unified text diffs for bodies that are not JSON.

use similar::TextDiff;

/// Lines of context around each change.
const CONTEXT_LINES: usize = 3;

/// A unified diff from the legacy text `a` to the candidate text `b` (empty when equal).
pub fn render_text_diff(a: &str, b: &str) -> String {
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header("legacy", "candidate")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_shows_removed_and_added_lines() {
        let d = render_text_diff("a\nb\nc\n", "a\nB\nc\n");
        assert!(d.starts_with("--- legacy\n+++ candidate\n"), "{d}");
        assert!(d.contains("\n-b\n") && d.contains("\n+B\n"), "{d}");
        assert_eq!(render_text_diff("same\n", "same\n"), "");
    }
}
