//! The plain Kafka clients of the benchmark: topic creation, a producer, a consumer and end
//! offsets, on any cluster.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::PARTITIONS;

pub(super) fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

pub(super) fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    let rt = tokio_free(admin.create_topics([&new], &AdminOptions::new()))?;
    for r in rt {
        if let Err((t, e)) = r {
            bail!("creating {t}: {e}");
        }
    }
    Ok(())
}

pub(super) fn tokio_free<F: std::future::Future>(f: F) -> F::Output {
    // rdkafka's admin futures are completed by the admin client's own thread.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Produces `count` records of `size` bytes; returns the seconds it took until all were acked.
pub(super) fn produce(
    bootstrap: &str,
    topic: &str,
    count: u64,
    size: usize,
    compression: &str,
) -> Result<f64> {
    let producer: BaseProducer = client(bootstrap)
        .set("enable.idempotence", "true")
        .set("compression.type", compression)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()?;
    let mut payload = Vec::with_capacity(size + 128);
    let started = Instant::now();
    for n in 0..count {
        event_json(n, size, &mut payload);
        // As users' records are: a key, a trace id and an event type besides the value.
        let key = format!("customer-{:06}", n % 100_000);
        let trace_id = format!("{:032x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "trace-id",
                value: Some(trace_id.as_bytes()),
            })
            .insert(Header {
                key: "event-type",
                value: Some(&b"OrderPlaced"[..]),
            });
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload[..])
            .headers(headers)
            .partition((n % PARTITIONS as u64) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(600))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Reads every record of `topic`; returns the seconds it took.
pub(super) fn consume_all(bootstrap: &str, topic: &str, count: u64) -> Result<f64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        // As mirrorcast does: librdkafka's 1 s default pauses fetching whenever the reader
        // falls behind its read-ahead.
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            seen += 1;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("reading {topic} took over 10 minutes");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

pub(super) fn total_records(bootstrap: &str, topic: &str) -> i64 {
    let Ok(consumer) = client(bootstrap).create::<BaseConsumer>() else {
        return 0;
    };
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_or(0, |(_, h)| h)
        })
        .sum()
}

/// An order event as JSON, `size` bytes long, different for every `n`: keys and enumerated
/// values repeat from record to record, ids, amounts and times do not, so a codec finds what
/// it finds in users' events (lz4 shrinks these about 2-3 times, not the 30 times of a
/// payload of one repeated byte).
pub(super) fn event_json(n: u64, size: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    const COUNTRIES: [&str; 6] = ["DE", "FR", "BR", "US", "JP", "IN"];
    const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
    const EVENTS: [&str; 4] = ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderCancelled"];
    // xorshift64*: cheap, and the same events in every run.
    let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    out.clear();
    let r = next();
    let _ = write!(
        out,
        "{{\"event_type\":\"{}\",\"event_id\":\"{:016x}\",\"occurred_at\":\"2026-12-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"customer\":{{\"id\":\"customer-{:06}\",\"country\":\"{}\",\"tier\":\"{}\"}},\"order\":{{\"id\":\"{:012}\",\"currency\":\"EUR\",\"items\":[",
        EVENTS[(r % 4) as usize],
        next(),
        1 + r % 28,
        r % 24,
        (r >> 8) % 60,
        (r >> 16) % 60,
        (r >> 24) % 1000,
        next() % 1_000_000,
        COUNTRIES[((r >> 32) % 6) as usize],
        TIERS[((r >> 40) % 3) as usize],
        next() % 1_000_000_000_000,
    );
    let mut first = true;
    while out.len() + 70 < size {
        let item = next();
        let _ = write!(
            out,
            "{}{{\"sku\":\"SKU-{:05}\",\"qty\":{},\"price\":{}.{:02}}}",
            if first { "" } else { "," },
            item % 100_000,
            1 + (item >> 20) % 9,
            (item >> 24) % 500,
            (item >> 40) % 100,
        );
        first = false;
    }
    out.extend_from_slice(b"]}}");
    // Exactly `size` bytes: padded with spaces (JSON allows them), or cut.
    out.resize(size, b' ');
}
