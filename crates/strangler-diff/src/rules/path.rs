//! JSON path patterns named by rules: `/items/*/price`, `/**/internal_ref`, `/request_id`.
//!
//! A pattern is a JSON pointer (RFC 6901: `~0` is `~`, `~1` is `/`) whose segments may also be
//! `*` (exactly one key or array index) or `**` (zero or more segments). Matching runs as a tiny
//! bit-set automaton so the comparison walk can advance every pattern one segment at a time
//! without allocating.

use std::fmt;

/// Longest pattern accepted; the automaton keeps one bit per position in a `u64`.
const MAX_SEGMENTS: usize = 62;

/// One step of a concrete path inside a JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSeg<'a> {
    /// An object key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A literal key; `index` is set when the key is also a valid array index.
    Literal { text: String, index: Option<usize> },
    /// `*`: any single segment.
    Any,
    /// `**`: any number of segments, including none.
    AnyDepth,
}

impl Segment {
    fn matches(&self, seg: PathSeg<'_>) -> bool {
        match (self, seg) {
            (Segment::Literal { text, .. }, PathSeg::Key(key)) => text == key,
            (Segment::Literal { index, .. }, PathSeg::Index(i)) => *index == Some(i),
            (Segment::Any | Segment::AnyDepth, _) => true,
        }
    }
}

/// Why a path pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The pattern is empty or does not start with `/`.
    #[error("path `{0}` must start with '/' (JSON pointer syntax, e.g. \"/items/*/price\")")]
    NoLeadingSlash(String),
    /// A `*` appears inside a segment instead of being the whole segment.
    #[error("path `{0}`: a wildcard must be a whole segment (`*` or `**`), not part of `{1}`")]
    PartialWildcard(String, String),
    /// A `~` escape other than `~0` or `~1`.
    #[error("path `{0}`: `~` must be followed by 0 (for `~`) or 1 (for `/`)")]
    BadEscape(String),
    /// More segments than the matcher supports.
    #[error("path `{0}` has more than {MAX_SEGMENTS} segments")]
    TooLong(String),
    /// A wildcard where a concrete path is required.
    #[error("path `{0}` must not contain wildcards here")]
    WildcardNotAllowed(String),
}

/// A parsed, matchable path pattern.
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
    any_mask: u64,
    deep_mask: u64,
    literal_mask: u64,
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PathPattern {
    /// Parses a pattern such as `/items/*/price` or `/**`.
    pub fn parse(source: &str) -> Result<Self, PathError> {
        let Some(rest) = source.strip_prefix('/') else {
            return Err(PathError::NoLeadingSlash(source.to_owned()));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let segment = match raw {
                "*" => Segment::Any,
                "**" => Segment::AnyDepth,
                _ if raw.contains('*') => {
                    return Err(PathError::PartialWildcard(
                        source.to_owned(),
                        raw.to_owned(),
                    ));
                }
                _ => {
                    let text =
                        unescape(raw).ok_or_else(|| PathError::BadEscape(source.to_owned()))?;
                    let index = parse_index(&text);
                    Segment::Literal { text, index }
                }
            };
            segments.push(segment);
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooLong(source.to_owned()));
        }
        let mut pattern = PathPattern {
            source: source.to_owned(),
            segments,
            any_mask: 0,
            deep_mask: 0,
            literal_mask: 0,
        };
        for (i, segment) in pattern.segments.iter().enumerate() {
            let bit = 1u64 << i;
            match segment {
                Segment::Any => pattern.any_mask |= bit,
                Segment::AnyDepth => pattern.deep_mask |= bit,
                Segment::Literal { .. } => pattern.literal_mask |= bit,
            }
        }
        Ok(pattern)
    }

    /// Parses a pattern that must name exactly one location (no `*`, no `**`).
    pub fn parse_concrete(source: &str) -> Result<Self, PathError> {
        let pattern = Self::parse(source)?;
        if pattern.any_mask != 0 || pattern.deep_mask != 0 {
            return Err(PathError::WildcardNotAllowed(source.to_owned()));
        }
        Ok(pattern)
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Number of `*` segments (renames substitute captured segments in order).
    pub(crate) fn single_wildcards(&self) -> usize {
        self.any_mask.count_ones() as usize
    }

    /// True when the pattern contains `**`.
    pub(crate) fn has_deep_wildcard(&self) -> bool {
        self.deep_mask != 0
    }

    /// The literal segments, `None` standing for `*`; used by renames and freshness.
    pub(crate) fn literal_segments(&self) -> Vec<Option<&str>> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Automaton state at the document root.
    pub(crate) fn start(&self) -> u64 {
        self.close(1)
    }

    fn close(&self, mut state: u64) -> u64 {
        loop {
            let next = state | ((state & self.deep_mask) << 1);
            if next == state {
                return state;
            }
            state = next;
        }
    }

    /// Advances the automaton by one concrete segment; 0 means the pattern can no longer match.
    pub(crate) fn step(&self, state: u64, seg: PathSeg<'_>) -> u64 {
        if state == 0 {
            return 0;
        }
        let mut next = (state & self.deep_mask) | ((state & self.any_mask) << 1);
        let mut literals = state & self.literal_mask;
        while literals != 0 {
            let i = literals.trailing_zeros() as usize;
            literals &= literals - 1;
            if self.segments[i].matches(seg) {
                next |= 1 << (i + 1);
            }
        }
        self.close(next)
    }

    /// True when `state` means the path walked so far matches the whole pattern.
    pub(crate) fn accepts(&self, state: u64) -> bool {
        state & (1u64 << self.segments.len()) != 0
    }

    /// Matches a whole concrete path.
    pub fn matches(&self, path: &[PathSeg<'_>]) -> bool {
        let state = path.iter().fold(self.start(), |s, seg| self.step(s, *seg));
        self.accepts(state)
    }
}

fn parse_index(text: &str) -> Option<usize> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Appends `/segment` to a JSON pointer, escaping `~` and `/`.
pub(crate) fn push_pointer(buf: &mut String, seg: PathSeg<'_>) {
    buf.push('/');
    match seg {
        PathSeg::Key(key) => {
            if key.contains(['~', '/']) {
                for c in key.chars() {
                    match c {
                        '~' => buf.push_str("~0"),
                        '/' => buf.push_str("~1"),
                        _ => buf.push(c),
                    }
                }
            } else {
                buf.push_str(key);
            }
        }
        PathSeg::Index(i) => {
            use std::fmt::Write;
            let _ = write!(buf, "{i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path<'a>(parts: &[&'a str]) -> Vec<PathSeg<'a>> {
        parts
            .iter()
            .map(|p| match p.parse::<usize>() {
                Ok(i) => PathSeg::Index(i),
                Err(_) => PathSeg::Key(p),
            })
            .collect()
    }

    #[test]
    fn literal_star_and_deep_wildcards_match_as_documented() {
        let p = PathPattern::parse("/items/*/internal_ref").unwrap();
        assert!(p.matches(&path(&["items", "3", "internal_ref"])));
        assert!(p.matches(&path(&["items", "sku", "internal_ref"])));
        assert!(!p.matches(&path(&["items", "internal_ref"])));
        assert!(!p.matches(&path(&["items", "3", "internal_ref", "x"])));

        let deep = PathPattern::parse("/**/internal_ref").unwrap();
        assert!(deep.matches(&path(&["internal_ref"])));
        assert!(deep.matches(&path(&["a", "b", "0", "internal_ref"])));
        assert!(!deep.matches(&path(&["a", "internal_ref_2"])));

        let all = PathPattern::parse("/**").unwrap();
        assert!(all.matches(&[]));
        assert!(all.matches(&path(&["x", "1"])));

        let index = PathPattern::parse("/items/0").unwrap();
        assert!(index.matches(&path(&["items", "0"])));
        assert!(!index.matches(&path(&["items", "1"])));
    }

    #[test]
    fn escapes_follow_json_pointer() {
        let p = PathPattern::parse("/a~1b/c~0d").unwrap();
        assert!(p.matches(&[PathSeg::Key("a/b"), PathSeg::Key("c~d")]));
        let mut buf = String::new();
        push_pointer(&mut buf, PathSeg::Key("a/b"));
        push_pointer(&mut buf, PathSeg::Index(2));
        assert_eq!(buf, "/a~1b/2");
    }

    #[test]
    fn bad_syntax_is_rejected() {
        assert!(matches!(
            PathPattern::parse("items"),
            Err(PathError::NoLeadingSlash(_))
        ));
        assert!(matches!(
            PathPattern::parse(""),
            Err(PathError::NoLeadingSlash(_))
        ));
        assert!(matches!(
            PathPattern::parse("/it*ms"),
            Err(PathError::PartialWildcard(..))
        ));
        assert!(matches!(
            PathPattern::parse("/a~2"),
            Err(PathError::BadEscape(_))
        ));
        assert!(matches!(
            PathPattern::parse_concrete("/items/*"),
            Err(PathError::WildcardNotAllowed(_))
        ));
    }
}
