//! The real [`Target`]: librdkafka's producer for one flow's target cluster. Delivery reports
//! are collected by its context and handled on the copier thread right after a `poll`.

use crate::clock::Clock;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message};

use super::io::{Delivery, Tag};
use super::io::{Outgoing, Target, TxnFatal, TxnOutcome};
use crate::kafka::clients::ClientLog;
use crate::observe::status::StatusBoard;

/// Collects delivery reports for the copier thread.
struct DeliveryContext {
    reports: Mutex<Vec<Delivery>>,
    log: ClientLog,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Tag>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Box<Tag>) {
        let error =
            result
                .as_ref()
                .err()
                .map(|(error, message)| match error.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::InvalidRecord) if bystander(message) => {
                        KafkaError::MessageProduction(RDKafkaErrorCode::InvalidDifferentRecord)
                    }
                    _ => error.clone(),
                });
        let downstream_offset = result.as_ref().ok().map(|m| m.offset());
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.push(Delivery {
            tag: *tag,
            error,
            downstream_offset,
        });
    }
}

/// What librdkafka says of the records of a batch the broker refused for another record's sake
/// (KIP-467).
const BYSTANDER_TEXT: &str = "Failed to append record because it was part of a batch";

/// Whether a record failed as `INVALID_RECORD` only for being in a batch with an invalid one.
/// librdkafka 2.12 names such records `INVALID_DIFFERENT_RECORD`, but when the broker names a
/// single invalid record it then overwrites every record's code with `INVALID_RECORD`
/// (`rd_kafka_dr_msgq0`): only the text still tells the bystanders, which must never be blamed.
fn bystander(message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    crate::kafka::ffi::produce_error_text(message)
        .is_some_and(|text| text.starts_with(BYSTANDER_TEXT))
}

/// librdkafka's default `batch.size`.
const LIBRDKAFKA_BATCH_SIZE: u32 = 1_000_000;

/// One flow's target producer, and what it takes to start a new one.
pub(crate) struct KafkaTarget {
    producer: BaseProducer<DeliveryContext>,
    config: ClientConfig,
    /// For the client log: flow name, status board, source and target aliases.
    label: String,
    board: Arc<StatusBoard>,
    source: String,
    target: String,
    /// `transactional.id` is set: records go in transactions.
    transactional: bool,
    /// When the open transaction began, by the lane's clock.
    open_since: Cell<Option<Instant>>,
    clock: Clock,
}

impl KafkaTarget {
    pub fn new(
        config: ClientConfig,
        label: &str,
        board: Arc<StatusBoard>,
        source: &str,
        target: &str,
        clock: Clock,
    ) -> KafkaResult<Self> {
        let producer = Self::create(&config, label, &board, source, target)?;
        Ok(KafkaTarget {
            clock,
            producer,
            transactional: config.get("transactional.id").is_some(),
            open_since: Cell::new(None),
            config,
            label: label.to_string(),
            board,
            source: source.to_string(),
            target: target.to_string(),
        })
    }

    fn create(
        config: &ClientConfig,
        label: &str,
        board: &Arc<StatusBoard>,
        source: &str,
        target: &str,
    ) -> KafkaResult<BaseProducer<DeliveryContext>> {
        config.create_with_context(DeliveryContext {
            reports: Mutex::new(Vec::new()),
            log: ClientLog::new(format!("{label} target"))
                .trusting(config)
                .reporting_to(board.clone(), source, target),
        })
    }

    fn reports(&self) -> std::sync::MutexGuard<'_, Vec<Delivery>> {
        let reports = self.producer.context().reports.lock();
        reports.unwrap_or_else(|e| e.into_inner())
    }
}

impl Target for KafkaTarget {
    fn send<'a>(&self, record: Outgoing<'a>) -> Result<(), (KafkaError, Outgoing<'a>)> {
        if self.transactional && self.open_since.get().is_none() {
            if let Err(e) = self.producer.begin_transaction() {
                return Err((e, record));
            }
            self.open_since.set(Some(self.clock.now()));
        }
        let Outgoing {
            topic,
            partition,
            key,
            payload,
            timestamp_ms,
            headers,
            tag,
        } = record;
        let record: BaseRecord<'a, [u8], [u8], Box<Tag>> = BaseRecord {
            topic,
            partition,
            payload,
            key,
            timestamp: timestamp_ms,
            headers,
            delivery_opaque: Box::new(tag),
        };
        self.producer.send(record).map_err(|(e, back)| {
            let back = Outgoing {
                topic: back.topic,
                partition: back.partition,
                key: back.key,
                payload: back.payload,
                timestamp_ms: back.timestamp,
                headers: back.headers,
                tag: *back.delivery_opaque,
            };
            (e, back)
        })
    }

    fn serve(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    fn reports_waiting(&self) -> usize {
        self.reports().len()
    }

    fn take_reports(&self, into: &mut Vec<Delivery>) {
        std::mem::swap(&mut *self.reports(), into);
    }

    fn in_flight(&self) -> u64 {
        self.producer.in_flight_count().max(0) as u64
    }

    fn fatal_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        self.producer.client().fatal_error()
    }

    fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }

    fn refresh_metadata(&self, topic: &str) -> KafkaResult<()> {
        const METADATA_REFRESH_TIMEOUT: Duration = Duration::from_secs(2);
        self.producer
            .client()
            .fetch_metadata(Some(topic), METADATA_REFRESH_TIMEOUT)
            .map(|_| ())
    }

    fn batch_bytes(&self) -> u32 {
        self.config
            .get("batch.size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(LIBRDKAFKA_BATCH_SIZE)
    }

    fn compresses(&self) -> bool {
        self.config
            .get("compression.type")
            .or_else(|| self.config.get("compression.codec"))
            .is_some_and(|codec| codec != "none")
    }

    fn resize_batches(&mut self, bytes: u32) -> KafkaResult<()> {
        self.config.set("batch.size", bytes.to_string());
        self.replace()
    }

    fn replace(&mut self) -> KafkaResult<()> {
        let producer = Self::create(
            &self.config,
            &self.label,
            &self.board,
            &self.source,
            &self.target,
        )?;
        // Dropping the old producer purges what it still held, without reports.
        drop(std::mem::replace(&mut self.producer, producer));
        self.open_since.set(None);
        Ok(())
    }

    fn transaction_open_since(&self) -> Option<Instant> {
        self.open_since.get()
    }

    fn init_transactions(&self, timeout: Duration) -> TxnOutcome {
        outcome(
            self.producer
                .init_transactions(timeout.max(SHORTEST_TXN_CALL)),
        )
    }

    fn commit(&self, timeout: Duration) -> TxnOutcome {
        // Asked only once nothing is in flight, so that the call itself is one round trip to
        // the coordinator and seldom resumed.
        if self.producer.in_flight_count() > 0 {
            self.producer.poll(timeout.min(Duration::from_millis(20)));
            if self.producer.in_flight_count() > 0 {
                return TxnOutcome::Pending;
            }
        }
        let timeout = timeout.max(SHORTEST_TXN_CALL);
        let outcome = outcome(self.producer.commit_transaction(timeout));
        if outcome == TxnOutcome::Done {
            self.open_since.set(None);
        }
        outcome
    }

    fn abort(&self, timeout: Duration) -> TxnOutcome {
        let outcome = outcome(
            self.producer
                .abort_transaction(timeout.max(SHORTEST_TXN_CALL)),
        );
        if outcome == TxnOutcome::Done {
            self.open_since.set(None);
        }
        outcome
    }
}

/// The least time a transactional call is given. librdkafka resumes a call that timed out
/// when it is made again, but calls given (almost) no time, made round after round, once hit
/// an invalid state transition in it (an assertion: the process aborted): one round trip to
/// the coordinator fits in this, so a call seldom needs resuming.
const SHORTEST_TXN_CALL: Duration = Duration::from_millis(50);

/// Sorts a transactional call's result by what the lane must do next.
fn outcome(result: KafkaResult<()>) -> TxnOutcome {
    let error = match result {
        Ok(()) => return TxnOutcome::Done,
        Err(KafkaError::Transaction(error)) => error,
        // `commit_transaction` flushes first: what is in flight is not delivered yet.
        Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => return TxnOutcome::Pending,
        Err(other) => return TxnOutcome::Fatal(TxnFatal::Broken(other.to_string())),
    };
    let message = error.to_string();
    let message = match TxnFatal::of(error.code(), message) {
        // Fenced or refused: whatever librdkafka calls it, no retry helps.
        fatal @ (TxnFatal::Fenced(_) | TxnFatal::Refused(_)) => return TxnOutcome::Fatal(fatal),
        TxnFatal::Broken(message) => message,
    };
    if error.txn_requires_abort() && !error.is_fatal() {
        TxnOutcome::Abortable(message)
    } else if error.is_retriable() && !error.is_fatal() {
        TxnOutcome::Pending
    } else {
        TxnOutcome::Fatal(TxnFatal::Broken(message))
    }
}
