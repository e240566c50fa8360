//! Which bus a projection consumes, and the consumers for running and for replaying.

use std::sync::Arc;

use async_trait::async_trait;
use strangler_bus::{Consumer, KafkaConsumer, LogConsumer, StartOffsets};
use strangler_core::config::KafkaConfig;
use strangler_store::Store;

use crate::Result;
use crate::checkpoint;
use crate::projection::Projection;
use crate::replay::{From, Plan, PlanPart};

/// The bus a projector reads.
#[derive(Clone)]
pub enum Source {
    /// The built-in log in strangler's control store.
    Log {
        /// The control store holding `strangler_log`.
        store: Store,
    },
    /// Kafka.
    Kafka {
        /// Brokers and client properties.
        config: KafkaConfig,
        /// Group id prefix; a projection's group is `<prefix>.<name>.v<version>`.
        group_prefix: String,
    },
}

struct NoClaim;

#[async_trait]
impl StartOffsets for NoClaim {
    async fn start_offset(&self, _: &str, _: i32) -> strangler_bus::Result<Option<i64>> {
        Ok(None)
    }
}

fn group(prefix: &str, p: &dyn Projection) -> String {
    format!("{prefix}.{}.v{}", p.name(), p.version())
}

impl Source {
    /// A consumer that follows the bus from the checkpoints (`project run`).
    pub fn subscribe(
        &self,
        p: &dyn Projection,
        starts: Arc<dyn StartOffsets>,
    ) -> Result<Box<dyn Consumer>> {
        Ok(match self {
            Source::Log { store } => Box::new(LogConsumer::new(
                store.clone(),
                p.topics().to_vec(),
                Some(format!("strangler.{}.v{}", p.name(), p.version())),
                starts,
            )),
            Source::Kafka {
                config,
                group_prefix,
            } => Box::new(KafkaConsumer::subscribe(
                &config.brokers,
                &group(group_prefix, p),
                &config.properties,
                p.topics(),
                starts,
            )?),
        })
    }

    /// A consumer of exactly the plan's partitions from the plan's starts (replay, rebuild); the
    /// caller has claimed them already. A projection that deduplicates by a window of offsets
    /// starts that many offsets earlier, to read back the window's ids.
    pub async fn assign(&self, p: &dyn Projection, plan: &Plan) -> Result<Box<dyn Consumer>> {
        let starts: Arc<dyn StartOffsets> = Arc::new(NoClaim);
        let lead = p.settings().dedup_window.unwrap_or(0);
        let parts: Vec<(String, i32, i64)> = plan
            .parts
            .iter()
            .map(|x| {
                let from = crate::window::read_back_from(x.start, lead);
                (x.topic.clone(), x.partition, from)
            })
            .collect();
        Ok(match self {
            Source::Log { store } => {
                Box::new(LogConsumer::assign(store.clone(), parts, starts).await?)
            }
            Source::Kafka {
                config,
                group_prefix,
            } => Box::new(
                KafkaConsumer::assign(
                    &config.brokers,
                    &group(group_prefix, p),
                    &config.properties,
                    &parts,
                    starts,
                )
                .await?,
            ),
        })
    }

    /// Partitions of the projection's topics with their end offsets.
    pub async fn partitions(&self, p: &dyn Projection) -> Result<Vec<(String, i32, i64)>> {
        Ok(match self {
            Source::Log { store } => {
                let mut out = Vec::new();
                for t in p.topics() {
                    for (partition, end) in
                        strangler_bus::log::consumer::partitions(store, t).await?
                    {
                        out.push((t.clone(), partition, end));
                    }
                }
                out
            }
            Source::Kafka {
                config,
                group_prefix,
            } => {
                let c = KafkaConsumer::assign(
                    &config.brokers,
                    &group(group_prefix, p),
                    &config.properties,
                    &[],
                    Arc::new(NoClaim),
                )
                .await?;
                c.partitions(p.topics()).await?
            }
        })
    }

    /// Where a replay starts and ends on every partition. A start is never later than the
    /// partition's current checkpoint, so a replay cannot skip events that were never applied.
    pub async fn plan(&self, store: &Store, p: &dyn Projection, from: From) -> Result<Plan> {
        let parts = self.partitions(p).await?;
        let current: std::collections::HashMap<(String, i32), i64> =
            checkpoint::list(store, Some(p.name()))
                .await?
                .into_iter()
                .filter(|c| c.version == p.version())
                .map(|c| ((c.topic, c.partition), c.next_offset))
                .collect();
        let by_time = match (from, self) {
            (
                From::TimeMs(ms),
                Source::Kafka {
                    config,
                    group_prefix,
                },
            ) => {
                let c = KafkaConsumer::assign(
                    &config.brokers,
                    &group(group_prefix, p),
                    &config.properties,
                    &[],
                    Arc::new(NoClaim),
                )
                .await?;
                let list: Vec<(String, i32)> =
                    parts.iter().map(|(t, q, _)| (t.clone(), *q)).collect();
                c.offsets_for_time(&list, ms)
                    .await?
                    .into_iter()
                    .map(|(t, q, o)| ((t, q), o))
                    .collect()
            }
            (From::TimeMs(ms), Source::Log { store: log }) => {
                let mut m = std::collections::HashMap::new();
                for (t, q, _) in &parts {
                    m.insert(
                        (t.clone(), *q),
                        strangler_bus::log::consumer::offset_for_time(log, t, *q, ms).await?,
                    );
                }
                m
            }
            _ => std::collections::HashMap::new(),
        };
        let mut plan = Plan::default();
        for (topic, partition, end) in parts {
            let key = (topic.clone(), partition);
            let cur = current.get(&key).copied().unwrap_or(0);
            // Never end before what was applied already: a broker whose ListOffsets lags (tansu's
            // memory engine reports 1) must not cut a rebuild short.
            let end = end.max(cur);
            let start = match from {
                From::Rebuild => 0,
                From::Offset(n) => n.clamp(0, end).min(cur),
                From::TimeMs(_) => by_time.get(&key).copied().unwrap_or(end).min(cur),
            };
            plan.parts.push(PlanPart {
                topic,
                partition,
                start,
                end,
            });
        }
        Ok(plan)
    }
}
