//! The mirror lane: the thread mirror tasks run on, apart from the threads that serve clients.
//!
//! A mirrored copy costs about as much CPU as the client's own request (a second upstream
//! exchange, the buffered answer, the judgement). On the client's worker threads that work would
//! queue in front of clients' requests whenever the machine is busy, and the clients' latency
//! tail would carry it. Here it runs on one thread of its own, with its own upstream connection
//! pool, at a lower scheduling priority (`nice` +10 where the system allows it): when the CPU is
//! contended, the kernel gives it to the client path first, and a mirror that falls behind fills
//! its bounded pool, where further copies are dropped and counted (`pool_full`), never waited for.

use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::forward::{self, Client, TlsError};
use strangler_core::config::ProxyConfig;

/// How much lower than the client path's the mirror thread's priority is (`nice` steps).
pub const NICE: i32 = 10;

/// A thread running a single-threaded runtime for mirror tasks, until this is dropped.
pub struct Lane {
    handle: Handle,
    /// The upstream client of mirror copies: its connections are driven on this lane.
    pub client: Client,
    _stop: oneshot::Sender<()>,
}

impl Lane {
    /// Starts the lane's thread; `client` builds its own upstream pool.
    pub fn start(
        cfg: &ProxyConfig,
        ca_pem: Option<&[u8]>,
        needs_tls: bool,
    ) -> Result<Lane, LaneError> {
        let client = forward::client(cfg, ca_pem, needs_tls).map_err(LaneError::Tls)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("strangler-mirror".into())
            .spawn(move || {
                lower_priority();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        // Runs mirror tasks until the lane is dropped; those still running then
                        // were past the proxy's drain already.
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                        rt.shutdown_timeout(Duration::from_millis(100));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(LaneError::Thread)?;
        let handle = rx
            .recv()
            .map_err(|_| LaneError::Thread(std::io::Error::other("the mirror thread ended")))?
            .map_err(LaneError::Thread)?;
        Ok(Lane {
            handle,
            client,
            _stop: stop,
        })
    }

    /// The runtime mirror tasks are spawned on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// Lowers the calling thread's scheduling priority by [`NICE`] (Linux: per thread). Failing is
/// harmless: the lane still keeps mirror work off the client's threads.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), (now + NICE).min(19)) {
            tracing::debug!(error = %e, "could not lower the mirror thread's priority");
        }
    }
}

/// Why the mirror lane could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    /// The mirror's upstream client (TLS set-up).
    #[error("{0}")]
    Tls(TlsError),
    /// The thread or its runtime.
    #[error("starting the mirror thread: {0}")]
    Thread(std::io::Error),
}
