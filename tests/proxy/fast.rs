//! Plain pass-through `GET`s forwarded without hyper (`proxy.fast_pass_through`), seen on the
//! wire: a legacy that writes its answers byte by byte, and clients on raw sockets.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strangler_core::{Config, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Running, start};
use strangler_test_support::{TestDb, sqlite_file};

const BIG: usize = 1_000_000;

/// What legacy answers, by path. `/once` answers as if keeping the connection, then closes it.
fn answer_for(path: &str) -> (Vec<u8>, bool) {
    let close = |s: &str| (s.as_bytes().to_vec(), true);
    let keep = |s: &str| (s.as_bytes().to_vec(), false);
    match path {
        "/len" | "/once" => {
            let (bytes, _) = keep(
                "HTTP/1.1 200 OK\r\nX-Case: Kept\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                 Keep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhello",
            );
            (bytes, path == "/once")
        }
        "/chunked" => keep(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
             5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
        ),
        "/until-close" => close("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"),
        "/no-content" => keep("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
        "/hints" => keep(
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        "/big" => {
            let mut b = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            b.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
            (b, false)
        }
        p if p.starts_with("/orders/") => keep(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"id\":17}",
        ),
        _ => keep("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    }
}

/// A legacy that answers by path (slowly for `/slow`), records every head it receives, and
/// counts its connections.
struct RawLegacy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<usize>>,
}

async fn raw_legacy() -> RawLegacy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let (h, c) = (heads.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            *c.lock().unwrap() += 1;
            tokio::spawn(serve_raw(s, h.clone()));
        }
    });
    RawLegacy {
        addr,
        heads,
        connections,
    }
}

async fn serve_raw(mut s: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut s, &mut buf).await else {
            return;
        };
        let body = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < body {
            if !read_more(&mut s, &mut buf).await {
                return;
            }
        }
        buf.drain(..body);
        let target = head.split(' ').nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or("/").to_owned();
        heads.lock().unwrap().push(head);
        if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let (answer, close) = answer_for(&path);
        // In pieces, so every framing is read across reads.
        for piece in answer.chunks(answer.len().div_ceil(3).max(1)) {
            if s.write_all(piece).await.is_err() {
                return;
            }
            s.flush().await.ok();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if close {
            return;
        }
    }
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 16 * 1024];
    match s.read(&mut tmp).await {
        Ok(n) if n > 0 => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
        _ => false,
    }
}

/// The next head on a connection, as text (`None` once it closes).
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..i + 4].to_vec()).unwrap();
            buf.drain(..i + 4);
            return Some(head);
        }
        if !read_more(s, buf).await {
            return None;
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// One answer from the proxy on a raw connection: its head, and its body as sent (chunks
/// included).
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let head = read_head(s, buf).await.expect("an answer head");
    let status: u16 = head[9..12].parse().unwrap();
    if status == 204 || status == 304 {
        return (head, Vec::new());
    }
    if let Some(n) = header(&head, "content-length") {
        let n: usize = n.parse().unwrap();
        while buf.len() < n {
            assert!(read_more(s, buf).await, "body cut short: {head}");
        }
        let body = buf.drain(..n).collect();
        return (head, body);
    }
    if header(&head, "transfer-encoding") == Some("chunked") {
        loop {
            if let Some(n) = chunked_len(buf) {
                let body = buf.drain(..n).collect();
                return (head, body);
            }
            assert!(read_more(s, buf).await, "chunked body cut short: {head}");
        }
    }
    while read_more(s, buf).await {}
    (head, std::mem::take(buf))
}

/// The length of the chunked body at the start of `buf`, once all of it is there.
fn chunked_len(buf: &[u8]) -> Option<usize> {
    let line = |at: usize| -> Option<usize> {
        buf.get(at..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| at + i + 2)
    };
    let mut at = 0;
    loop {
        let next = line(at)?;
        let size = std::str::from_utf8(&buf[at..next - 2]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            let mut t = next;
            loop {
                let end = line(t)?;
                if end == t + 2 {
                    return Some(end);
                }
                t = end;
            }
        }
        at = next + size + 2;
        if buf.len() < at {
            return None;
        }
    }
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: proxy.example\r\n{extra}\r\n").into_bytes()
}

fn config(legacy: &str, new: &str, extra: &str) -> Config {
    let text = format!(
        r#"[proxy]
legacy_url = "{legacy}"
new_url = "{new}"
mode_poll_ms = 100
stats_flush_ms = 100
upstream_timeout_ms = 1000
{extra}

[[capability]]
name = "orders"
routes = ["GET /orders/{{id}}"]
"#
    );
    Config::parse(&text, Path::new("fast-test.toml")).expect("test configuration is valid")
}

/// A proxy in front of `legacy_url` (its new path too), and the store it keeps its state in.
async fn proxy_for(legacy_url: &str, extra: &str) -> (Running, TestDb) {
    let db = sqlite_file();
    let p = start(&config(legacy_url, legacy_url, extra), &db.url).await;
    (p, db)
}

/// A raw client connection to the proxy, and its read buffer.
async fn connect(p: &Running) -> (TcpStream, Vec<u8>) {
    (TcpStream::connect(p.addr).await.unwrap(), Vec::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_gets_pass_through_whatever_framing_legacy_answers_with() {
    let legacy = raw_legacy().await;
    let url = format!("http://{}", legacy.addr);
    let (p, _db) = proxy_for(&url, "").await;
    let (mut s, mut buf) = connect(&p).await;

    // A length: end-to-end headers kept as legacy spelled them, hop-by-hop ones gone.
    s.write_all(&get(
        "/len?b=2&a=%20x",
        "Connection: keep-alive, X-Private\r\nX-Private: 1\r\nTE: trailers\r\n\
         Proxy-Authorization: Basic eA==\r\nX-End-To-End: yes\r\n",
    ))
    .await
    .unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"hello");
    assert!(head.contains("\r\nX-Case: Kept\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("\r\ndate: "), "{head}");
    for gone in ["x-hop", "keep-alive", "connection"] {
        assert!(
            header(&head, gone).is_none(),
            "{gone} reached the client: {head}"
        );
    }
    let asked = legacy.heads.lock().unwrap()[0].clone();
    assert!(
        asked.starts_with("GET /len?b=2&a=%20x HTTP/1.1\r\n"),
        "{asked}"
    );
    assert_eq!(
        header(&asked, "host"),
        Some(url.trim_start_matches("http://"))
    );
    assert_eq!(header(&asked, "x-end-to-end"), Some("yes"));
    for gone in ["x-private", "te", "proxy-authorization", "connection"] {
        assert!(
            header(&asked, gone).is_none(),
            "{gone} reached legacy: {asked}"
        );
    }

    // Chunks (with an extension and a trailer) pass as they are.
    s.write_all(&get("/chunked", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert_eq!(
        header(&head, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    assert!(header(&head, "trailer").is_none(), "{head}");
    assert_eq!(
        body,
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"
    );

    // No body; a 1xx before the answer is skipped.
    s.write_all(&get("/no-content", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n") && body.is_empty());
    s.write_all(&get("/hints", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"ok");

    // A megabyte streams through whole.
    s.write_all(&get("/big", "")).await.unwrap();
    let (_, body) = answer(&mut s, &mut buf).await;
    assert_eq!(body.len(), BIG);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8)
    );

    // Two requests in one write are answered in order.
    let mut two = get("/len", "");
    two.extend(get("/no-content", ""));
    s.write_all(&two).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.1, b"hello");
    assert!(answer(&mut s, &mut buf).await.0.starts_with("HTTP/1.1 204"));

    // Every answer so far came over one legacy connection, kept alive.
    assert_eq!(*legacy.connections.lock().unwrap(), 1);

    // An HTTP/1.0 answer runs to legacy's close: the client connection closes after it.
    s.write_all(&get("/until-close", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"));
    assert_eq!(body, b"to the end");

    // `Connection: close` from the client: answered, then closed.
    let (mut s, mut buf) = connect(&p).await;
    s.write_all(&get("/len", "Connection: close\r\n"))
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert_eq!(body, b"hello");
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(!read_more(&mut s, &mut buf).await, "the connection closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_connection_closed_while_pooled_is_replaced_without_the_client_noticing() {
    let legacy = raw_legacy().await;
    let url = format!("http://{}", legacy.addr);
    let (p, _db) = proxy_for(&url, "").await;
    let (mut s, mut buf) = connect(&p).await;
    for i in 0..3 {
        // `/once` closes legacy's side after answering: the next request finds it closed.
        s.write_all(&get("/once", "")).await.unwrap();
        let (head, body) = answer(&mut s, &mut buf).await;
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n"),
            "request {i}: {head}"
        );
        assert_eq!(body, b"hello");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*legacy.connections.lock().unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_slow_legacy_gets_502_or_504_and_the_connection_stays_open() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (p, _db) = proxy_for(&nobody, "").await;
    let (mut s, mut buf) = connect(&p).await;
    for _ in 0..2 {
        s.write_all(&get("/len", "")).await.unwrap();
        let (head, body) = answer(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
        assert_eq!(body, b"upstream unavailable\n");
    }

    let legacy = raw_legacy().await;
    let url = format!("http://{}", legacy.addr);
    let (p, _db) = proxy_for(&url, "").await;
    let (mut s, mut buf) = connect(&p).await;
    s.write_all(&get("/slow", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(
        head.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{head}"
    );
    assert_eq!(body, b"upstream timed out\n");
    s.write_all(&get("/len", "")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.1, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_pass_through_cannot_forward_alone_hands_the_connection_to_hyper() {
    let legacy = raw_legacy().await;
    let url = format!("http://{}", legacy.addr);
    let (p, _db) = proxy_for(&url, "").await;
    p.set("orders", Mode::Shadow, false).await.unwrap();
    let (mut s, mut buf) = connect(&p).await;
    // Forwarded here: legacy's spelling of header names is kept.
    s.write_all(&get("/len", "")).await.unwrap();
    assert!(answer(&mut s, &mut buf).await.0.contains("X-Case: Kept"));
    // A body, then a compared capability, then a plain GET again, on the same connection: hyper
    // serves them all from the first (and writes header names in lower case).
    s.write_all(b"POST /len HTTP/1.1\r\nHost: p\r\nContent-Length: 4\r\n\r\nbody")
        .await
        .unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.contains("x-case: Kept"), "{head}");
    assert_eq!(body, b"hello");
    s.write_all(&get("/orders/17", "")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.1, b"{\"id\":17}");
    s.write_all(&get("/len", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.contains("x-case: Kept"), "{head}");
    assert_eq!(body, b"hello");
    p.mirrors_done("orders").await;
    assert_eq!(
        p.status("orders").counters.matches,
        1,
        "the shadow GET was compared"
    );

    // A compared GET as a connection's first request goes to hyper at once; HTTP/1.0 too.
    let (mut s, mut buf) = connect(&p).await;
    s.write_all(&get("/orders/17", "")).await.unwrap();
    assert_eq!(answer(&mut s, &mut buf).await.1, b"{\"id\":17}");
    let (mut s, mut buf) = connect(&p).await;
    s.write_all(b"GET /len HTTP/1.0\r\n\r\n").await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.contains("x-case: Kept"), "{head}");
    assert_eq!(body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_off_every_request_goes_through_hyper() {
    let legacy = raw_legacy().await;
    let url = format!("http://{}", legacy.addr);
    let (p, _db) = proxy_for(&url, "fast_pass_through = false").await;
    let (mut s, mut buf) = connect(&p).await;
    s.write_all(&get("/len", "")).await.unwrap();
    let (head, body) = answer(&mut s, &mut buf).await;
    assert!(head.contains("x-case: Kept"), "{head}");
    assert_eq!(body, b"hello");
}
