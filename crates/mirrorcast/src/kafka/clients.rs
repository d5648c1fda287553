//! Building librdkafka clients for a cluster: the user's settings (already mapped from Java
//! names) between our defaults and the few settings correctness depends on; and the context
//! that brings librdkafka's own logs into ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, ClientContext};
use tracing::{debug, warn};

use super::tls_check::{broker_address, TlsTrust};
use crate::observe::status::StatusBoard;

use crate::config::{ClientRole, ClusterConfig};

/// Defaults the user may override.
fn defaults(role: ClientRole) -> &'static [(&'static str, &'static str)] {
    match role {
        ClientRole::Consumer => &[
            // Latency: hand over what a fetch has after at most 20 ms.
            ("fetch.wait.max.ms", "20"),
            // Bounded read-ahead: memory stays flat whatever the backlog.
            ("queued.max.messages.kbytes", "32768"),
            // When that bound is reached (the target is the slower side), librdkafka waits this
            // long before fetching the partition again; its default of 1 s starved the copy
            // (70 MB/s instead of 220 MB/s in `cargo xtask bench`).
            ("fetch.queue.backoff.ms", "10"),
            // MM2's Java consumer reads uncommitted records unless told otherwise (librdkafka
            // defaults to read_committed): a transactional source topic is copied as MM2
            // copies it, aborted transactions included; `isolation.level=read_committed`
            // copies only committed ones.
            ("isolation.level", "read_uncommitted"),
        ],
        ClientRole::Producer => &[
            ("linger.ms", "5"),
            // Bounded per target: a source fanned out to N targets holds at most N of these
            // (plus the reader's read-ahead), whatever the backlog.
            ("queue.buffering.max.kbytes", "32768"),
        ],
        ClientRole::Admin => &[],
    }
}

/// librdkafka's words for `enable.gapless.guarantee`, which the copy sets on purpose.
const GAPLESS_IS_EXPERIMENTAL: &str = "enable.gapless.guarantee is experimental";

/// Settings the copy depends on for correctness; they win over the user's.
fn forced(role: ClientRole) -> &'static [(&'static str, &'static str)] {
    match role {
        ClientRole::Consumer => &[
            // Progress is ours (mm2-offsets on the target), never a group commit.
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            // Looking at a topic must never create it (the test broker would).
            ("allow.auto.create.topics", "false"),
            // A stored position below the log start (retention) resumes at the start.
            ("auto.offset.reset", "earliest"),
        ],
        ClientRole::Producer => &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Java's partitioner for keyed records, so progress records land on the partition
            // of mm2-offsets that MM2 itself would use.
            ("partitioner", "murmur2_random"),
        ],
        ClientRole::Admin => &[],
    }
}

/// A client config for `role` on `cluster`, with `client.id` naming the flow for the brokers'
/// logs.
pub fn client_config(cluster: &ClusterConfig, role: ClientRole, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", client_id);
    for (k, v) in defaults(role) {
        config.set(*k, *v);
    }
    for (k, s) in cluster.client(role).iter() {
        if role == ClientRole::Consumer && GROUP_MEMBER_KEYS.contains(&k) {
            continue;
        }
        config.set(k, &s.value);
    }
    for (k, v) in forced(role) {
        config.set(*k, *v);
    }
    config
}

/// Consumer settings only a group member uses. mirrorcast's readers assign their partitions
/// themselves, and librdkafka refuses some of these next to `group.protocol = consumer`: they
/// go to the member of the instances' group alone ([`member_config`]).
pub const GROUP_MEMBER_KEYS: &[&str] = &[
    "group.protocol",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
];

/// The consumer config of the member of the instances' group on `cluster`.
pub fn member_config(cluster: &ClusterConfig, client_id: &str) -> ClientConfig {
    let mut config = client_config(cluster, ClientRole::Consumer, client_id);
    for (k, s) in cluster.client(ClientRole::Consumer).iter() {
        if GROUP_MEMBER_KEYS.contains(&k) {
            config.set(k, &s.value);
        }
    }
    config
}

/// Serves what librdkafka queued for a consumer that is only asked things, never read from
/// (events such as a failed connection wait for the consumer's poll, and pile up otherwise):
/// its context logs them (errors it returns go to debug). At most a thousand at a time.
pub fn serve_events<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
) {
    for _ in 0..1000 {
        match consumer.poll(std::time::Duration::ZERO) {
            None => break,
            // What fails here fails the requests the consumer is asked next, which say it.
            Some(Err(e)) => tracing::debug!("{e}"),
            Some(Ok(_)) => {}
        }
    }
}

/// Routes librdkafka's own logs and errors into our logs without repeating itself: librdkafka
/// reports an unreachable broker on every reconnect attempt (as a log line and as an error),
/// and an operator wants to read it once. A message is shown the first time and again only
/// after it has been quiet for a while; repeats go to debug.
pub struct ClientLog {
    client: String,
    seen: Mutex<HashMap<String, Instant>>,
    /// Where errors are also shown (the last error of these flows in `/api/status`).
    status: Vec<(Arc<StatusBoard>, String, String)>,
    /// The latest cause librdkafka gave for a failing connection, for the caller whose
    /// request failed with only "transport failure" to say why ([`ClientLog::problems`]).
    last_problem: LastProblem,
    /// The client's TLS trust, to say why a broker's certificate is refused.
    tls: Option<Arc<TlsTrust>>,
    /// Why each broker's certificate was refused, once found out: recorded as the problem in
    /// place of librdkafka's vaguer message on every later attempt.
    explained: Arc<Mutex<HashMap<String, String>>>,
}

/// The latest connection problem a client's librdkafka reported, and when.
#[derive(Clone, Default)]
pub struct LastProblem(Arc<Mutex<Option<(Instant, String)>>>);

impl LastProblem {
    /// The latest problem, if it was reported within `window` (librdkafka repeats it on every
    /// reconnection while it lasts, at least every 10 s by default).
    pub fn recent(&self, window: Duration) -> Option<String> {
        let latest = self.0.lock().unwrap_or_else(|e| e.into_inner());
        latest
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= window)
            .map(|(_, message)| message.clone())
    }

    fn record(&self, message: &str) {
        // "1/1 brokers are down" follows the message that says why.
        if message.contains("brokers are down") {
            return;
        }
        let message = match message.strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(rest, |(_, text)| text),
            None => message,
        };
        // Timings change on every attempt; the text before them is the cause.
        let message = message.split(" (after ").next().unwrap_or(message);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), message.into()));
    }
}

/// After this much quiet, the same message is news again.
const REPEAT_AFTER: Duration = Duration::from_secs(300);

impl ClientLog {
    pub fn new(client: impl Into<String>) -> Self {
        ClientLog {
            client: client.into(),
            seen: Mutex::new(HashMap::new()),
            status: Vec::new(),
            last_problem: LastProblem::default(),
            tls: None,
            explained: Arc::default(),
        }
    }

    /// Records `message` as the latest problem, or what was found out about it.
    fn record_problem(&self, message: &str) {
        let explanation = message
            .contains("certificate verify failed")
            .then(|| broker_address(message))
            .flatten()
            .and_then(|address| {
                let explained = self.explained.lock().unwrap_or_else(|e| e.into_inner());
                explained.get(address).cloned()
            });
        self.last_problem
            .record(explanation.as_deref().unwrap_or(message));
    }

    /// Explains refused broker certificates with the TLS trust of `config` (if it uses TLS).
    pub fn trusting(mut self, config: &ClientConfig) -> Self {
        self.tls = TlsTrust::of(config).map(Arc::new);
        self
    }

    /// librdkafka says only "certificate verify failed": find out why, off librdkafka's and
    /// the caller's threads (a TLS handshake of our own), and say it once.
    fn explain_refused_certificate(&self, message: &str) {
        let (Some(trust), Some(address)) = (&self.tls, broker_address(message)) else {
            return;
        };
        // librdkafka says it in two messages per failed handshake: check once.
        if !self.is_news(&format!("tls check of {address}")) {
            return;
        }
        let (trust, address) = (trust.clone(), address.to_string());
        let (client, problem, status, explained) = (
            self.client.clone(),
            self.last_problem.clone(),
            self.status.clone(),
            self.explained.clone(),
        );
        let _ = std::thread::Builder::new()
            .name("tls-check".into())
            .spawn(move || {
                let Some(explanation) = trust.explain(&address) else {
                    return;
                };
                let message = format!("{address}: {explanation}");
                warn!(client = %client, "{message}");
                problem.record(&message);
                explained
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(address, message.clone());
                for (board, source, target) in &status {
                    board.error(source, target, &format!("{client}: {message}"));
                }
            });
    }

    /// A handle on the latest connection problem this client's librdkafka reports.
    pub fn problems(&self) -> LastProblem {
        self.last_problem.clone()
    }

    /// Also records errors as the last error of flow `source->target` (one client may serve
    /// several flows).
    pub fn reporting_to(mut self, board: Arc<StatusBoard>, source: &str, target: &str) -> Self {
        self.status
            .push((board, source.to_string(), target.to_string()));
        self
    }

    /// Whether `message` should be shown (and remember it).
    fn is_news(&self, message: &str) -> bool {
        // librdkafka prefixes log lines with its thread and appends timings and repeat counts
        // that change on every attempt.
        let message = match message.strip_prefix("[thrd:") {
            Some(rest) => rest.split_once("]: ").map_or(rest, |(_, text)| text),
            None => message,
        };
        let key = message
            .split(" (after ")
            .next()
            .unwrap_or(message)
            .to_string();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen.len() > 256 {
            seen.retain(|_, at| now.duration_since(*at) <= REPEAT_AFTER);
        }
        match seen.insert(key, now) {
            Some(at) => now.duration_since(at) > REPEAT_AFTER,
            None => true,
        }
    }
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka warns about a setting it calls experimental that the copy sets on purpose
        // (`copy::connect_lane`): not a problem of the user's config.
        let chosen = facility == "CONFWARN" && message.contains(GAPLESS_IS_EXPERIMENTAL);
        let serious = !chosen
            && matches!(
                level,
                RDKafkaLogLevel::Emerg
                    | RDKafkaLogLevel::Alert
                    | RDKafkaLogLevel::Critical
                    | RDKafkaLogLevel::Error
                    | RDKafkaLogLevel::Warning
            );
        if serious {
            self.record_problem(message);
        }
        if serious && self.is_news(message) {
            warn!(client = %self.client, "librdkafka {facility}: {message}");
            if message.contains("certificate verify failed") {
                self.explain_refused_certificate(message);
            }
        } else {
            debug!(client = %self.client, "librdkafka {facility}: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A pattern subscription that matches nothing yet (topics still to be replicated); or
        // a consumer that only reads assigned partitions (librdkafka's `assign` wants a group
        // id) looking for a group coordinator it never needs, on a cluster whose ACLs do not
        // give the replicator that group: MM2's Java consumers have no group and never ask.
        let expected = reason.contains("Subscribed topic not available")
            || (matches!(
                error.rdkafka_error_code(),
                Some(rdkafka::types::RDKafkaErrorCode::GroupAuthorizationFailed)
            ) && reason.contains("FindCoordinator"));
        if !expected {
            self.record_problem(reason);
        }
        if !expected && self.is_news(reason) {
            warn!(client = %self.client, "{error}: {reason}");
            for (board, source, target) in &self.status {
                board.error(
                    source,
                    target,
                    &format!("{}: {error}: {reason}", self.client),
                );
            }
        } else {
            debug!(client = %self.client, "{error}: {reason}");
        }
    }
}

impl ConsumerContext for ClientLog {}

/// Producers whose deliveries need no follow-up (best-effort records such as offset syncs).
impl rdkafka::producer::ProducerContext for ClientLog {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_connection_failures_are_news_once() {
        let log = ClientLog::new("test");
        let attempt = |ms: u32| {
            format!("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {ms}ms in state CONNECT)")
        };
        assert!(log.is_news(&attempt(0)));
        assert!(!log.is_news(&attempt(3)));
        assert!(!log.is_news(&format!("{}, 4 identical error(s)", attempt(1))));
        assert!(log.is_news("SASL authentication error"));
        assert!(
            !log.is_news(&attempt(9)),
            "alternating messages are still repeats"
        );
        let as_log_line = format!("[thrd:127.0.0.1:1/bootstrap]: {}", attempt(2));
        assert!(
            !log.is_news(&as_log_line),
            "the log line and the error are one message"
        );
    }
}
