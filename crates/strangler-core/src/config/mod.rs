//! The one configuration file (`strangler.toml`): loading, `${ENV}` interpolation and validation.
//!
//! Loading reports every problem at once, each with the file, the key, the line and the fix, so a
//! user fixes a file in one pass. Unknown keys are errors. Each section lives in its own module.

mod admin;
mod bus;
mod capability;
mod contracts;
mod load;
pub mod locate;
mod outbox;
mod projector;
mod proxy;
mod reconcile;
mod store;
mod telemetry;
mod validate;
mod wal;

pub use admin::{
    ALWAYS_SENSITIVE_HEADERS, AdminConfig, AdminRole, AdminToken, MismatchCapabilityConfig,
    MismatchConfig, Redaction,
};
pub use bus::{BusConfig, BusKind, KafkaConfig};
pub use capability::{CapabilityConfig, RouteSpec};
pub use contracts::{
    ContractsConfig, RelayContractPolicy, SchemaRegistryConfig, SubjectNaming, UncoveredPolicy,
};
pub use load::{ConfigError, Problem};
pub use outbox::{
    BadRowPolicy, LegacyConfig, OutboxColumns, OutboxConfig, OutboxRetention, OutboxValue,
};
pub use projector::{
    ClickHouseSinkConfig, ProjectionsConfig, RedisSinkConfig, ServeConfig, SinksConfig,
};
pub use proxy::ProxyConfig;
pub use reconcile::{ReconcileAggregateConfig, ReconcileConfig, ReconcileSide};
pub use store::StoreConfig;
pub use telemetry::{LogFormat, TelemetryConfig};
pub use validate::Validator;
pub use wal::{SnapshotMode, WalConfig};

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A whole deployment: where state lives, where events come from and go, and how reads are served.
///
/// Every section has a default so the smallest file is empty: SQLite and the built-in log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    /// strangler's own state: cutover flags, audit trail, mismatch store, and the built-in log.
    #[serde(default)]
    pub store: StoreConfig,
    /// The legacy database that holds the outbox table (or the tables to capture).
    #[serde(default)]
    pub legacy: Option<LegacyConfig>,
    /// The outbox table contract and the relay's behaviour.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The event bus: Kafka, or the built-in log in the store.
    #[serde(default)]
    pub bus: BusConfig,
    /// Projection definitions and the read store they write to.
    #[serde(default)]
    pub projections: ProjectionsConfig,
    /// The read API over the projections (`strangler serve`).
    #[serde(default)]
    pub serve: Option<ServeConfig>,
    /// The shadow proxy in front of the legacy read API (`strangler proxy`).
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Capabilities: sets of routes that move to the new read path together.
    #[serde(default, rename = "capability")]
    pub capabilities: Vec<CapabilityConfig>,
    /// The authenticated admin API and dashboard.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The mismatch store and its privacy rules.
    #[serde(default)]
    pub mismatches: MismatchConfig,
    /// Logging and metrics.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Table-to-table reconciliations of projections against legacy (`strangler reconcile`).
    #[serde(default)]
    pub reconcile: Vec<ReconcileConfig>,
    /// Aggregate checks of projections kept as groups (a ClickHouse aggregate) against the
    /// legacy database's own `GROUP BY` (`strangler reconcile`).
    #[serde(default)]
    pub reconcile_aggregate: Vec<ReconcileAggregateConfig>,
    /// Event contracts: versioned schemas, validation and upcasting (docs/contracts.md).
    #[serde(default)]
    pub contracts: Option<ContractsConfig>,
    /// Change capture from PostgreSQL logical decoding (`strangler relay --source wal`).
    #[serde(default)]
    pub wal: Option<WalConfig>,

    /// The file this configuration was read from; relative paths inside it resolve from its folder.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Config {
    /// Reads, interpolates and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load::load_file(path)
    }

    /// Parses and validates configuration text; `file` names it in error messages and anchors
    /// relative paths.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        load::load_str(text, file, &|name| std::env::var(name).ok())
    }

    /// The folder relative paths in this configuration resolve from.
    pub fn base_dir(&self) -> PathBuf {
        self.source
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Resolves a path written in the configuration file against the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir().join(path)
        }
    }

    /// The capability with this name.
    pub fn capability(&self, name: &str) -> Option<&CapabilityConfig> {
        self.capabilities.iter().find(|c| c.name == name)
    }

    fn validate(&self, v: &mut Validator) {
        self.store.validate(v);
        if let Some(legacy) = &self.legacy {
            legacy.validate(v);
        }
        self.outbox.validate(v);
        self.bus.validate(v);
        self.projections.validate(v);
        if let Some(serve) = &self.serve {
            serve.validate(v);
        }
        if let Some(proxy) = &self.proxy {
            proxy.validate(v);
        }
        capability::validate_all(&self.capabilities, v);
        if let Some(admin) = &self.admin {
            admin.validate(v);
        }
        self.mismatches.validate(&self.capabilities, v);
        self.telemetry.validate(v);
        reconcile::validate_all(&self.reconcile, &self.reconcile_aggregate, v);
        if let Some(contracts) = &self.contracts {
            contracts.validate(v);
        }
        if let Some(wal) = &self.wal {
            wal.validate(v);
        }
    }
}
