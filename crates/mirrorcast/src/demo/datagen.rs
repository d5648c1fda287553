//! `mirrorcast datagen`: produces the scenario's events to any Kafka cluster, each kind on its
//! own timer (scaled by a global rate multiplier), with cancellations following some orders
//! after a delay.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use super::events::{Event, EventGenerator, Kind};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct DatagenOptions {
    /// Topic per kind.
    pub topics: BTreeMap<&'static str, String>,
    /// Interval per timed kind, before the rate multiplier.
    pub intervals: BTreeMap<&'static str, Duration>,
    /// Every interval is divided by this.
    pub rate: f64,
    pub seed: u64,
    pub region: String,
    /// One order in this many is cancelled (0: none).
    pub cancel_one_in: u32,
    /// How long after its order a cancellation comes (before the rate multiplier).
    pub cancel_delay: Duration,
}

impl Default for DatagenOptions {
    fn default() -> Self {
        DatagenOptions {
            topics: Kind::ALL
                .iter()
                .map(|k| (k.name(), k.default_topic().to_string()))
                .collect(),
            intervals: Kind::TIMED
                .iter()
                .map(|k| (k.name(), k.default_interval()))
                .collect(),
            rate: 1.0,
            seed: 1,
            region: "EU".into(),
            cancel_one_in: 4,
            cancel_delay: Duration::from_secs(30),
        }
    }
}

impl DatagenOptions {
    fn topic(&self, kind: Kind) -> &str {
        self.topics
            .get(kind.name())
            .map_or(kind.default_topic(), String::as_str)
    }

    fn interval(&self, kind: Kind) -> Duration {
        let base = self
            .intervals
            .get(kind.name())
            .copied()
            .unwrap_or(kind.default_interval());
        base.div_f64(self.rate.max(0.001))
    }
}

/// Produces events until `shutdown`, calling `on_event` for each one the cluster acknowledged
/// being handed (sent). Returns how many were sent.
pub fn run(
    producer_config: &ClientConfig,
    options: &DatagenOptions,
    shutdown: &Shutdown,
    mut on_event: impl FnMut(&str, &Event),
) -> Result<u64, rdkafka::error::KafkaError> {
    let mut config = producer_config.clone();
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    let producer: BaseProducer = config.create()?;
    let mut generator = EventGenerator::new(options.seed, &options.region);
    let start = Instant::now();
    // Every kind starts at once, so that each topic gets an event straight away.
    let mut due: Vec<(Kind, Instant)> = Kind::TIMED.iter().map(|k| (*k, start)).collect();
    let mut cancellations: VecDeque<(Instant, Event)> = VecDeque::new();
    let mut sent = 0u64;
    while !shutdown.is_triggered() {
        let now = Instant::now();
        let mut events = Vec::new();
        for (kind, at) in &mut due {
            if *at <= now {
                let event = generator.timed(*kind, Utc::now());
                if event.kind == Kind::Order && generator.will_cancel(options.cancel_one_in) {
                    let when = now + options.cancel_delay.div_f64(options.rate.max(0.001));
                    cancellations.push_back((when, event.clone()));
                }
                events.push(event);
                *at += options.interval(*kind);
            }
        }
        while cancellations.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, order)) = cancellations.pop_front() {
                events.push(generator.cancellation(&order, Utc::now()));
            }
        }
        for event in &events {
            let topic = options.topic(event.kind);
            let payload = event.value.to_string();
            let record = BaseRecord::to(topic).key(&event.key).payload(&payload);
            if producer.send(record).is_ok() {
                sent += 1;
                on_event(topic, event);
            }
        }
        producer.poll(Duration::ZERO);
        let next = due
            .iter()
            .map(|(_, at)| *at)
            .chain(cancellations.front().map(|(at, _)| *at))
            .min()
            .unwrap_or(now + Duration::from_secs(1));
        shutdown.sleep(
            next.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200)),
        );
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(sent)
}
