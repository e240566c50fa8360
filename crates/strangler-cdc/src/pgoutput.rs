//! The pgoutput logical replication protocol, version 1 (pure: bytes in, messages out).
//!
//! Message layouts follow PostgreSQL's "Logical Replication Message Formats" chapter. Only
//! the text tuple format is read: the slot is opened without the `binary` option, so every column
//! arrives as its type's output text, the same text a snapshot reads with `::text`.

use crate::error::{Error, Result};

/// One column of a relation as pgoutput describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Part of the replica identity (flag bit 1).
    pub identity: bool,
    /// Column name.
    pub name: String,
    /// Type oid.
    pub type_oid: u32,
    /// Type modifier.
    pub type_mod: i32,
}

/// A relation (table) as pgoutput describes it before its first change in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Table oid.
    pub oid: u32,
    /// Schema name (empty for `pg_catalog`).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Replica identity setting (`d`, `n`, `f`, `i`).
    pub replica_identity: u8,
    /// Columns in attribute order.
    pub columns: Vec<Column>,
}

/// One column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value (its content was not written to the WAL).
    Unchanged,
    /// The type's text output.
    Text(String),
}

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Start of a committed transaction.
    Begin {
        /// LSN of the commit record.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01 UTC.
        commit_ts: i64,
        /// Transaction id.
        xid: u32,
    },
    /// End of a transaction.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// LSN just after the commit record: what the slot is confirmed to once delivered.
        end_lsn: u64,
        /// Commit time, microseconds since 2000-01-01 UTC.
        commit_ts: i64,
    },
    /// Replication origin of the transaction.
    Origin,
    /// A relation's layout.
    Relation(Relation),
    /// A type's name (sent for non-built-in types).
    Type,
    /// A row inserted.
    Insert {
        /// Table oid.
        oid: u32,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row updated.
    Update {
        /// Table oid.
        oid: u32,
        /// The old key (`K`) or old row (`O`, replica identity full), when sent.
        old: Option<Vec<Cell>>,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row deleted.
    Delete {
        /// Table oid.
        oid: u32,
        /// The old key or old row.
        old: Vec<Cell>,
    },
    /// Tables truncated.
    Truncate {
        /// Table oids.
        oids: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// Written inside the transaction (true) or immediately (false).
        transactional: bool,
        /// LSN of the message.
        lsn: u64,
        /// The prefix it was emitted with.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::Protocol(format!(
                "message ends after {} bytes, {n} more expected at {}",
                self.buf.len(),
                self.pos
            )));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn string(&mut self) -> Result<String> {
        let rest = &self.buf[self.pos..];
        let Some(nul) = rest.iter().position(|b| *b == 0) else {
            return Err(Error::Protocol("unterminated string".into()));
        };
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.pos += nul + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Cell>> {
        let n = self.i16()?;
        let mut cells = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.i32()?;
                    let bytes = self.take(len.max(0) as usize)?;
                    Cell::Text(String::from_utf8_lossy(bytes).into_owned())
                }
                other => {
                    return Err(Error::Protocol(format!(
                        "tuple column kind `{}` (binary output is not requested)",
                        other as char
                    )));
                }
            });
        }
        Ok(cells)
    }
}

/// Decodes one pgoutput message.
pub fn parse(buf: &[u8]) -> Result<Message> {
    let mut r = Reader { buf, pos: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.u64()?,
                end_lsn: r.u64()?,
                commit_ts: r.i64()?,
            }
        }
        b'O' => Message::Origin,
        b'Y' => Message::Type,
        b'R' => {
            let oid = r.u32()?;
            let schema = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(Column {
                    identity: flags & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_mod: r.i32()?,
                });
            }
            Message::Relation(Relation {
                oid,
                schema,
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let oid = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                oid,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let oid = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(Error::Protocol(format!(
                    "update without a new tuple (found `{}`)",
                    kind as char
                )));
            }
            Message::Update {
                oid,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let oid = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(Error::Protocol(format!(
                    "delete without an old key (found `{}`)",
                    kind as char
                )));
            }
            Message::Delete {
                oid,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            let mut oids = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                oids.push(r.u32()?);
            }
            Message::Truncate { oids }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.string()?;
            let len = r.i32()?;
            Message::LogicalMessage {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: r.take(len.max(0) as usize)?.to_vec(),
            }
        }
        other => {
            return Err(Error::Protocol(format!(
                "unknown pgoutput message `{}`",
                other as char
            )));
        }
    })
}

fn expect(r: &mut Reader<'_>, want: u8) -> Result<()> {
    let got = r.u8()?;
    if got == want {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "expected `{}`, found `{}`",
            want as char, got as char
        )))
    }
}

/// An LSN as PostgreSQL writes it: `16/B374D848`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Parses PostgreSQL's `X/Y` LSN text.
pub fn parse_lsn(text: &str) -> Result<u64> {
    let bad = || Error::Protocol(format!("`{text}` is not an LSN"));
    let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((hi << 32) | lo)
}

/// Microseconds since 2000-01-01 (PostgreSQL's epoch) to milliseconds since 1970-01-01.
pub fn pg_micros_to_unix_ms(us: i64) -> i64 {
    const PG_EPOCH_MS: i64 = 946_684_800_000;
    us.div_euclid(1000) + PG_EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(cells: &[Option<&str>]) -> Vec<u8> {
        let mut b = (cells.len() as i16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                None => b.push(b'n'),
                Some(t) => {
                    b.push(b't');
                    b.extend((t.len() as i32).to_be_bytes());
                    b.extend(t.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn relation_and_changes_round_trip() {
        let mut rel = vec![b'R'];
        rel.extend(16_385u32.to_be_bytes());
        rel.extend(b"public\0orders\0");
        rel.push(b'd');
        rel.extend(2i16.to_be_bytes());
        rel.push(1);
        rel.extend(b"id\0");
        rel.extend(23u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        rel.push(0);
        rel.extend(b"note\0");
        rel.extend(25u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        let Message::Relation(r) = parse(&rel).unwrap() else {
            panic!("relation")
        };
        assert_eq!((r.schema.as_str(), r.name.as_str()), ("public", "orders"));
        assert!(r.columns[0].identity && !r.columns[1].identity);

        let mut upd = vec![b'U'];
        upd.extend(16_385u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple(&[Some("1"), None]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("2"), Some("x")]));
        assert_eq!(
            parse(&upd).unwrap(),
            Message::Update {
                oid: 16_385,
                old: Some(vec![Cell::Text("1".into()), Cell::Null]),
                new: vec![Cell::Text("2".into()), Cell::Text("x".into())],
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"B\0\0",
            b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab",
            b"Zxx",
        ] {
            assert!(parse(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn lsns_print_and_parse_like_postgres() {
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert!(parse_lsn("nope").is_err());
        assert_eq!(pg_micros_to_unix_ms(0), 946_684_800_000);
    }
}
