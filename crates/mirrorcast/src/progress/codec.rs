//! MM2's progress records: the Kafka Connect source offsets that dedicated-mode MM2 keeps in
//! `mm2-offsets.<source>.internal`. Pure encode/decode, byte-compatible with MM2 so that either
//! tool can resume where the other stopped.
//!
//! Key: `["MirrorSourceConnector",{"cluster":"<source>","partition":<p>,"topic":"<topic>"}]`
//! Value: `{"offset":<last replicated source offset>}` (resume at offset + 1); mirrorcast adds
//! `"topicId"`, the source topic's ID, which MM2 reads past (it takes `offset` out of the map):
//! progress of an earlier topic of the same name is then told apart.

use serde::{Deserialize, Serialize};

use super::Stored;
use crate::kafka::cluster::TopicId;

pub use crate::config::DEDICATED_MODE_CONNECTOR;

/// A source topic-partition as MM2 names it in a progress key. Field order is the key's byte
/// order, so it must stay cluster, partition, topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourcePartition {
    pub cluster: String,
    pub partition: i32,
    pub topic: String,
}

#[derive(Serialize, Deserialize)]
struct OffsetValue {
    offset: i64,
    #[serde(rename = "topicId", default, skip_serializing_if = "Option::is_none")]
    topic_id: Option<String>,
}

pub fn encode_key(connector: &str, source_alias: &str, topic: &str, partition: i32) -> Vec<u8> {
    let key = SourcePartition {
        cluster: source_alias.to_string(),
        partition,
        topic: topic.to_string(),
    };
    // Serializing a tuple of a string and a plain struct cannot fail.
    serde_json::to_vec(&(connector, key)).unwrap_or_default()
}

pub fn encode_value(last_replicated_offset: i64, topic_id: Option<&TopicId>) -> Vec<u8> {
    serde_json::to_vec(&OffsetValue {
        offset: last_replicated_offset,
        topic_id: topic_id.map(|id| id.0.clone()),
    })
    .unwrap_or_default()
}

/// Decodes one record of the progress topic: `None` for records of another connector (they
/// share the topic in Connect); what is stored is `None` for a tombstone.
pub fn decode(
    connector: &str,
    key: &[u8],
    value: Option<&[u8]>,
) -> Option<(SourcePartition, Option<Stored>)> {
    let (name, partition): (String, SourcePartition) = serde_json::from_slice(key).ok()?;
    if name != connector {
        return None;
    }
    let offset = match value {
        None => None,
        Some(bytes) => {
            let value = serde_json::from_slice::<OffsetValue>(bytes).ok()?;
            Some(Stored {
                offset: value.offset,
                // Kafka's URL-safe form, whoever wrote it.
                topic_id: value
                    .topic_id
                    .map(|id| TopicId(id.replace('+', "-").replace('/', "_"))),
            })
        }
    };
    Some((partition, offset))
}

/// Whether `key` is a Connect offset key of `connector` (so a record [`decode`] cannot read is
/// one of ours gone wrong, not another connector's).
pub fn is_ours(connector: &str, key: &[u8]) -> bool {
    serde_json::from_slice::<(String, serde_json::Value)>(key)
        .is_ok_and(|(name, _)| name == connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_match_mm2() {
        assert_eq!(
            encode_key(DEDICATED_MODE_CONNECTOR, "A", "foo", 0),
            br#"["MirrorSourceConnector",{"cluster":"A","partition":0,"topic":"foo"}]"#
        );
        assert_eq!(
            encode_key(DEDICATED_MODE_CONNECTOR, "europe", "LH.ORDERS", 12),
            br#"["MirrorSourceConnector",{"cluster":"europe","partition":12,"topic":"LH.ORDERS"}]"#
        );
    }

    #[test]
    fn strimzi_connector_names_are_kept_apart() {
        let strimzi = "europe->northamerica.MirrorSourceConnector";
        let key = encode_key(strimzi, "europe", "LH.ORDERS", 0);
        assert_eq!(
            key,
            br#"["europe->northamerica.MirrorSourceConnector",{"cluster":"europe","partition":0,"topic":"LH.ORDERS"}]"#
        );
        assert!(decode(strimzi, &key, None).is_some());
        assert!(decode(DEDICATED_MODE_CONNECTOR, &key, None).is_none());
    }

    #[test]
    fn value_bytes_match_mm2() {
        assert_eq!(encode_value(1234, None), br#"{"offset":1234}"#);
    }

    /// MM2 takes `offset` out of the value's map and reads past other keys.
    #[test]
    fn the_topic_id_rides_beside_mm2s_offset() {
        let id = TopicId("kBkFq9Z1T8Wm1XH2jHfHwA".into());
        let value = encode_value(7, Some(&id));
        assert_eq!(value, br#"{"offset":7,"topicId":"kBkFq9Z1T8Wm1XH2jHfHwA"}"#);
        let key = encode_key(DEDICATED_MODE_CONNECTOR, "europe", "t", 0);
        let (_, stored) = decode(DEDICATED_MODE_CONNECTOR, &key, Some(&value)).unwrap();
        assert_eq!(
            stored,
            Some(Stored {
                offset: 7,
                topic_id: Some(id)
            })
        );
    }

    #[test]
    fn round_trip_and_tombstones() {
        let key = encode_key(DEDICATED_MODE_CONNECTOR, "europe", "t", 3);
        let (partition, offset) = decode(
            DEDICATED_MODE_CONNECTOR,
            &key,
            Some(&encode_value(99, None)),
        )
        .unwrap();
        assert_eq!(
            partition,
            SourcePartition {
                cluster: "europe".into(),
                partition: 3,
                topic: "t".into()
            }
        );
        assert_eq!(offset.map(|s| s.offset), Some(99));
        assert_eq!(
            decode(DEDICATED_MODE_CONNECTOR, &key, None).unwrap().1,
            None
        );
    }

    #[test]
    fn decodes_mm2_written_bytes_with_spaces_and_other_connectors_are_skipped() {
        let key = br#"[ "MirrorSourceConnector", {"topic":"foo","partition":1,"cluster":"B"} ]"#;
        let (p, o) = decode(DEDICATED_MODE_CONNECTOR, key, Some(br#"{ "offset" : 7 }"#)).unwrap();
        assert_eq!(
            (
                p.topic.as_str(),
                p.partition,
                p.cluster.as_str(),
                o.map(|s| s.offset)
            ),
            ("foo", 1, "B", Some(7))
        );
        assert!(decode(
            DEDICATED_MODE_CONNECTOR,
            br#"["MirrorCheckpointConnector",{"cluster":"B","partition":0,"topic":"x"}]"#,
            None
        )
        .is_none());
        assert!(decode(DEDICATED_MODE_CONNECTOR, b"not json", None).is_none());
        assert!(!is_ours(DEDICATED_MODE_CONNECTOR, b"not json"));
    }

    #[test]
    fn a_record_of_ours_that_does_not_decode_is_told_apart() {
        let key = encode_key(DEDICATED_MODE_CONNECTOR, "europe", "t", 3);
        assert!(decode(DEDICATED_MODE_CONNECTOR, &key, Some(b"{\"offset\":\"x\"}")).is_none());
        assert!(is_ours(DEDICATED_MODE_CONNECTOR, &key));
        let bad_key = br#"["MirrorSourceConnector",{"cluster":"europe"}]"#;
        assert!(decode(DEDICATED_MODE_CONNECTOR, bad_key, None).is_none());
        assert!(is_ours(DEDICATED_MODE_CONNECTOR, bad_key));
    }
}
