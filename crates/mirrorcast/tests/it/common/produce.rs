//! Writing test records: at once, or in the background until stopped.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{client, numbered_records, TestRecord};

/// Produces records to the given partitions, waiting for every acknowledgement.
pub fn produce(bootstrap: &str, topic: &str, records: &[(i32, TestRecord)]) {
    TestProducer::new(bootstrap).send_all(topic, records);
}

/// An idempotent producer for test data, kept across batches.
pub struct TestProducer(BaseProducer);

impl TestProducer {
    pub fn new(bootstrap: &str) -> Self {
        Self::with(bootstrap, &[])
    }

    /// A producer with these settings besides (e.g. Java's 16 kB `batch.size`).
    pub fn with(bootstrap: &str, settings: &[(&str, &str)]) -> Self {
        let mut config = client(bootstrap);
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        TestProducer(config.create().expect("producer"))
    }

    /// Sends `records` and waits until every one is acknowledged.
    pub fn send_all(&self, topic: &str, records: &[(i32, TestRecord)]) {
        let producer = &self.0;
        for (partition, record) in records {
            let pairs: Vec<(&[u8], Option<&[u8]>)> = record
                .headers
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            let headers = mirrorcast::kafka::ffi::raw_owned_headers(&pairs);
            let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .partition(*partition)
                .timestamp(record.timestamp)
                .headers(headers);
            if let Some(k) = &record.key {
                base = base.key(k);
            }
            if let Some(v) = &record.value {
                base = base.payload(v);
            }
            loop {
                match producer.send(base) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        base = back;
                        producer.poll(Duration::from_millis(50));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }
}

/// Writes numbered records to `topic` in chunks until stopped, so that a replicator running
/// meanwhile is always in the middle of a copy, whatever the brokers' speed.
pub struct BackgroundProducer {
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    writer: Option<std::thread::JoinHandle<usize>>,
}

impl BackgroundProducer {
    /// Starts writing records numbered from `first` over `partitions` partitions, as fast as
    /// the broker takes them.
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, first: usize) -> Self {
        Self::start_paced(bootstrap, topic, partitions, first, Duration::ZERO)
    }

    /// [`BackgroundProducer::start`], with a pause after each chunk of 500 records: steady
    /// traffic a replicator can keep up with on a shared machine.
    pub fn start_paced(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        first: usize,
        pause: Duration,
    ) -> Self {
        const CHUNK: usize = 500;
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = {
            let (running, bootstrap, topic) =
                (running.clone(), bootstrap.to_string(), topic.to_string());
            std::thread::spawn(move || {
                let producer = TestProducer::new(&bootstrap);
                let mut next = first;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    producer.send_all(&topic, &numbered_records("during", partitions, next, CHUNK));
                    next += CHUNK;
                    std::thread::sleep(pause);
                }
                next
            })
        };
        BackgroundProducer {
            running,
            writer: Some(writer),
        }
    }

    /// Stops writing; returns the number after the last record written.
    pub fn stop(mut self) -> usize {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.writer
            .take()
            .map(|w| w.join().expect("background producer"))
            .unwrap_or(0)
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}
