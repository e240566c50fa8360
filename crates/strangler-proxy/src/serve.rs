//! Serving clients: one acceptor hands each connection to the least busy of N serving threads.
//!
//! Each serving thread runs a single-threaded runtime with its own upstream connection pool,
//! so a request, its upstream exchange and the answer stay on one thread from first byte to
//! last: no work stealing between workers, no wake-ups across threads, no pool lock shared by
//! every request. It is how nginx's worker processes divide a machine, and it is what the
//! pass-through path needs to keep up with them (docs/BENCHMARKS.md, "Shadow proxy"). Mirror
//! copies still run on the mirror lane ([`crate::lane`]), and the background loops on the
//! caller's runtime. `threads = 0` serves on the caller's (work-stealing) runtime instead.

use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::fast;
use crate::forward::Client;
use crate::state::Proxy;

thread_local! {
    /// The upstream client of the serving thread this is, if it is one.
    static LOCAL_CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// The calling serving thread's own upstream client; `None` on any other thread.
pub(crate) fn local_client() -> Option<Client> {
    LOCAL_CLIENT.with(|c| c.borrow().clone())
}

/// One serving thread as the acceptor sees it.
struct Worker {
    conns: mpsc::UnboundedSender<std::net::TcpStream>,
    open: Arc<Open>,
    done: oneshot::Receiver<()>,
}

/// The client connections a serving thread holds: read by the acceptor to pick a thread, and
/// shown to operators as `strangler_proxy_client_connections{thread}`.
struct Open {
    count: AtomicUsize,
    gauge: metrics::Gauge,
}

impl Open {
    fn new(thread: usize) -> Open {
        Open {
            count: AtomicUsize::new(0),
            gauge: metrics::gauge!("strangler_proxy_client_connections", "thread" => thread.to_string()),
        }
    }

    fn get(&self) -> usize {
        self.count.load(Relaxed)
    }

    fn opened(&self) {
        self.count.fetch_add(1, Relaxed);
        self.gauge.increment(1.0);
    }

    fn closed(&self) {
        self.count.fetch_sub(1, Relaxed);
        self.gauge.decrement(1.0);
    }
}

/// Serves `listener` on `threads` serving threads until the proxy's cancellation token fires,
/// then closes every connection gracefully, waiting at most `grace` for answers in flight.
pub(crate) async fn on_threads(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    threads: usize,
    grace: Duration,
) -> crate::Result<()> {
    let cancel = proxy.cancel.clone();
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        workers.push(start_worker(proxy.clone(), i, grace)?);
    }
    let mut next = 0usize;
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::error!(error = %e, "accepting a client connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "handing a client connection over failed");
                continue;
            }
        };
        // Least open connections, ties broken round robin so a burst spreads evenly.
        let n = workers.len();
        let pick = (0..n)
            .map(|k| (next + k) % n)
            .min_by_key(|&w| workers[w].open.get())
            .unwrap_or(0);
        next = (pick + 1) % n;
        let w = &workers[pick];
        w.open.opened();
        if w.conns.send(stream).is_err() {
            w.open.closed();
            metrics::counter!("strangler_proxy_connections_refused_total").increment(1);
            tracing::error!(
                thread = pick,
                "a serving thread has stopped; connection closed"
            );
        }
    }
    drop(listener);
    let done: Vec<_> = workers.into_iter().map(|w| w.done).collect();
    for d in done {
        let _ = d.await;
    }
    Ok(())
}

fn start_worker(proxy: Arc<Proxy>, index: usize, grace: Duration) -> crate::Result<Worker> {
    let client = proxy.settings.upstream_client()?;
    let fast = fast::Legacy::of(&proxy.settings).map(Arc::new);
    let (conns, rx) = mpsc::unbounded_channel();
    let (done_tx, done) = oneshot::channel();
    let open = Arc::new(Open::new(index));
    let counted = open.clone();
    // Sockets and timers only: no signal or child-process driver to poll on every park.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| crate::Error::ServeThread {
            reason: e.to_string(),
        })?;
    std::thread::Builder::new()
        .name(format!("strangler-serve-{index}"))
        .spawn(move || {
            LOCAL_CLIENT.with(|c| *c.borrow_mut() = Some(client));
            let span = tracing::info_span!("serve", thread = index);
            runtime.block_on(serve_connections(proxy, rx, counted, grace, fast).instrument(span));
            fast::close_idle();
            // Connections still open after the grace period are cut here.
            runtime.shutdown_timeout(Duration::from_millis(100));
            LOCAL_CLIENT.with(|c| c.borrow_mut().take());
            let _ = done_tx.send(());
        })
        .map_err(|e| crate::Error::ServeThread {
            reason: e.to_string(),
        })?;
    Ok(Worker { conns, open, done })
}

/// A serving thread's loop: serve each connection handed over, until the acceptor stops.
async fn serve_connections(
    proxy: Arc<Proxy>,
    mut conns: mpsc::UnboundedReceiver<std::net::TcpStream>,
    open: Arc<Open>,
    grace: Duration,
    fast: Option<Arc<fast::Legacy>>,
) {
    let stop = proxy.cancel.clone();
    let tracker = TaskTracker::new();
    while let Some(stream) = conns.recv().await {
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                open.closed();
                tracing::warn!(error = %e, "taking over a client connection failed");
                continue;
            }
        };
        let (proxy, open, stop, fast) = (proxy.clone(), open.clone(), stop.clone(), fast.clone());
        tracker.spawn(
            async move {
                serve_one(proxy, stream, stop, fast).await;
                open.closed();
            }
            .instrument(tracing::debug_span!("client_connection")),
        );
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "client connections still open after the grace period; closing them"
        );
    }
}

/// One client connection: HTTP/1.1 keep-alive or HTTP/2 (prior knowledge), closed gracefully
/// (the answer in flight finishes, then the connection closes) once `stop` fires. With `fast`,
/// plain pass-through `GET`s are forwarded by [`fast`] until a request needs hyper.
async fn serve_one(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    stop: CancellationToken,
    fast: Option<Arc<fast::Legacy>>,
) {
    let io = match fast {
        Some(legacy) => match fast::serve(&proxy, &legacy, stream, &stop).await {
            fast::Outcome::Closed => return,
            fast::Outcome::Hyper(io) => io,
        },
        None => fast::Rewind::new(stream),
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let proxy = proxy.clone();
        async move {
            Ok::<_, Infallible>(crate::handler::handle(State(proxy), req.map(Body::new)).await)
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "client connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Errors of one connection that has gone before it was accepted; the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// One serving thread per core the process may use: what [`Proxy::serve`] starts.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
