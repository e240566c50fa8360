//! Where the demo keeps its state and carries its events: SQLite files and the built-in log by
//! default, or PostgreSQL schemas and Kafka topics the demo creates for itself.

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use sqlx::postgres::PgPoolOptions;
use strangler_store::redact_url;

use super::{DemoError, Step};
use crate::legacy::LegacyPool;

/// PostgreSQL schemas the demo owns (dropped and created again on every run, as the folder is).
pub const PG_SCHEMAS: [&str; 3] = [
    "strangler_demo_legacy",
    "strangler_demo_control",
    "strangler_demo_read",
];

/// Partitions of the demo's topic, on either bus: enough to show per-partition replay offsets.
pub const PARTITIONS: u32 = 4;

/// Resolved locations of everything the demo writes to.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The legacy database.
    pub legacy_url: String,
    /// strangler's control store.
    pub control_url: String,
    /// The read store.
    pub read_url: String,
    /// The outbox table as the relay names it.
    pub outbox_table: String,
    /// Its dead-letter table.
    pub dead_letter_table: String,
    /// The relay's topic template.
    pub topic_template: String,
    /// The topic the projection consumes (the template with `order`).
    pub topic: String,
    /// Kafka brokers, or `None` for the built-in log.
    pub kafka: Option<String>,
    /// Kafka consumer group prefix.
    pub group_prefix: String,
}

impl Wired {
    /// One line per part, passwords removed, for the demo's opening lines.
    pub fn describe(&self) -> Vec<String> {
        let bus = match &self.kafka {
            None => format!("built-in log, topic {}", self.topic),
            Some(b) => format!("Kafka at {b}, topic {}", self.topic),
        };
        vec![
            format!("  legacy DB {}", redact_url(&self.legacy_url)),
            format!("  control   {}", redact_url(&self.control_url)),
            format!("  read      {}", redact_url(&self.read_url)),
            format!("  bus       {bus}"),
        ]
    }

    /// Opens the legacy database's pool.
    pub async fn legacy_pool(&self) -> Result<LegacyPool, DemoError> {
        if self.legacy_url.starts_with("sqlite:") {
            Ok(strangler_store::connect_sqlite(&self.legacy_url)
                .await
                .step("opening the legacy database")?
                .into())
        } else {
            Ok(PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&self.legacy_url)
                .await
                .step("opening the legacy database")?
                .into())
        }
    }
}

/// Prepares the stores and the bus: files in `dir`, or fresh schemas in `postgres`; the built-in
/// log, or a topic of this run's own on `kafka`.
pub async fn wire(
    dir: &Path,
    postgres: Option<&str>,
    kafka: Option<&str>,
) -> Result<Wired, DemoError> {
    // Kafka topics cannot be emptied in place, so every run gets names of its own.
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (topic_template, group_prefix) = match kafka {
        None => (
            "outbox.event.{aggregatetype}".to_string(),
            "strangler".to_string(),
        ),
        Some(_) => (
            format!("strangler-demo-{run}.{{aggregatetype}}"),
            format!("strangler-demo-{run}"),
        ),
    };
    let topic = topic_template.replace("{aggregatetype}", "order");
    let (legacy_url, control_url, read_url, outbox_table, dead_letter_table) = match postgres {
        None => {
            let d = dir.display();
            (
                format!("sqlite://{d}/legacy.db"),
                format!("sqlite://{d}/control.db"),
                format!("sqlite://{d}/read.db"),
                "outbox".to_string(),
                "outbox_dead_letter".to_string(),
            )
        }
        Some(url) => {
            fresh_schemas(url).await?;
            let [legacy, control, read] = PG_SCHEMAS;
            (
                with_search_path(url, legacy)?,
                with_search_path(url, control)?,
                with_search_path(url, read)?,
                // Qualified, so the relay's advisory lock is not shared with another `outbox`.
                format!("{legacy}.outbox"),
                format!("{legacy}.outbox_dead_letter"),
            )
        }
    };
    if let Some(brokers) = kafka {
        create_topic(brokers, &topic).await?;
    }
    Ok(Wired {
        legacy_url,
        control_url,
        read_url,
        outbox_table,
        dead_letter_table,
        topic_template,
        topic,
        kafka: kafka.map(str::to_string),
        group_prefix,
    })
}

/// Checks a `--postgres` value before anything connects, so a typo gets a clear message.
pub fn check_postgres_url(url: &str) -> Result<(), DemoError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(DemoError::msg(format!(
            "--postgres `{}` is not a PostgreSQL URL: write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            redact_url(url)
        )));
    }
    Ok(())
}

/// Checks a `--kafka` value: a comma-separated list of host:port.
pub fn check_brokers(brokers: &str) -> Result<(), DemoError> {
    for b in brokers.split(',') {
        let b = b.trim();
        let ok = b
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(DemoError::msg(format!(
                "--kafka broker `{b}` is not host:port: write brokers as host:port[,host:port...], for example localhost:9092"
            )));
        }
    }
    Ok(())
}

/// Drops and creates the demo's schemas in the database `url` names.
async fn fresh_schemas(url: &str) -> Result<(), DemoError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| {
            DemoError::msg(format!(
                "cannot connect to --postgres {}: {e}",
                redact_url(url)
            ))
        })?;
    for schema in PG_SCHEMAS {
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .execute(&pool)
        .await
        .map_err(|e| {
            DemoError::msg(format!(
                "cannot create schema {schema} in {}: {e} (the demo needs CREATE on the database)",
                redact_url(url)
            ))
        })?;
    }
    pool.close().await;
    Ok(())
}

/// `url` with `search_path` set to `schema`, through libpq's `options` parameter.
fn with_search_path(url: &str, schema: &str) -> Result<String, DemoError> {
    let mut u = url::Url::parse(url).map_err(|e| {
        DemoError::msg(format!(
            "--postgres `{}` is not a URL: {e}",
            redact_url(url)
        ))
    })?;
    u.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    Ok(u.to_string())
}

/// Creates `topic` with [`PARTITIONS`] partitions through Kafka's admin API.
async fn create_topic(brokers: &str, topic: &str) -> Result<(), DemoError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .step("creating a Kafka admin client")?;
    let new = NewTopic::new(topic, PARTITIONS as i32, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(15))),
        )
        .await
        .map_err(|e| {
            DemoError::msg(format!(
                "cannot create topic {topic} on --kafka {brokers}: {e} (is the broker up?)"
            ))
        })?;
    for r in results {
        if let Err((t, code)) = r
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(DemoError::msg(format!(
                "the broker refused to create topic {t}: {code}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_is_added_as_an_encoded_option() {
        let u = with_search_path("postgres://u:p@h:5432/db?sslmode=disable", "s1").unwrap();
        assert_eq!(
            u,
            "postgres://u:p@h:5432/db?sslmode=disable&options=-c+search_path%3Ds1"
        );
        let opts: sqlx::postgres::PgConnectOptions = u.parse().unwrap();
        assert_eq!(opts.get_options(), Some("-c search_path=s1"));
    }

    #[test]
    fn bad_flags_are_named() {
        let e = check_postgres_url("mysql://x").unwrap_err().to_string();
        assert!(
            e.contains("--postgres") && e.contains("postgres://USER"),
            "{e}"
        );
        let e = check_brokers("localhost:9092,broker")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`broker`") && e.contains("host:port"), "{e}");
        check_brokers("a:1, b:2").unwrap();
    }
}
