//! The inputs of a comparison: two HTTP answers and the candidate's watermark.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// One HTTP answer, as captured by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Headers in arrival order; names compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Raw body bytes.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A `200` answer with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> HttpAnswer {
        HttpAnswer {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    /// All values of a header, joined by `, ` in arrival order (RFC 9110 field combination).
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// How far the candidate's read model had caught up when it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Watermark {
    /// Time of the last change applied.
    Time(DateTime<FixedOffset>),
    /// Offset or version of the last change applied.
    Offset(i64),
}

impl Watermark {
    /// Reads a watermark header value: an integer offset, or an RFC 3339 time.
    pub fn parse(header: &str) -> Option<Watermark> {
        let h = header.trim();
        if let Ok(offset) = h.parse::<i64>() {
            return Some(Watermark::Offset(offset));
        }
        DateTime::parse_from_rfc3339(h).ok().map(Watermark::Time)
    }
}

impl std::fmt::Display for Watermark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watermark::Time(t) => f.write_str(&t.to_rfc3339()),
            Watermark::Offset(o) => write!(f, "{o}"),
        }
    }
}

/// What `compare` needs.
#[derive(Debug, Clone, Copy)]
pub struct CompareInput<'a> {
    /// The legacy system's answer (the reference).
    pub legacy: &'a HttpAnswer,
    /// The new read path's answer.
    pub candidate: &'a HttpAnswer,
    /// The candidate's watermark, from its response header, if it sent one.
    pub candidate_watermark: Option<Watermark>,
}
