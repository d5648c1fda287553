//! `mirrorcast consume`: reads a topic pattern on one cluster and prints each event the way the
//! scenario's regional consumers do:
//! `Topic: LH.ORDERS  /  Partition: 0  /  Offset: 42  /  Timestamp: 2026-11-24 15:30:00  /  Data: {...}`

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

use crate::kafka::clients::ClientLog;
use crate::shutdown::Shutdown;

/// One printed line.
pub fn format_line(
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    data: &[u8],
) -> String {
    let timestamp = timestamp_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "Topic: {topic}  /  Partition: {partition}  /  Offset: {offset}  /  Timestamp: {timestamp}  /  Data: {}",
        String::from_utf8_lossy(data)
    )
}

/// Subscribes `group` to the topics matching `pattern` (a whole-name regex) and prints every
/// event until `shutdown`, each line after `label` when there is one.
pub fn run(
    consumer_config: &ClientConfig,
    pattern: &str,
    group: &str,
    label: Option<&str>,
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> Result<u64, rdkafka::error::KafkaError> {
    let mut config = consumer_config.clone();
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        // Topics that appear later (replicated ones) are found within seconds.
        .set("topic.metadata.refresh.interval.ms", "3000");
    let consumer: BaseConsumer<ClientLog> = config
        .create_with_context(ClientLog::new(format!("consumer {group}")).trusting(&config))?;
    // librdkafka treats a subscription starting with ^ as a regex.
    let anchored = format!(
        "^{}$",
        pattern.trim_start_matches('^').trim_end_matches('$')
    );
    consumer.subscribe(&[&anchored])?;
    let mut printed = 0u64;
    while !shutdown.is_triggered() {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(message) = message else { continue };
        let line = format_line(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp().to_millis(),
            message.payload().unwrap_or_default(),
        );
        let written = match label {
            Some(label) => writeln!(out, "[{label}] {line}"),
            None => writeln!(out, "{line}"),
        };
        if written.is_err() {
            break; // the reader went away (a closed pipe)
        }
        printed += 1;
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_the_scenarios() {
        let ts = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 24, 15, 30, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            format_line("LH.ORDERS", 0, 42, Some(ts), br#"{"id":"x"}"#),
            r#"Topic: LH.ORDERS  /  Partition: 0  /  Offset: 42  /  Timestamp: 2026-11-24 15:30:00  /  Data: {"id":"x"}"#
        );
    }
}
