//! The offset syncs of one flow as the checkpoint task sees them: the syncs topic is read from
//! its start once, then at each round only what was added since (as MM2's `OffsetSyncStore`
//! does), into a bounded history per source partition.
//!
//! Invariant: a round translates only from a view read to the topic's end as of that round,
//! never from a partial one; a sync that no copy writes (negative offsets) never enters it.

use std::collections::HashMap;

use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message};
use tracing::warn;

use super::codec::OffsetSync;
use super::translate::SyncHistory;
use crate::kafka::log_reader::{LogReadError, LogReader};

/// Per source partition, its sync history.
pub type Histories = HashMap<(String, i32), SyncHistory>;

const GROUP_ID: &str = "mirrorcast-offset-syncs-reader";

/// The syncs of one topic, kept up to date by [`OffsetSyncStore::update`].
pub struct OffsetSyncStore {
    consumer_config: ClientConfig,
    topic: String,
    reader: Option<LogReader>,
    histories: Histories,
}

impl OffsetSyncStore {
    pub fn new(consumer_config: &ClientConfig, topic: &str) -> Self {
        OffsetSyncStore {
            consumer_config: consumer_config.clone(),
            topic: topic.to_string(),
            reader: None,
            histories: Histories::new(),
        }
    }

    /// Reads what was added to the topic since the last update (all of it, the first time).
    /// After an error the next update reads the topic again from its start.
    pub fn update(&mut self) -> Result<&Histories, LogReadError> {
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => {
                self.histories.clear();
                self.reader.insert(LogReader::open(
                    &self.consumer_config,
                    GROUP_ID,
                    &self.topic,
                )?)
            }
        };
        let (topic, histories) = (&self.topic, &mut self.histories);
        if let Err(e) = reader.read_to_end(|message| add(histories, topic, message)) {
            self.reader = None;
            return Err(e);
        }
        Ok(&self.histories)
    }
}

/// Reads the whole offset-syncs topic once (`translate-offsets`).
pub fn load(consumer_config: &ClientConfig, topic: &str) -> Result<Histories, LogReadError> {
    let mut store = OffsetSyncStore::new(consumer_config, topic);
    store.update()?;
    Ok(store.histories)
}

/// Adds the sync a record of the syncs topic holds, if it is one.
fn add(histories: &mut Histories, topic: &str, message: &BorrowedMessage<'_>) {
    let (Some(key), Some(value)) = (message.key(), message.payload()) else {
        return;
    };
    let Ok(sync) = OffsetSync::decode(key, value) else {
        return warn!(
            topic,
            partition = message.partition(),
            offset = message.offset(),
            "ignoring a record of the offset-syncs topic that is not an offset sync"
        );
    };
    if sync.upstream_offset < 0 || sync.downstream_offset < 0 {
        // No copy writes one; translating from it would point consumers at logical offsets.
        return warn!(
            topic,
            partition = message.partition(),
            offset = message.offset(),
            "ignoring an offset sync of {}[{}] with a negative offset ({} -> {})",
            sync.topic,
            sync.partition,
            sync.upstream_offset,
            sync.downstream_offset
        );
    }
    histories
        .entry((sync.topic.clone(), sync.partition))
        .or_default()
        .add(&sync);
}
