//! What can go wrong talking to ClickHouse, each message naming the statement and the server's own
//! words.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of the ClickHouse client or of the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ClickHouse URL is not usable.
    #[error("invalid ClickHouse URL {url:?}: {reason}")]
    Url {
        /// The URL as given (password removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No HTTP answer: the server is down, refused the connection or the connection broke.
    #[error(
        "ClickHouse at {endpoint} is not reachable ({source}); start it (deploy/test.sh does) or fix the URL"
    )]
    Unreachable {
        /// `host:port` tried.
        endpoint: String,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request took longer than the client's timeout.
    #[error("ClickHouse at {endpoint} did not answer `{statement}` within {timeout_ms} ms")]
    Timeout {
        /// `host:port` tried.
        endpoint: String,
        /// The statement (shortened).
        statement: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The server refused the statement; `message` is ClickHouse's own explanation.
    #[error("ClickHouse refused `{statement}` (HTTP {status}{}): {message}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Server {
        /// HTTP status of the answer.
        status: u16,
        /// ClickHouse's error code (`Code: 60` is "table does not exist"), when the body had one.
        code: Option<u32>,
        /// The server's message, without its stack-trace decoration.
        message: String,
        /// The statement (shortened).
        statement: String,
    },
    /// The answer arrived but did not have the expected shape.
    #[error("ClickHouse's answer to `{statement}` did not decode: {reason}")]
    Decode {
        /// The statement (shortened).
        statement: String,
        /// What did not fit.
        reason: String,
    },
    /// A table or column name that strangler will not put into SQL unquoted.
    #[error(
        "{what} {name:?} is not a valid ClickHouse name here: use letters, digits and `_`, starting with a letter or `_`"
    )]
    Name {
        /// What the name is for ("table", "column").
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A row to insert lacks a column or has one the table does not know.
    #[error("row for table {table} at {position}: {reason}")]
    Row {
        /// The target table.
        table: String,
        /// The event position the row came from.
        position: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// ClickHouse's error code, when the server refused a statement.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Server { code, .. } => *code,
            _ => None,
        }
    }

    /// True for failures worth retrying: the server away or slow, or answering 5xx for reasons
    /// other than the statement (memory, too many parts, shutting down).
    pub fn retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => true,
            // 241 memory limit, 252 too many parts, 202 too many simultaneous queries,
            // 210 network error, 209 socket timeout, 159 timeout exceeded.
            Error::Server { code, .. } => {
                matches!(code, Some(241 | 252 | 202 | 210 | 209 | 159))
            }
            _ => false,
        }
    }
}

/// Statements in messages are cut to one readable line.
pub(crate) fn shorten(statement: &str) -> String {
    let one_line: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= 160 {
        one_line
    } else {
        let cut: String = one_line.chars().take(157).collect();
        format!("{cut}...")
    }
}

/// Pulls the code and the message out of ClickHouse's error body, for example
/// `Code: 60, e.displayText() = DB::Exception: Table db.t doesn't exist., e.what() = DB::Exception`.
pub(crate) fn parse_server_error(body: &str) -> (Option<u32>, String) {
    let body = body.trim();
    let code = body
        .strip_prefix("Code: ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let mut message = body;
    if let Some(i) = message.find("DB::Exception: ") {
        message = &message[i + "DB::Exception: ".len()..];
    }
    if let Some(i) = message.find(", e.what() = ") {
        message = &message[..i];
    }
    // Newer servers append the version in parentheses and a stack trace after a blank line.
    if let Some(i) = message.find("\n\n") {
        message = &message[..i];
    }
    let message = message.trim();
    let message = if message.is_empty() {
        "(empty error body)".to_string()
    } else {
        message.to_string()
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_body_is_reduced_to_code_and_message() {
        let (code, msg) = parse_server_error(
            "Code: 60, e.displayText() = DB::Exception: Table st.nope doesn't exist., e.what() = DB::Exception\n",
        );
        assert_eq!(code, Some(60));
        assert_eq!(msg, "Table st.nope doesn't exist.");
        let (code, msg) = parse_server_error("something else entirely");
        assert_eq!(code, None);
        assert_eq!(msg, "something else entirely");
    }

    #[test]
    fn long_statements_are_shortened_to_one_line() {
        let s = format!("SELECT\n  {}", "x, ".repeat(100));
        let short = shorten(&s);
        assert!(short.len() <= 160 && short.ends_with("...") && !short.contains('\n'));
    }
}
