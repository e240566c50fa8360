//! Forwarding to upstreams: a pooled keep-alive HTTP/1.1 client (in clear or over TLS), hop-by-hop header removal
//! (RFC 9110 section 7.6.1), bounded body collection, and a tee that copies a streamed body (up
//! to a cap) for comparison while the client receives it unchanged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Uri, Version};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{
    CaptureConnection, Connected, Connection, HttpConnector, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use strangler_core::config::ProxyConfig;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::error::ProxyError;

/// The upstream client: pooled keep-alive connections, in clear or over TLS, shared by every
/// request.
pub type Client = HyperClient<EarlyAnswerConnector, Body>;

/// Builds the upstream client. `https://` upstreams are verified against the CAs in `ca_pem`
/// (PEM), or against the system's trust store without it; `needs_tls` says whether any
/// upstream is `https://` (without one, no trust store is read and no TLS is ever spoken).
pub fn client(
    cfg: &ProxyConfig,
    ca_pem: Option<&[u8]>,
    needs_tls: bool,
) -> Result<Client, TlsError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_millis(cfg.upstream_timeout_ms)));
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| TlsError(format!("reading a certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("a CA certificate was refused: {e}")))?;
            }
            if roots.is_empty() {
                return Err(TlsError("the CA file holds no certificate".into()));
            }
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
        // Reading the system's trust store costs milliseconds: only when TLS may be spoken.
        None if needs_tls => builder
            .with_provider_and_native_roots(provider)
            .map_err(|e| TlsError(format!("loading the system's trust store: {e}")))?,
        None => builder.with_tls_config(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    };
    let https = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_millis(cfg.pool_idle_timeout_ms))
        .build(EarlyAnswerConnector(https)))
}

/// Connects like the HTTPS-or-HTTP connector it wraps, and hands out [`EarlyAnswer`] transports.
#[derive(Clone)]
pub struct EarlyAnswerConnector(HttpsConnector<HttpConnector>);

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for EarlyAnswerConnector {
    type Response = EarlyAnswer<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            Ok(EarlyAnswer {
                inner: connecting.await?,
                peer: Peer::default(),
            })
        })
    }
}

/// An upstream transport that keeps reading after the upstream stopped reading.
///
/// HTTP/1.1 lets a server answer before it has read the request body, and close (RFC 9112
/// section 9.6); a server that closes with unread bytes makes its kernel reset the connection,
/// and the rest of the body can no longer be written. hyper then fails the whole exchange with
/// the write error, although the answer may be waiting in the receive buffer. Here a write that
/// fails because the peer reset or closed the connection (and every write after it) is
/// discarded instead, so hyper goes on to read the answer: the client gets it whenever the
/// upstream produced one and the kernel kept it, and a connection with nothing to read still
/// fails, at the read. The connection is poisoned (never reused) once a write was discarded.
pub struct EarlyAnswer<T> {
    inner: T,
    peer: Peer,
}

/// What a connection's transport and the request using it share: whether a write was discarded,
/// and the request's handle to poison the pooled connection.
#[derive(Clone, Default)]
struct Peer(Arc<PeerState>);

#[derive(Default)]
struct PeerState {
    // Read on every write: kept out of the lock.
    stopped_reading: AtomicBool,
    capture: std::sync::Mutex<Option<CaptureConnection>>,
}

impl Peer {
    fn capture(&self) -> std::sync::MutexGuard<'_, Option<CaptureConnection>> {
        self.0.capture.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped_reading(&self) -> bool {
        self.0.stopped_reading.load(Ordering::Acquire)
    }

    /// The peer reset or closed: from now on, writes are discarded.
    fn stop(&self, e: &std::io::Error) {
        let capture = self.capture();
        if !self.0.stopped_reading.swap(true, Ordering::AcqRel) {
            tracing::debug!(error = %e, "upstream stopped reading the request; reading its answer");
        }
        poison(capture.as_ref());
    }

    /// The request now using the connection.
    fn attach(&self, capture: CaptureConnection) {
        let mut slot = self.capture();
        if self.stopped_reading() {
            poison(Some(&capture));
        }
        *slot = Some(capture);
    }
}

fn poison(capture: Option<&CaptureConnection>) {
    if let Some(c) = capture
        && let Some(connected) = c.connection_metadata().as_ref()
    {
        connected.poison();
    }
}

/// Whether a write error means the peer no longer reads (rather than a local failure).
fn peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
    )
}

impl<T: Connection> Connection for EarlyAnswer<T> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.peer.clone())
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for EarlyAnswer<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for EarlyAnswer<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.peer.stopped_reading() {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if peer_gone(&e) => {
                this.peer.stop(&e);
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let all = || bufs.iter().map(|b| b.len()).sum();
        if this.peer.stopped_reading() {
            return Poll::Ready(Ok(all()));
        }
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Err(e)) if peer_gone(&e) => {
                this.peer.stop(&e);
                Poll::Ready(Ok(all()))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.peer.stopped_reading() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(Err(e)) if peer_gone(&e) => {
                this.peer.stop(&e);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.peer.stopped_reading() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Why the TLS side of the upstream client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// Whether a header name (in any case) is hop-by-hop (RFC 9110 section 7.6.1): the fixed list
/// or any `Proxy-*`. Headers a message's `Connection` names are hop-by-hop too; callers add them.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    const FIXED: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    FIXED.iter().any(|f| name.eq_ignore_ascii_case(f))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
}

fn hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop(name.as_str().as_bytes())
}

/// Removes hop-by-hop headers: the fixed list, any `Proxy-*`, and those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than a hashed removal per
    // listed header.
    if !headers.keys().any(hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    let listed: Vec<HeaderName> = headers.keys().filter(|k| hop_by_hop(k)).cloned().collect();
    for n in listed {
        headers.remove(n);
    }
}

/// Readies a client's headers for an upstream: hop-by-hop headers removed, and `Host` removed so
/// the client sets it from the upstream URI.
pub fn upstream_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
}

/// The request to send upstream: same method and headers (hop-by-hop removed, `Host` set by the
/// client from `uri`), HTTP/1.1.
pub fn request(method: &http::Method, headers: &HeaderMap, uri: Uri, body: Body) -> Request<Body> {
    let mut h = headers.clone();
    upstream_headers(&mut h);
    prepared(method.clone(), h, uri, body)
}

/// Like [`request`], with headers already readied by [`upstream_headers`] (no copy, no scan).
pub fn prepared(method: http::Method, headers: HeaderMap, uri: Uri, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req
}

/// Sends a request; times out waiting for the response head after `timeout`.
///
/// A request with a body is tied to its connection's [`EarlyAnswer`] transport, so the
/// connection is poisoned if the upstream answers without reading the whole body.
pub async fn send(
    client: &Client,
    mut req: Request<Body>,
    timeout: Duration,
) -> Result<(Response, Duration), ProxyError> {
    let start = Instant::now();
    let attach = (!req.body().is_end_stream()).then(|| {
        let mut capture = capture_connection(&mut req);
        async move {
            let peer = {
                let connected = capture.wait_for_connection_metadata().await;
                let mut extras = http::Extensions::new();
                if let Some(c) = connected.as_ref() {
                    c.get_extras(&mut extras);
                }
                extras.remove::<Peer>()
            };
            if let Some(peer) = peer {
                peer.attach(capture);
            }
        }
    });
    let sent = async {
        let request = client.request(req);
        let Some(attach) = attach else {
            return request.await;
        };
        // The connection is known once checked out, long before the answer: attach first.
        let mut request = std::pin::pin!(request);
        let mut attach = std::pin::pin!(attach);
        let mut attached = false;
        loop {
            tokio::select! {
                biased;
                () = &mut attach, if !attached => attached = true,
                r = &mut request => return r,
            }
        }
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(resp)) => Ok((resp.map(Body::new), start.elapsed())),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upstream request failed");
            Err(ProxyError::Upstream)
        }
        Err(_) => Err(ProxyError::Timeout),
    }
}

/// Readies an upstream response for the client: hop-by-hop headers removed.
pub fn respond(mut resp: Response) -> Response {
    strip_hop_by_hop(resp.headers_mut());
    resp
}

/// A body read whole, or one too large to keep (its bytes preserved for streaming on).
pub enum Collected {
    /// The whole body, within the cap.
    Full(Bytes),
    /// Over the cap: the body, unchanged, to stream on.
    TooLarge(Body),
}

/// Reads `body` whole if it fits in `cap` bytes. Known-length bodies over the cap are not read.
pub async fn collect_capped(body: Body, cap: usize) -> Result<Collected, axum::Error> {
    if body.size_hint().lower() > cap as u64 {
        return Ok(Collected::TooLarge(body));
    }
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers are not compared
        };
        len += data.len();
        chunks.push(data);
        if len > cap {
            return Ok(Collected::TooLarge(Body::new(Prefixed {
                prefix: chunks.into(),
                rest: body,
            })));
        }
    }
    Ok(Collected::Full(concat(chunks, len)))
}

/// One buffer of `chunks`; a body that came in one chunk is kept as it is, not copied.
fn concat(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() <= 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

/// Chunks already read, then the rest of the body.
struct Prefixed {
    prefix: std::collections::VecDeque<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(chunk) = self.prefix.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// At most this much of a request body is read and discarded after the upstream stopped reading
/// it, and for at most [`DRAIN_TIME`].
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// A client's request body on its way upstream. If the upstream stops reading it (it answered
/// early and closed), the rest is read and discarded in the background, up to [`DRAIN_LIMIT`]:
/// a server that closes a connection with unread bytes makes its kernel reset it, and the reset
/// can destroy the answer before the client has read it. The client gets the upstream's answer
/// and a clean end instead.
pub fn drained(body: Body) -> Body {
    if body.is_end_stream() {
        return body;
    }
    Body::new(Drained(Some(body)))
}

struct Drained(Option<Body>);

impl HttpBody for Drained {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.0.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let drain = async {
                let mut read = 0usize;
                while let Some(Ok(frame)) =
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
                read
            };
            if let Ok(read) = tokio::time::timeout(DRAIN_TIME, drain).await {
                tracing::debug!(
                    read,
                    "discarded the rest of a request body the upstream left unread"
                );
            }
        });
    }
}

/// What a tee captured of a body.
#[derive(Debug)]
pub enum Captured {
    /// The whole body.
    Complete(Bytes),
    /// Larger than the cap; the copy was dropped.
    TooLarge,
    /// The body failed mid-stream.
    Failed,
    /// The client went away before the end.
    Aborted,
}

/// Passes a body through to the client unchanged while keeping a copy up to `cap` bytes, sent
/// on `tx` when the body ends (or why not).
pub struct TeeBody {
    inner: Body,
    // The body's chunks (reference-counted, not copied) and their total length.
    buf: Option<(Vec<Bytes>, usize)>,
    cap: usize,
    tx: Option<oneshot::Sender<Captured>>,
}

impl TeeBody {
    /// Tees `inner`.
    pub fn new(inner: Body, cap: usize) -> (TeeBody, oneshot::Receiver<Captured>) {
        let (tx, rx) = oneshot::channel();
        let tee = TeeBody {
            inner,
            buf: Some((Vec::new(), 0)),
            cap,
            tx: Some(tx),
        };
        (tee, rx)
    }

    fn finish(&mut self, outcome: Captured) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(outcome);
        }
        self.buf = None;
    }

    fn complete(&mut self) {
        let body = self
            .buf
            .take()
            .map(|(chunks, len)| concat(chunks, len))
            .unwrap_or_default();
        self.finish(Captured::Complete(body));
    }
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((chunks, len))) = (frame.data_ref(), this.buf.as_mut()) {
                    if *len + data.len() > this.cap {
                        this.finish(Captured::TooLarge);
                    } else {
                        *len += data.len();
                        chunks.push(data.clone());
                    }
                }
                // The server may stop polling once the body says it is done.
                if this.inner.is_end_stream() && this.tx.is_some() {
                    this.complete();
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Captured::Failed),
            Poll::Ready(None) => {
                if this.tx.is_some() {
                    this.complete();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        if self.tx.is_some() {
            if self.inner.is_end_stream() && self.buf.is_some() {
                self.complete();
            } else {
                self.finish(Captured::Aborted);
            }
        }
    }
}

/// An upstream failure as the client sees it.
pub fn failure(e: ProxyError) -> Response {
    e.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn hop_by_hop_headers_go_and_end_to_end_ones_stay() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("x-request-id", "abc".parse().unwrap());
        h.insert("cache-control", "no-cache".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-request-id", "cache-control"]);
    }

    #[tokio::test]
    async fn the_tee_passes_bytes_through_and_keeps_a_copy() {
        let (tee, rx) = TeeBody::new(Body::from("hello world"), 64);
        let out = Body::new(tee).collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello world");
        match rx.await.unwrap() {
            Captured::Complete(b) => assert_eq!(&b[..], b"hello world"),
            other => panic!("{other:?}"),
        }
        let (tee, rx) = TeeBody::new(Body::from("hello world"), 5);
        let out = Body::new(tee).collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello world", "the client gets everything");
        assert!(matches!(rx.await.unwrap(), Captured::TooLarge));
        let (tee, rx) = TeeBody::new(Body::from("unread"), 64);
        drop(tee);
        assert!(matches!(rx.await.unwrap(), Captured::Aborted));
    }

    #[tokio::test]
    async fn collecting_over_the_cap_keeps_every_byte() {
        match collect_capped(Body::from("0123456789"), 4).await.unwrap() {
            Collected::TooLarge(b) => {
                assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"0123456789")
            }
            Collected::Full(_) => panic!("over the cap"),
        }
        match collect_capped(Body::from("0123"), 4).await.unwrap() {
            Collected::Full(b) => assert_eq!(&b[..], b"0123"),
            Collected::TooLarge(_) => panic!("within the cap"),
        }
    }
}
