//! Copy progress on the target: `mm2-offsets.<source>.internal`, in MM2's format ([`codec`]).
//! Only offsets the target has acknowledged are written (by the copier); this module reads
//! them back when a flow starts.

pub mod codec;
pub mod edit;
pub mod store;
pub mod writers;

use std::collections::HashMap;

use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message};

use tracing::warn;

use crate::kafka::cluster::TopicId;
use crate::kafka::log_reader::{LogReadError, LogReader};

/// What is stored of a source partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The last replicated source offset.
    pub offset: i64,
    /// The ID of the source topic it was copied from (`None` when MM2 or an older mirrorcast
    /// stored it, or the source has no topic IDs).
    pub topic_id: Option<TopicId>,
}

/// What is stored per (source topic, partition).
pub type Progress = HashMap<(String, i32), Stored>;

/// Reads every record of `topic` on the target and keeps the newest offset per source
/// partition of `source_alias`, waiting for transactions open meanwhile to end (another copy
/// unit's commit under way must not hide what was committed after it). Blocking, for as long
/// as the read moves.
pub fn load(
    consumer_config: &ClientConfig,
    topic: &str,
    connector: &str,
    source_alias: &str,
) -> Result<Progress, LogReadError> {
    let mut progress = Progress::new();
    let group_id = format!("mirrorcast.progress.{source_alias}");
    LogReader::open_settled(consumer_config, &group_id, topic)?.read_to_end(|message| {
        apply(&mut progress, topic, connector, source_alias, message);
    })?;
    Ok(progress)
}

/// A flow's stored progress, kept up to date by reading only what was added since the last
/// [`ProgressStore::update`] (all of it the first time, and again after an error): a process
/// that acquires partitions often does not read the whole topic each time.
pub struct ProgressStore {
    consumer_config: ClientConfig,
    topic: String,
    connector: String,
    source_alias: String,
    reader: Option<LogReader>,
    progress: Progress,
    /// When the whole topic was last read: read again from its start every
    /// [`FULL_READ_EVERY`], well within `delete.retention.ms` (tombstones are compacted away
    /// after it: a reader that only follows would miss a deletion).
    full_read_at: Option<std::time::Instant>,
}

/// How often a [`ProgressStore`] reads its topic from the start again.
const FULL_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl ProgressStore {
    pub fn new(
        consumer_config: &ClientConfig,
        topic: &str,
        connector: &str,
        source_alias: &str,
    ) -> Self {
        ProgressStore {
            consumer_config: consumer_config.clone(),
            topic: topic.to_string(),
            connector: connector.to_string(),
            source_alias: source_alias.to_string(),
            reader: None,
            progress: Progress::new(),
            full_read_at: None,
        }
    }

    /// The progress as stored now (`now` on the caller's clock). Blocking, for as long as the
    /// read moves.
    pub fn update(&mut self, now: std::time::Instant) -> Result<&Progress, LogReadError> {
        if self
            .full_read_at
            .is_some_and(|at| now.saturating_duration_since(at) >= FULL_READ_EVERY)
        {
            self.reader = None;
        }
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => {
                self.progress.clear();
                self.full_read_at = Some(now);
                let group_id = format!("mirrorcast.progress.{}", self.source_alias);
                self.reader.insert(LogReader::open_settled(
                    &self.consumer_config,
                    &group_id,
                    &self.topic,
                )?)
            }
        };
        let (progress, topic, connector, source) = (
            &mut self.progress,
            &self.topic,
            &self.connector,
            &self.source_alias,
        );
        match reader.read_to_end(|message| apply(progress, topic, connector, source, message)) {
            Ok(_) => {}
            // What was read stays read: the next update goes on from there.
            Err(e @ LogReadError::Unsettled { .. }) => return Err(e),
            Err(e) => {
                self.reader = None;
                return Err(e);
            }
        }
        Ok(&self.progress)
    }
}

/// Applies one record of the progress topic `topic`: the newest offset per source partition
/// of `source_alias` under `connector` wins; a tombstone drops it.
fn apply(
    progress: &mut Progress,
    topic: &str,
    connector: &str,
    source_alias: &str,
    message: &BorrowedMessage<'_>,
) {
    let Some(key) = message.key() else {
        return;
    };
    let Some((source, stored)) = codec::decode(connector, key, message.payload()) else {
        if codec::is_ours(connector, key) {
            warn!(
                topic,
                partition = message.partition(),
                offset = message.offset(),
                "ignoring a progress record of {connector} that cannot be read (no copy \
                 writes one like it); its partition resumes from the progress stored before it"
            );
        }
        return;
    };
    if source.cluster != source_alias {
        return;
    }
    let id = (source.topic, source.partition);
    match stored {
        // MM2 never stores one, and librdkafka would take a negative resume offset as a
        // logical one (-1 is the end: every record would be skipped).
        Some(Stored { offset, .. }) if offset < 0 => warn!(
            topic,
            partition = message.partition(),
            offset = message.offset(),
            "ignoring stored progress {offset} of {}[{}], which no copy writes; it resumes \
             from the progress stored before it, or from the beginning",
            id.0,
            id.1
        ),
        Some(stored) => {
            progress.insert(id, stored);
        }
        None => {
            progress.remove(&id);
        }
    }
}
