//! Starting the mismatch store's subscriber and the admin listener beside a running proxy (or,
//! for `strangler admin`, the listener alone).

use std::sync::Arc;

use strangler_core::Config;
use strangler_proxy::Proxy;
use strangler_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::{AdminState, Tokens};
use crate::error::{Error, Result};
use crate::privacy::{Redactor, load_key};
use crate::recorder;
use crate::store::MismatchStore;

/// The mismatch store on `store` with the `[mismatches]` settings.
pub fn mismatch_store(config: &Config, store: Store) -> MismatchStore {
    MismatchStore::new(store, config.mismatches.clone())
}

/// Subscribes the mismatch store to `proxy`'s comparison feed (when `[mismatches] enabled`).
pub fn start_recorder(
    config: &Config,
    store: Store,
    proxy: &Proxy,
    cancel: CancellationToken,
) -> Result<Option<JoinHandle<()>>> {
    if !config.mismatches.enabled {
        return Ok(None);
    }
    let key = load_key(&config.mismatches, &config.base_dir())?;
    let redactor = Redactor::new(&config.mismatches, key);
    let caps = config.capabilities.iter().map(|c| c.name.clone()).collect();
    Ok(Some(recorder::spawn(
        mismatch_store(config, store),
        redactor,
        caps,
        proxy.observe(),
        cancel,
    )))
}

/// Binds the admin listener of `[admin]` (or `listen`), returning its address and the task
/// serving it until `cancel`. `None` when the configuration has no `[admin]` section.
pub async fn start_admin(
    config: &Config,
    store: Store,
    proxy: Option<Arc<Proxy>>,
    listen: Option<&str>,
    cancel: CancellationToken,
) -> Result<Option<(std::net::SocketAddr, JoinHandle<()>)>> {
    let Some(admin) = &config.admin else {
        return Ok(None);
    };
    let addr = listen.unwrap_or(&admin.listen).to_owned();
    let listener = TcpListener::bind(&addr).await.map_err(|e| {
        Error::BadRequest(format!(
            "binding the admin listener on {addr} (admin.listen): {e}"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::BadRequest(format!("admin listener on {addr}: {e}")))?;
    let state = AdminState {
        config: Arc::new(config.clone()),
        mismatches: mismatch_store(config, store),
        proxy,
        tokens: Tokens::from_config(admin),
    };
    tracing::info!(listen = %local, tokens = admin.tokens.len(), "admin API and dashboard listening");
    let task = tokio::spawn(
        async move {
            if let Err(e) = crate::api::serve(state, listener, cancel).await {
                tracing::error!(error = %e, "the admin listener stopped");
            }
        }
        .instrument(tracing::info_span!("admin")),
    );
    Ok(Some((local, task)))
}
