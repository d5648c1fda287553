//! MM2's heartbeat connector for the pairs of clusters that no enabled flow covers
//! ([`HeartbeatPair`]): MM2 writes heartbeats for every pair of its clusters, so that a
//! cluster's `heartbeats` topic, replicated onwards, tells every downstream cluster where its
//! data comes from (`RemoteClusterUtils.upstreamClusters()`, `replicationHops()`). The enabled
//! flows' heartbeats are written by their copiers.
//!
//! Invariant: nothing here holds back a flow; a target that cannot take heartbeats is said once
//! (and once when it works again), and tried again at each interval.

use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::{info, warn};

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
pub fn start(pairs: &[HeartbeatPair], shutdown: &Shutdown) -> std::io::Result<Vec<JoinHandle<()>>> {
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
            let (pair, shutdown) = (pair.clone(), shutdown.clone());
            std::thread::Builder::new()
                .name(format!("heartbeats {}", pair.name()))
                .spawn(move || emit(&pair, &shutdown))
        })
        .collect()
}

fn emit(pair: &HeartbeatPair, shutdown: &Shutdown) {
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
    let (admin, producer) = match clients {
        Ok(clients) => clients,
        Err(e) => {
            warn!(flow = %name, "cannot write heartbeats: {e}");
            return;
        }
    };
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
            return;
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
}
