//! Pass-through without hyper, for the requests that are only forwarded.
//!
//! During a migration most of a proxy's traffic is pass-through: routes no capability claims,
//! and capabilities still in `legacy` mode (or killed). For those the proxy is a relay, and
//! hyper's general machinery (typed requests and responses, header maps, body channels, a task
//! per upstream connection, a shared pool keyed by hashed URIs) is most of its user-space work
//! (docs/BENCHMARKS.md, "Shadow proxy"). Here a serving thread forwards a plain HTTP/1.1 `GET`
//! itself: it parses the head with httparse (hyper's own parser), writes it to a pooled legacy
//! connection with hop-by-hop headers removed and `Host` set, parses the answer's head, and
//! copies the body through by its framing (a length, chunks, or the end of the connection).
//!
//! The first request that is not plain (a body, another method or version, `Expect`, `Upgrade`,
//! a capability that is compared, a head that is malformed or too large) hands the connection,
//! with every byte read so far, to hyper, which serves it from then on. So HTTP's harder rules
//! stay hyper's, and this code only ever sees the simple case. What the client and legacy
//! receive is what the hyper path sends them, apart from the spelling of header names and the
//! sizes of chunks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::error::ProxyError;
use crate::forward;
use crate::state::Proxy;

/// hyper's own limit on the number of headers in a head.
const MAX_HEADERS: usize = 100;
/// A head larger than this goes to hyper (a request) or is refused (an answer).
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the kernel per read.
const READ: usize = 16 * 1024;
/// Idle legacy connections a serving thread keeps.
const MAX_IDLE: usize = 256;

/// Legacy as this path speaks to it.
pub(crate) struct Legacy {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header: the port only when it is not 80, as hyper's client writes it.
    host: String,
    prefix: String,
    timeout: Duration,
    idle: Duration,
}

impl Legacy {
    /// `None` when the path is switched off or legacy is spoken to over TLS.
    pub(crate) fn of(settings: &Settings) -> Option<Legacy> {
        let up = &settings.legacy;
        if !settings.proxy.fast_pass_through || up.is_https() {
            return None;
        }
        let a = up.authority();
        let port = a.port_u16().unwrap_or(80);
        Some(Legacy {
            addr: format!("{}:{port}", a.host()),
            host: if port == 80 {
                a.host().to_owned()
            } else {
                format!("{}:{port}", a.host())
            },
            prefix: up.prefix().to_owned(),
            timeout: Duration::from_millis(settings.proxy.upstream_timeout_ms),
            idle: Duration::from_millis(settings.proxy.pool_idle_timeout_ms),
        })
    }
}

/// How a client connection left this path.
pub(crate) enum Outcome {
    /// It is closed (or the client went).
    Closed,
    /// hyper serves the rest of it, starting with the bytes already read.
    Hyper(Rewind),
}

/// A client connection's buffers, reused from request to request.
struct Buffers {
    /// Bytes from the client not yet handled.
    inbox: BytesMut,
    /// The request as legacy gets it.
    ask: BytesMut,
    /// Bytes from legacy not yet passed on.
    answer: BytesMut,
    /// Bytes for the client.
    out: BytesMut,
}

/// Serves a client connection for as long as its requests are plain pass-through.
pub(crate) async fn serve(
    proxy: &Proxy,
    legacy: &Legacy,
    mut client: TcpStream,
    stop: &CancellationToken,
) -> Outcome {
    let mut b = Buffers {
        inbox: BytesMut::with_capacity(READ),
        ask: BytesMut::with_capacity(1024),
        answer: BytesMut::with_capacity(READ),
        out: BytesMut::with_capacity(READ),
    };
    loop {
        if b.inbox.is_empty() {
            // Between requests a shutdown closes the connection at once.
            let read = tokio::select! {
                biased;
                () = stop.cancelled() => return Outcome::Closed,
                read = fill(&mut client, &mut b.inbox) => read,
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Outcome::Closed;
            }
        }
        let close = match request(proxy, legacy, &b.inbox, &mut b.ask) {
            Head::Partial if b.inbox.len() < MAX_HEAD => {
                if !matches!(fill(&mut client, &mut b.inbox).await, Ok(n) if n > 0) {
                    return Outcome::Closed;
                }
                continue;
            }
            Head::Partial | Head::Other => {
                return Outcome::Hyper(Rewind {
                    read: b.inbox.freeze(),
                    io: client,
                });
            }
            Head::Forward { len, close } => {
                b.inbox.advance(len);
                close
            }
        };
        let keep = match exchange(legacy, &mut b, &mut client, close).await {
            Ok(Done::KeepAlive) => true,
            Ok(Done::Close) => false,
            Err(Failed::Before(e)) => {
                failure(&mut b.out, &e, close);
                if client.write_all(&b.out).await.is_err() {
                    return Outcome::Closed;
                }
                !close
            }
            Err(Failed::Midway) => return Outcome::Closed,
        };
        if !keep || stop.is_cancelled() {
            let _ = client.shutdown().await;
            return Outcome::Closed;
        }
    }
}

/// Reads what the kernel has, into spare room of at least a few KB.
async fn fill(io: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(READ);
    }
    io.read_buf(buf).await
}

/// What the bytes from a client hold.
enum Head {
    /// Not a whole head yet.
    Partial,
    /// Not a request this path forwards: hyper's.
    Other,
    /// A plain `GET`, `len` bytes long, readied for legacy; `close` when the client asked to
    /// close after it.
    Forward { len: usize, close: bool },
}

/// Parses a client's head and, when it is a plain pass-through `GET`, writes legacy's request
/// into `ask`: the same target (after legacy's path prefix) and headers, without hop-by-hop
/// headers (those named by `Connection` too) and with legacy's `Host`.
fn request(proxy: &Proxy, legacy: &Legacy, buf: &[u8], ask: &mut BytesMut) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return Head::Other;
    }
    let Some(target) = req.path.filter(|p| p.starts_with('/')) else {
        return Head::Other;
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !forwarded_only(proxy, path) {
        return Head::Other;
    }
    let mut close = false;
    let mut named: Vec<&[u8]> = Vec::new();
    for h in req.headers.iter() {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            if h.value.trim_ascii() != b"0" {
                return Head::Other;
            }
        } else if n.eq_ignore_ascii_case(b"transfer-encoding")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"upgrade")
        {
            return Head::Other;
        } else if n.eq_ignore_ascii_case(b"connection") {
            close |= connection_options(h.value, &mut named);
        }
    }
    ask.clear();
    ask.extend_from_slice(b"GET ");
    ask.extend_from_slice(legacy.prefix.as_bytes());
    ask.extend_from_slice(target.as_bytes());
    ask.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    ask.extend_from_slice(legacy.host.as_bytes());
    ask.extend_from_slice(b"\r\n");
    for h in req.headers.iter() {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"host") || hop_by_hop(n, &named) {
            continue;
        }
        put_header(ask, n, h.value);
    }
    ask.extend_from_slice(b"\r\n");
    Head::Forward { len, close }
}

/// Whether a `GET` of `path` is only forwarded to legacy: no capability claims it, or its
/// capability is in `legacy` mode or killed (what [`crate::handler`] decides for it too).
fn forwarded_only(proxy: &Proxy, path: &str) -> bool {
    proxy.routes.lookup(&Method::GET, path).is_none_or(|m| {
        let (mode, all_killed) = proxy.modes.serving(m.cap);
        mode.legacy_only(all_killed)
    })
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1): [`forward::is_hop_by_hop`]'s, and those the
/// message's `Connection` names.
fn hop_by_hop(name: &[u8], named: &[&[u8]]) -> bool {
    forward::is_hop_by_hop(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// Reads a `Connection` header's options: adds the header names it lists to `named`, and says
/// whether it asks to close.
fn connection_options<'a>(value: &'a [u8], named: &mut Vec<&'a [u8]>) -> bool {
    let mut close = false;
    for t in value.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
        if t.eq_ignore_ascii_case(b"close") {
            close = true;
        } else if !t.is_empty() && !t.eq_ignore_ascii_case(b"keep-alive") {
            named.push(t);
        }
    }
    close
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How an exchange ended, when it ended well.
enum Done {
    KeepAlive,
    /// The client connection must close (the client asked, or the body ran to legacy's close).
    Close,
}

/// How an exchange failed.
enum Failed {
    /// Before any byte reached the client: it gets an error answer.
    Before(ProxyError),
    /// After: the client connection closes, the only way left to say the answer is cut short.
    Midway,
}

/// How an answer's body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// An answer head from legacy, already rewritten for the client into the out buffer.
struct Answer {
    len: usize,
    framing: Framing,
    /// Whether legacy's connection may serve another request.
    reuse: bool,
    /// Whether the client connection closes after this answer.
    close: bool,
}

/// One request to legacy and its answer to the client.
async fn exchange(
    legacy: &Legacy,
    b: &mut Buffers,
    client: &mut TcpStream,
    close: bool,
) -> Result<Done, Failed> {
    let deadline = Instant::now() + legacy.timeout;
    let asked = tokio::time::timeout_at(deadline, ask(legacy, b, close)).await;
    let (mut up, a) = match asked {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => return Err(Failed::Before(e)),
        Err(_) => return Err(Failed::Before(ProxyError::Timeout)),
    };
    b.answer.advance(a.len);
    let mut reuse = a.reuse;
    match a.framing {
        Framing::None => {
            reuse &= b.answer.is_empty();
            send(client, &b.out).await?;
        }
        Framing::Length(n) => {
            let first = b.answer.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            b.out.extend_from_slice(&b.answer[..first]);
            reuse &= first == b.answer.len();
            send(client, &b.out).await?;
            let mut left = n - first as u64;
            while left > 0 {
                b.answer.clear();
                let got = receive(&mut up, &mut b.answer).await?;
                let take = got.min(usize::try_from(left).unwrap_or(usize::MAX));
                reuse &= take == got;
                send(client, &b.answer[..take]).await?;
                left -= take as u64;
            }
        }
        Framing::Chunked => {
            let mut chunks = Chunks::default();
            loop {
                let end = chunks.feed(&b.answer).map_err(|()| Failed::Midway)?;
                let upto = end.unwrap_or(b.answer.len());
                b.out.extend_from_slice(&b.answer[..upto]);
                send(client, &b.out).await?;
                b.out.clear();
                if end.is_some() {
                    reuse &= upto == b.answer.len();
                    break;
                }
                b.answer.clear();
                receive(&mut up, &mut b.answer).await?;
            }
        }
        Framing::UntilClose => {
            b.out.extend_from_slice(&b.answer);
            send(client, &b.out).await?;
            loop {
                b.answer.clear();
                match fill(&mut up, &mut b.answer).await {
                    Ok(0) => break,
                    Ok(_) => send(client, &b.answer).await?,
                    Err(_) => return Err(Failed::Midway),
                }
            }
            reuse = false;
        }
    }
    b.answer.clear();
    if reuse {
        checkin(up, legacy.idle);
    }
    Ok(if a.close {
        Done::Close
    } else {
        Done::KeepAlive
    })
}

async fn send(client: &mut TcpStream, bytes: &[u8]) -> Result<(), Failed> {
    client.write_all(bytes).await.map_err(|_| Failed::Midway)
}

/// More of a body from legacy; its end before the framing's is a failure.
async fn receive(up: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failed> {
    match fill(up, buf).await {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Failed::Midway),
    }
}

/// Sends the request on a pooled legacy connection (or a new one) and reads the answer's head,
/// past any `1xx`. A pooled connection that legacy closed meanwhile (nothing comes back) is
/// dropped and the request sent again once on a new connection, as hyper's client does: a
/// `GET` that got no answer can be asked again.
async fn ask(
    legacy: &Legacy,
    b: &mut Buffers,
    client_close: bool,
) -> Result<(TcpStream, Answer), ProxyError> {
    let mut pooled = checkout(legacy.idle);
    'attempt: loop {
        let reused = pooled.is_some();
        let mut up = match pooled.take() {
            Some(s) => s,
            None => connect(legacy).await?,
        };
        b.answer.clear();
        if up.write_all(&b.ask).await.is_err() {
            if reused {
                continue 'attempt;
            }
            return Err(ProxyError::Upstream);
        }
        let mut heard = false;
        loop {
            if !b.answer.is_empty() {
                match answer(&b.answer, &mut b.out, client_close) {
                    Parsed::Final(a) => return Ok((up, a)),
                    Parsed::Informational(n) => {
                        b.answer.advance(n);
                        continue;
                    }
                    Parsed::Bad => return Err(ProxyError::Upstream),
                    Parsed::Partial if b.answer.len() >= MAX_HEAD => {
                        return Err(ProxyError::Upstream);
                    }
                    Parsed::Partial => {}
                }
            }
            match fill(&mut up, &mut b.answer).await {
                Ok(n) if n > 0 => heard = true,
                _ if reused && !heard => continue 'attempt,
                _ => return Err(ProxyError::Upstream),
            }
        }
    }
}

async fn connect(legacy: &Legacy) -> Result<TcpStream, ProxyError> {
    let s = TcpStream::connect(&legacy.addr).await.map_err(|e| {
        tracing::debug!(error = %e, addr = %legacy.addr, "connecting to legacy failed");
        ProxyError::Upstream
    })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// What the bytes from legacy hold.
enum Parsed {
    Partial,
    Bad,
    /// A `1xx` head of this many bytes: skipped, as hyper's client skips it.
    Informational(usize),
    Final(Answer),
}

/// Parses legacy's answer head and writes the client's into `out`: the same status, reason and
/// headers, without hop-by-hop headers, with `Date` when legacy sent none (RFC 9110 section
/// 6.6.1), and the framing the body is passed on in.
fn answer(buf: &[u8], out: &mut BytesMut, client_close: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let code = resp.code.unwrap_or(0);
    if (100..200).contains(&code) {
        // 101 answers an upgrade, and none was asked for.
        return if code == 101 {
            Parsed::Bad
        } else {
            Parsed::Informational(len)
        };
    }
    let mut length: Option<u64> = None;
    let (mut encoded, mut chunked, mut closes, mut dated) = (false, false, false, false);
    let mut named: Vec<&[u8]> = Vec::new();
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            let Some(v) = std::str::from_utf8(h.value.trim_ascii())
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return Parsed::Bad;
            };
            if length.is_some_and(|l| l != v) {
                return Parsed::Bad;
            }
            length = Some(v);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            chunked = h
                .value
                .rsplit(|&c| c == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if n.eq_ignore_ascii_case(b"connection") {
            closes |= connection_options(h.value, &mut named);
        } else if n.eq_ignore_ascii_case(b"date") {
            dated = true;
        }
    }
    let framing = if code == 204 || code == 304 {
        Framing::None
    } else if encoded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    // A length beside an encoding is how requests get smuggled: answer it, then drop the
    // connection rather than trust where it says the next answer starts.
    let reuse = resp.version == Some(1)
        && !closes
        && !(encoded && length.is_some())
        && framing != Framing::UntilClose;
    let close = client_close || framing == Framing::UntilClose;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(code).as_slice());
    out.extend_from_slice(b" ");
    match resp.reason.filter(|r| !r.is_empty()) {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        None => out.extend_from_slice(
            http::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
                .as_bytes(),
        ),
    }
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let n = h.name.as_bytes();
        if hop_by_hop(n, &named)
            || (n.eq_ignore_ascii_case(b"content-length") && !matches!(framing, Framing::Length(_)))
        {
            continue;
        }
        put_header(out, n, h.value);
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        put_date(out);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Parsed::Final(Answer {
        len,
        framing,
        reuse,
        close,
    })
}

/// A three-digit status code as text (httparse only accepts three digits).
fn itoa3(code: u16) -> [u8; 3] {
    [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]
}

/// The answer when legacy could not be asked, as [`crate::forward::failure`] renders it.
fn failure(out: &mut BytesMut, e: &ProxyError, close: bool) {
    let status = e.status();
    let body = e.body();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    put_date(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

thread_local! {
    /// `Date` for the current second, formatted once per second per thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    /// This serving thread's idle connections to legacy, most recently used last.
    static IDLE: RefCell<VecDeque<(TcpStream, std::time::Instant)>> =
        const { RefCell::new(VecDeque::new()) };
}

fn put_date(out: &mut BytesMut) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(d.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// The most recently used idle connection that is not too old.
fn checkout(max_idle: Duration) -> Option<TcpStream> {
    IDLE.with(|p| {
        let mut p = p.borrow_mut();
        while let Some((s, since)) = p.pop_back() {
            if since.elapsed() < max_idle {
                return Some(s);
            }
        }
        None
    })
}

fn checkin(s: TcpStream, max_idle: Duration) {
    IDLE.with(|p| {
        let mut p = p.borrow_mut();
        while p
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= max_idle)
            || p.len() >= MAX_IDLE
        {
            p.pop_front();
        }
        p.push_back((s, std::time::Instant::now()));
    });
}

/// Closes this thread's idle legacy connections (a serving thread that is stopping).
pub(crate) fn close_idle() {
    IDLE.with(|p| p.borrow_mut().clear());
}

/// Finds where a chunked body ends (RFC 9112 section 7.1), as it streams past.
#[derive(Default)]
struct Chunks {
    state: Chunk,
}

#[derive(Default, Clone, Copy)]
enum Chunk {
    /// The hex size of the next chunk: its value so far and how many digits.
    #[default]
    Start,
    Size(u64, u8),
    /// Chunk extensions, up to the line's end.
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the empty line that ends the body).
    TrailerStart,
    Trailer,
    EndLf,
}

impl Chunks {
    /// Feeds the next bytes: `Some(n)` when the body ends after the first `n` of them, `Err`
    /// when they are not chunked encoding.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            self.state = match self.state {
                Chunk::Start => Chunk::Size(u64::from(hex(c)?), 1),
                Chunk::Size(n, digits) => match c {
                    b'\r' => Chunk::SizeLf(n),
                    b';' | b' ' | b'\t' => Chunk::Extension(n),
                    _ if digits < 16 => Chunk::Size((n << 4) | u64::from(hex(c)?), digits + 1),
                    _ => return Err(()),
                },
                Chunk::Extension(n) => match c {
                    b'\r' => Chunk::SizeLf(n),
                    b'\n' => return Err(()),
                    _ => Chunk::Extension(n),
                },
                Chunk::SizeLf(n) => match c {
                    b'\n' if n == 0 => Chunk::TrailerStart,
                    b'\n' => Chunk::Data(n),
                    _ => return Err(()),
                },
                Chunk::Data(n) => {
                    let take = (bytes.len() - i).min(usize::try_from(n).unwrap_or(usize::MAX));
                    i += take;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left)
                    };
                    continue;
                }
                Chunk::DataCr if c == b'\r' => Chunk::DataLf,
                Chunk::DataLf if c == b'\n' => Chunk::Start,
                Chunk::DataCr | Chunk::DataLf => return Err(()),
                Chunk::TrailerStart => match c {
                    b'\r' => Chunk::EndLf,
                    _ => Chunk::Trailer,
                },
                Chunk::Trailer => match c {
                    b'\n' => Chunk::TrailerStart,
                    _ => Chunk::Trailer,
                },
                Chunk::EndLf if c == b'\n' => return Ok(Some(i + 1)),
                Chunk::EndLf => return Err(()),
            };
            i += 1;
        }
        Ok(None)
    }
}

fn hex(c: u8) -> Result<u8, ()> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(()),
    }
}

/// A client connection handed to hyper, with the bytes this path had read but not handled.
pub(crate) struct Rewind {
    read: Bytes,
    io: TcpStream,
}

impl Rewind {
    /// A connection nothing has been read from.
    pub(crate) fn new(io: TcpStream) -> Rewind {
        Rewind {
            read: Bytes::new(),
            io,
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read.is_empty() {
            let n = this.read.len().min(buf.remaining());
            buf.put_slice(&this.read.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(body: &[u8], pieces: usize) -> Result<Option<usize>, ()> {
        let mut c = Chunks::default();
        let step = body.len().div_ceil(pieces).max(1);
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = c.feed(piece)? {
                return Ok(Some(at + n));
            }
            at += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_bodies_end_where_the_last_chunk_and_trailers_end_however_they_are_split() {
        let body =
            b"5\r\nhello\r\n1A;name=v\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-sum: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for pieces in 1..body.len() {
            assert_eq!(end_of(body, pieces), Ok(Some(end)), "{pieces} pieces");
        }
        assert_eq!(end_of(b"0\r\n\r\n", 1), Ok(Some(5)));
        assert_eq!(end_of(b"5\r\nhel", 1), Ok(None), "not ended yet");
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"11111111111111111\r\n",
            b"5\n",
        ] {
            assert_eq!(
                end_of(bad, 1),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn hop_by_hop_names_include_proxy_ones_and_those_connection_names() {
        for h in [
            "Connection",
            "keep-alive",
            "TE",
            "Transfer-Encoding",
            "proxy-authorization",
        ] {
            assert!(hop_by_hop(h.as_bytes(), &[]), "{h}");
        }
        assert!(hop_by_hop(b"X-Private", &[b"x-private"]));
        for h in ["x-request-id", "accept", "proxy"] {
            assert!(!hop_by_hop(h.as_bytes(), &[]), "{h}");
        }
    }

    fn head(raw: &str) -> (String, Option<(Framing, bool, bool)>) {
        let mut out = BytesMut::new();
        match answer(raw.as_bytes(), &mut out, false) {
            Parsed::Final(a) => (
                String::from_utf8(out.to_vec()).unwrap(),
                Some((a.framing, a.reuse, a.close)),
            ),
            _ => (String::new(), None),
        }
    }

    #[test]
    fn answer_heads_keep_end_to_end_headers_and_say_how_the_body_ends() {
        let (h, f) = head(
            "HTTP/1.1 200 OK\r\nDate: x\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\n\
             Content-Length: 2\r\nx-request-id: 7\r\n\r\nok",
        );
        assert_eq!(
            h,
            "HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 2\r\nx-request-id: 7\r\n\r\n"
        );
        assert!(matches!(f, Some((Framing::Length(2), true, false))));

        let (h, f) = head("HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\nDate: x\r\n\r\n");
        assert_eq!(
            h,
            "HTTP/1.1 404 Not Found\r\nDate: x\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert!(matches!(f, Some((Framing::Chunked, true, false))));

        let (h, f) = head("HTTP/1.0 200 OK\r\nDate: x\r\n\r\n");
        assert_eq!(h, "HTTP/1.1 200 OK\r\nDate: x\r\nconnection: close\r\n\r\n");
        assert!(matches!(f, Some((Framing::UntilClose, false, true))));

        let (h, f) = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert!(h.contains("\r\ndate: "), "a date is added: {h}");
        assert!(matches!(f, Some((Framing::Length(3), true, false))));

        let (_, f) = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 30\r\nDate: x\r\n\r\n");
        assert!(matches!(f, Some((Framing::None, true, false))));

        let (_, f) = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nDate: x\r\n\r\n",
        );
        assert!(
            matches!(f, Some((Framing::Chunked, false, false))),
            "chunked wins, and the connection is not reused"
        );
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
                .1
                .is_none()
        );
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
                .1
                .is_none()
        );
    }
}
