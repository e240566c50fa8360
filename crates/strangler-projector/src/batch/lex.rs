//! A small SQL lexer: enough structure (words, punctuation, parameters, table templates, with
//! literals, quoted identifiers and comments kept opaque) to recognise the statement shapes that
//! batch safely.

/// One token and where it is in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tok<'a> {
    pub kind: Kind<'a>,
    pub text: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind<'a> {
    /// A bare word (keyword or identifier), as written.
    Word,
    /// `"quoted identifier"`.
    Quoted,
    /// `'literal'` or a number.
    Literal,
    /// `:name`.
    Param(&'a str),
    /// `{{table}}`.
    Table(&'a str),
    /// Any other character (`(`, `)`, `,`, `=`, `;`, operators), one per token.
    Punct(u8),
    /// Whitespace or a comment.
    Space,
}

impl Tok<'_> {
    /// Whether the token is the keyword `kw` (case-insensitive).
    pub fn is_word(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Splits `sql` into tokens. `None` when it has an unterminated literal, comment or template.
pub(super) fn lex(sql: &str) -> Option<Vec<Tok<'_>>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                loop {
                    if i >= b.len() {
                        return None;
                    }
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                if q == b'"' {
                    Kind::Quoted
                } else {
                    Kind::Literal
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Kind::Space
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..].find("*/")?;
                i += 2 + end + 2;
                Kind::Space
            }
            c if c.is_ascii_whitespace() => {
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                Kind::Space
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                Kind::Punct(b':')
            }
            b':' if b.get(i + 1).copied().is_some_and(is_ident_start) => {
                i += 1;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                Kind::Param(&sql[start + 1..i])
            }
            b'{' if b.get(i + 1) == Some(&b'{') => {
                let len = sql[i + 2..].find("}}")?;
                let name = sql[i + 2..i + 2 + len].trim();
                i += 2 + len + 2;
                Kind::Table(name)
            }
            c if is_ident_start(c) => {
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Kind::Literal
            }
            c => {
                // One character per token; multi-byte UTF-8 stays whole.
                i += 1;
                while i < b.len() && !sql.is_char_boundary(i) {
                    i += 1;
                }
                Kind::Punct(c)
            }
        };
        out.push(Tok {
            kind,
            text: &sql[start..i],
        });
    }
    Some(out)
}
