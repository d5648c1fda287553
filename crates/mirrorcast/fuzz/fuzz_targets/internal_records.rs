//! Records of MM2's internal topics as another writer (or a corrupted log) could leave them:
//! `mm2-offsets` progress, offset syncs, checkpoints and heartbeats. Decoding never panics,
//! and whatever decodes encodes back to what decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorcast::offsets::codec::{Checkpoint, Heartbeat, OffsetSync};
use mirrorcast::progress::codec;

const CONNECTOR: &str = "MirrorSourceConnector";

fuzz_target!(|data: &[u8]| {
    // First byte: where the key ends; the rest is the value.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(split).min(rest.len()));

    if let Ok(sync) = OffsetSync::decode(key, value) {
        assert_eq!(OffsetSync::decode(&sync.key(), &sync.value()).ok(), Some(sync));
    }
    if let Ok(checkpoint) = Checkpoint::decode(key, value) {
        let again = Checkpoint::decode(&checkpoint.key(), &checkpoint.value()).ok();
        assert_eq!(again, Some(checkpoint));
    }
    if let Ok(heartbeat) = Heartbeat::decode(key, value) {
        let again = Heartbeat::decode(&heartbeat.key(), &heartbeat.value()).ok();
        assert_eq!(again, Some(heartbeat));
    }
    for value in [Some(value), None] {
        if let Some((partition, offset)) = codec::decode(CONNECTOR, key, value) {
            let key = codec::encode_key(CONNECTOR, &partition.cluster, &partition.topic, partition.partition);
            let value = offset
                .as_ref()
                .map(|stored| codec::encode_value(stored.offset, stored.topic_id.as_ref()));
            assert_eq!(
                codec::decode(CONNECTOR, &key, value.as_deref()),
                Some((partition, offset))
            );
        }
        let _ = codec::is_ours(CONNECTOR, key);
    }
});
