//! What a replicator stored on the target: copy progress and offset syncs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{client, end_offsets, poll_until, read_raw};

/// The copy progress stored on `target` (`mm2-offsets.<source>.internal`, MM2's dedicated-mode
/// connector): the last copied source offset per (topic, partition); `None` while unreadable.
pub fn stored_progress(target: &str, source_alias: &str) -> Option<mirrorcast::progress::Progress> {
    let mut config = client(target);
    config.set("group.id", "test-progress-reader");
    let progress_topic = format!("mm2-offsets.{source_alias}.internal");
    mirrorcast::progress::load(
        &config,
        &progress_topic,
        mirrorcast::progress::codec::DEDICATED_MODE_CONNECTOR,
        source_alias,
    )
    .ok()
}

/// The last offset stored as progress on `target` for each partition of `topic` (copied from
/// `europe`).
pub fn stored_offsets(target: &str, topic: &str) -> BTreeMap<i32, i64> {
    stored_progress(target, "europe")
        .unwrap_or_default()
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, partition), stored)| (partition, stored.offset))
        .collect()
}

/// Waits (90 s at most) until the progress stored on `target` for all `partitions` of `topic`
/// moved past `before` (commits go on), and returns it; panics with `log()` otherwise.
pub fn progress_moves_past(
    target: &str,
    topic: &str,
    partitions: i32,
    before: &BTreeMap<i32, i64>,
    log: impl Fn() -> String,
) -> BTreeMap<i32, i64> {
    let mut now = BTreeMap::new();
    assert!(
        poll_until(Duration::from_secs(90), Duration::from_millis(200), || {
            now = stored_offsets(target, topic);
            now.len() == partitions as usize
                && now.iter().all(|(p, o)| before.get(p).is_none_or(|b| o > b))
        }),
        "{target}'s progress did not move past {before:?} (now {now:?})\n{}",
        log()
    );
    now
}

/// Whether the replicator's stored progress on `target` says every record of `topic` up to
/// `source_ends` is copied and acknowledged (or more, while records keep arriving).
pub fn progress_reached(
    target: &str,
    source_alias: &str,
    topic: &str,
    source_ends: &BTreeMap<i32, i64>,
) -> bool {
    let Some(progress) = stored_progress(target, source_alias) else {
        return false;
    };
    source_ends.iter().all(|(p, end)| {
        *end == 0
            || progress
                .get(&(topic.to_string(), *p))
                .is_some_and(|stored| stored.offset >= end - 1)
    })
}

/// The offset syncs of `topic` in an `mm2-offset-syncs.*` topic, in the order written.
pub fn offset_syncs(
    bootstrap: &str,
    syncs_topic: &str,
    topic: &str,
) -> Vec<mirrorcast::offsets::codec::OffsetSync> {
    read_raw(bootstrap, syncs_topic)
        .iter()
        .filter_map(|(k, v)| mirrorcast::offsets::codec::OffsetSync::decode(k, v).ok())
        .filter(|s| s.topic == topic)
        .collect()
}

/// Per partition of `topic` on `target`: the records there, and the last source offset stored
/// as progress, read once the writes of a replicator that was just killed have landed.
pub fn copied_and_stored(
    target: &str,
    source_alias: &str,
    topic: &str,
) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
    let mut copied = end_offsets(target, topic);
    // Produce requests the killed process had sent may still be appended: wait until stable.
    poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let again = end_offsets(target, topic);
        std::mem::replace(&mut copied, again.clone()) == again
    });
    let stored = stored_progress(target, source_alias)
        .unwrap_or_default()
        .into_iter()
        .filter(|((t, _), _)| t == topic)
        .map(|((_, p), stored)| (p, stored.offset))
        .collect();
    (copied, stored)
}
