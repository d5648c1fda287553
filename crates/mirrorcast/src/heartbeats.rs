//! MM2's heartbeat connector for the pairs of clusters that no enabled flow covers
//! ([`HeartbeatPair`]): MM2 writes heartbeats for every pair of its clusters, so that a
//! cluster's `heartbeats` topic, replicated onwards, tells every downstream cluster where its
//! data comes from (`RemoteClusterUtils.upstreamClusters()`, `replicationHops()`). The enabled
//! flows' heartbeats are written by their copiers.
//!
//! Invariant: nothing here holds back a flow; a target that cannot take heartbeats is said once
//! (and once when it works again), and tried again at each interval. A pair's thread that ends
//! by itself (its clients cannot be created, a panic) is shown on the status board (`/readyz`
//! 503) and started again after a backoff.

use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use std::panic::{self, AssertUnwindSafe};

use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::observe::Observability;

use crate::config::{ClientRole, HeartbeatPair};
use crate::health::Health;
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::{client_config, ClientLog};
use crate::offsets::codec::Heartbeat;
use crate::policy::HEARTBEATS_TOPIC;
use crate::shutdown::Shutdown;
use crate::topics::manager::ensure_internal_topic;

/// A heartbeat not acknowledged within this long is given up; the next one replaces it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts one thread per pair; they end at shutdown.
pub fn start(
    pairs: &[HeartbeatPair],
    shutdown: &Shutdown,
    observe: &Observability,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    if !pairs.is_empty() {
        let names: Vec<String> = pairs.iter().map(HeartbeatPair::name).collect();
        info!(
            "heartbeats only (no enabled flow, as MM2's heartbeat connector): {}",
            names.join(", ")
        );
    }
    pairs
        .iter()
        .map(|pair| {
            let (pair, shutdown, observe) = (pair.clone(), shutdown.clone(), observe.clone());
            std::thread::Builder::new()
                .name(format!("heartbeats {}", pair.name()))
                .spawn(move || keep_emitting(&pair, &shutdown, &observe))
        })
        .collect()
}

/// Runs [`emit`] until shutdown, again after a backoff whenever it ends by itself.
fn keep_emitting(pair: &HeartbeatPair, shutdown: &Shutdown, observe: &Observability) {
    let task = format!("heartbeats {}", pair.name());
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let ended = panic::catch_unwind(AssertUnwindSafe(|| emit(pair, shutdown, observe, &task)));
        if shutdown.is_triggered() {
            return;
        }
        let cause = match ended {
            Ok(Ok(())) => "stopped by itself".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "panicked".to_string(),
        };
        let delay = backoff.next_delay();
        error!(flow = %pair.name(), "{task} failed: {cause}; starting again in {delay:?}");
        observe.status.task(&task, Some(&cause));
        if shutdown.sleep(delay) {
            return;
        }
    }
}

fn emit(
    pair: &HeartbeatPair,
    shutdown: &Shutdown,
    observe: &Observability,
    task: &str,
) -> Result<(), HeartbeatError> {
    let name = pair.name();
    let client_id = format!("mirrorcast-heartbeats-{}-to-{}", pair.source, pair.target);
    let admin_config = client_config(&pair.target_clients, ClientRole::Admin, &client_id);
    let mut producer_config = client_config(&pair.target_clients, ClientRole::Producer, &client_id);
    producer_config.set(
        "message.timeout.ms",
        DELIVERY_TIMEOUT.as_millis().to_string(),
    );
    let log = || ClientLog::new(format!("{name} heartbeats"));
    let clients = TopicAdmin::with_log(&admin_config, log()).and_then(|admin| {
        let producer: FutureProducer<ClientLog> =
            producer_config.create_with_context(log().trusting(&producer_config))?;
        Ok((admin, producer))
    });
    let (admin, producer) = clients.map_err(HeartbeatError::Clients)?;
    observe.status.task(task, None);
    let mut health = Health::default();
    let mut topic_ready = false;
    let every = pair.heartbeats.interval;
    loop {
        match write_one(pair, &admin, &producer, &mut topic_ready) {
            Ok(()) => health.say_recovered(&name, "writing heartbeats"),
            Err(e) => {
                if health.failed() {
                    warn!(flow = %name, "cannot write heartbeats: {e}; trying again every {every:?}");
                }
            }
        }
        if shutdown.sleep(pair.heartbeats.interval) {
            return Ok(());
        }
    }
}

/// Creates the `heartbeats` topic if it is not known to exist, then writes one heartbeat and
/// waits for its acknowledgement.
fn write_one(
    pair: &HeartbeatPair,
    admin: &TopicAdmin,
    producer: &FutureProducer<ClientLog>,
    topic_ready: &mut bool,
) -> Result<(), HeartbeatError> {
    if !*topic_ready {
        let compact = [("cleanup.policy".to_string(), "compact".to_string())];
        let spec = (1, pair.heartbeats.replication_factor, &compact[..]);
        ensure_internal_topic(admin, &pair.name(), HEARTBEATS_TOPIC, spec)?;
        *topic_ready = true;
    }
    let heartbeat = Heartbeat {
        source_alias: pair.source.clone(),
        target_alias: pair.target.clone(),
        timestamp_ms: crate::observe::status::now_ms(),
    };
    let (key, value) = (heartbeat.key(), heartbeat.value());
    let record = FutureRecord::to(HEARTBEATS_TOPIC)
        .partition(0)
        .key(&key[..])
        .payload(&value[..]);
    let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
    match futures_executor::block_on(delivery) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.into()),
        Err(_) => Err(HeartbeatError::ProducerGone),
    }
}

/// Why a heartbeat was not written.
#[derive(Debug, thiserror::Error)]
enum HeartbeatError {
    #[error(transparent)]
    Topic(#[from] crate::topics::TopicError),
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the producer went away")]
    ProducerGone,
    #[error("cannot create its clients: {0}")]
    Clients(crate::topics::TopicError),
}
