//! The copy of the flows of one source: read source partitions once, produce each record to
//! the same partition of its remote topic on every target, and record progress only for what
//! each target acknowledged.
//!
//! Runs on its own thread with librdkafka's blocking clients ([`run`] wires them up). Each flow
//! is a [`lane`] with its own producer; the lanes share one reader of the source ([`fanout`]
//! decides who reads where, [`readers`] does it), so targets that keep up cost one read between
//! them. A lane whose target is slow leaves the shared reader after a short wait
//! ([`backpressure`]) and catches up on a reader of its own, so it never holds the others back.
//!
//! A lane is a coordinator of parts that each own one concern, know nothing of the lane and
//! return decisions: its [`book`] (which partitions, their routes, progress and per-partition
//! state, with the last acknowledged offset in each [`ledger`]), what is in flight
//! ([`in_flight`]), the [`transaction`] driver (exactly once), its [`housekeeper`] (progress,
//! heartbeats, offset syncs, metrics and when), what it has said ([`signals`]) and heard
//! ([`inbox`]), and whether a failure is a refusal for good ([`refused`]). A failed delivery takes the partition away and hands it back, after a backoff,
//! at the offset after the last acknowledged one, so a failure becomes a retry, never a gap.
//! Each such rewind starts a new epoch, and delivery reports of older epochs are ignored.
//!
//! The logic is generic over [`io::Reader`], [`io::Target`] and a [`crate::clock::Clock`]; its
//! transitions are unit-tested against fakes on a clock the tests move (`tests`).

mod backpressure;
mod batch_size;
pub mod batches;
mod book;
#[cfg(test)]
mod fakes;
pub mod fanout;
mod housekeeper;
mod in_flight;
mod inbox;
mod io;
mod lane;
pub mod ledger;
mod partitions;
mod readers;
mod refused;
pub mod report;
mod signals;
pub mod source;
mod source_copy;
pub mod syncs;
mod target;
#[cfg(test)]
mod tests;
pub(crate) mod transaction;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::clock::Clock;
use crate::config::FlowConfig;
use crate::kafka::clients::ClientLog;
use crate::observe::metrics::ReaderLabels;
use crate::observe::Observability;
use crate::ownership::Shard;
use crate::ownership::Standing;
use crate::plan::ToCopier;
use crate::shutdown::Shutdown;
use backpressure::Backpressure;
use lane::{Lane, LaneSetup};
use rdkafka::error::KafkaError;
use readers::Readers;
use report::{FlowReporter, FlowShards};
use source::SourceReader;
use source_copy::SourceCopy;
use std::sync::Arc;
use syncs::SyncWriter;
use target::KafkaTarget;

/// Why the copy of a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `flow`: the flow, or the source for the reader the flows share.
    #[error("{flow}: cannot create the {client}: {error}")]
    Client {
        flow: String,
        client: &'static str,
        #[source]
        error: KafkaError,
    },
}

/// Everything one flow's lane needs to start on one copier thread.
pub struct CopierSetup {
    pub flow: FlowConfig,
    /// The thread, and where the flow's threads report together.
    pub shard: Shard,
    pub shards: Arc<FlowShards>,
    /// For the lane's own reader, when it catches up.
    pub source_consumer: ClientConfig,
    pub target_producer: ClientConfig,
    /// For offset syncs kept on the source.
    pub source_producer: ClientConfig,
    pub observe: Observability,
    pub commands: Receiver<ToCopier>,
    /// Whether this process may write, and leads the flow (instances sharing a group).
    pub standing: Standing,
    /// The process's clock.
    pub clock: Clock,
    /// Exactly once: where the lane says its unit was fenced from under it.
    pub lost: crate::plan::LostUnits,
}

/// Runs the copy of every flow of source `source` until `shutdown`, then flushes and stores
/// progress. `reader_config` is the source consumer the lanes share. `Err` when a client cannot
/// be created: no flow of the source is copied without the others being told.
pub fn run(
    source: &str,
    reader_config: ClientConfig,
    setups: Vec<CopierSetup>,
    observe: &Observability,
    shutdown: Shutdown,
) -> Result<(), CopyError> {
    let group_id = format!("mirrorcast.{source}");
    let mut reader_log = ClientLog::new(format!("{source} reader")).trusting(&reader_config);
    for setup in &setups {
        reader_log = reader_log.reporting_to(
            observe.status.clone(),
            &setup.flow.source,
            &setup.flow.target,
        );
    }
    let shared = SourceReader::new(reader_config, &group_id, reader_log).map_err(|error| {
        CopyError::Client {
            flow: source.to_string(),
            client: "source reader",
            error,
        }
    })?;
    let mut lanes = Vec::new();
    let mut own = Vec::new();
    let standing = setups
        .first()
        .map_or_else(Standing::alone, |s| s.standing.clone());
    for setup in setups {
        let (lane, reader) = connect_lane(setup, lanes.len(), shutdown.clone())?;
        lanes.push(lane);
        own.push(reader);
    }
    let read_shared = observe
        .metrics
        .source_records_read
        .get_or_create_owned(&ReaderLabels {
            source: source.to_string(),
            reader: "shared".to_string(),
        });
    let readers = Readers { shared, own };
    SourceCopy::new(source, lanes, readers, read_shared, standing, shutdown).run();
    Ok(())
}

/// Creates a lane's clients (its own reader, its target producer, its offset sync producer).
fn connect_lane(
    setup: CopierSetup,
    index: usize,
    shutdown: Shutdown,
) -> Result<(Lane<KafkaTarget>, SourceReader), CopyError> {
    let flow_name = setup.flow.name();
    let clock = setup.clock.clone();
    let client_error = |client: &'static str| {
        let flow = flow_name.clone();
        move |error| CopyError::Client {
            flow,
            client,
            error,
        }
    };
    let board = setup.observe.status.clone();
    let (source, target) = (setup.flow.source.clone(), setup.flow.target.clone());
    let reader_log = ClientLog::new(format!("{flow_name} source"))
        .trusting(&setup.source_consumer)
        .reporting_to(board.clone(), &source, &target);
    let reader = SourceReader::new(
        setup.source_consumer,
        &format!("mirrorcast.{flow_name}"),
        reader_log,
    )
    .map_err(client_error("source reader"))?;
    let limit = |key: &str, default: u64| {
        setup
            .target_producer
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let queue = Backpressure::new(
        limit("queue.buffering.max.kbytes", 1_048_576) * 1024,
        limit("queue.buffering.max.messages", 100_000),
    );
    // librdkafka gives up a record after `message.timeout.ms` while later ones of its
    // partition may still be delivered: the re-send lands after them, out of order, and every
    // rewind under load piles up another copy of the window. The copy's producer therefore
    // never gives up (as Kafka Connect's `delivery.timeout.ms=MAX` for MM2); the user's
    // timeout (`delivery.timeout.ms`, Java's default 120 s) says when the target counts as
    // failing, and its records stay queued in order meanwhile.
    let delivery_timeout = Duration::from_millis(limit("message.timeout.ms", 120_000));
    let transaction_timeout = limit("transaction.timeout.ms", 60_000);
    let mut target_producer = setup.target_producer;
    let transactions = match &setup.flow.exactly_once {
        None => {
            target_producer.set("message.timeout.ms", "0");
            // A batch refused for good must stop its partition there: without this, the
            // idempotent producer bumps its epoch and sends the later batches by itself, so
            // they land before the refused record is dealt with, and again when the lane
            // copies them once more. With it, the producer fails fatally instead, nothing after
            // the batch is appended, and the lane starts a new one (`Lane::replace_producer`).
            target_producer.set("enable.gapless.guarantee", "true");
            None
        }
        Some(exactly_once) => {
            // In a transaction a record that times out fails the transaction, which is aborted
            // and copied again whole: no record lands out of order. librdkafka wants records to
            // give up before their transaction does.
            let message_timeout = (delivery_timeout.as_millis() as u64).min(transaction_timeout);
            target_producer.set("message.timeout.ms", message_timeout.to_string());
            target_producer.set(
                "transactional.id",
                setup.flow.transactional_id(setup.shard.index),
            );
            let transactions =
                transaction::Transactions::new(exactly_once.commit_interval, clock.now());
            // Registered only when a fence gives the unit (the group's, or the topic
            // manager's before it reads the progress): what it reads is then final.
            Some(transactions.standing_by())
        }
    };
    let producer = KafkaTarget::new(
        target_producer,
        &flow_name,
        board,
        &source,
        &target,
        clock.clone(),
    )
    .map_err(client_error("target producer"))?;
    let syncs = match &setup.flow.offset_syncs {
        None => None,
        Some(config) => Some(
            SyncWriter::new(config, &setup.source_producer, &flow_name)
                .map_err(client_error("offset sync producer"))?,
        ),
    };
    let read_own = setup
        .observe
        .metrics
        .source_records_read
        .get_or_create_owned(&ReaderLabels {
            source: source.clone(),
            reader: format!("catch-up {target}"),
        });
    let lane = Lane::new(LaneSetup {
        index,
        reporter: FlowReporter::for_thread(
            setup.observe.clone(),
            &source,
            &target,
            setup.shards,
            setup.shard.index,
        ),
        shard: setup.shard,
        flow: setup.flow,
        commands: setup.commands,
        target: producer,
        syncs,
        read_own,
        queue,
        delivery_timeout,
        standing: setup.standing,
        transactions,
        shutdown,
        clock,
        lost: setup.lost,
    });
    Ok((lane, reader))
}
