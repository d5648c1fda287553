//! MM2's internal records, byte for byte: offset syncs, checkpoints and heartbeats. Kafka's
//! `Struct` serialization: fields in order, no names or tags, big-endian integers, STRING as an
//! INT16 length and UTF-8 bytes. Readers ignore trailing bytes (newer versions may add fields).

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed MM2 record: {0}")]
pub struct DecodeError(&'static str);

/// Latest MM2 value version of checkpoints and heartbeats.
const VERSION: i16 = 0;

/// The mapping of one source offset to one target offset (`mm2-offset-syncs.<alias>.internal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetSync {
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
}

/// A group's translated offset (`<source>.checkpoints.internal` on the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub group: String,
    /// The remote topic name, as on the target.
    pub topic: String,
    pub partition: i32,
    pub upstream_offset: i64,
    pub downstream_offset: i64,
    pub metadata: String,
}

/// Proof of life of a flow (`heartbeats` on the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub source_alias: String,
    pub target_alias: String,
    pub timestamp_ms: i64,
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(Vec::new())
    }
    fn string(mut self, s: &str) -> Self {
        // MM2 strings are at most 32767 bytes; longer ones are cut at a char boundary.
        let mut end = s.len().min(i16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.extend_from_slice(&(end as i16).to_be_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..end]);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| DecodeError("negative string length"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }
}

impl OffsetSync {
    pub fn key(&self) -> Vec<u8> {
        Writer::new().string(&self.topic).i32(self.partition).0
    }
    pub fn value(&self) -> Vec<u8> {
        Writer::new()
            .i64(self.upstream_offset)
            .i64(self.downstream_offset)
            .0
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        Ok(OffsetSync {
            topic: k.string()?,
            partition: k.i32()?,
            upstream_offset: v.i64()?,
            downstream_offset: v.i64()?,
        })
    }
}

impl Checkpoint {
    pub fn key(&self) -> Vec<u8> {
        Writer::new()
            .string(&self.group)
            .string(&self.topic)
            .i32(self.partition)
            .0
    }
    pub fn value(&self) -> Vec<u8> {
        Writer::new()
            .i16(VERSION)
            .i64(self.upstream_offset)
            .i64(self.downstream_offset)
            .string(&self.metadata)
            .0
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
        let _version = v.i16()?;
        Ok(Checkpoint {
            group,
            topic,
            partition,
            upstream_offset: v.i64()?,
            downstream_offset: v.i64()?,
            metadata: v.string()?,
        })
    }
}

impl Heartbeat {
    pub fn key(&self) -> Vec<u8> {
        Writer::new()
            .string(&self.source_alias)
            .string(&self.target_alias)
            .0
    }
    pub fn value(&self) -> Vec<u8> {
        Writer::new().i16(VERSION).i64(self.timestamp_ms).0
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, DecodeError> {
        let mut k = Reader(key);
        let mut v = Reader(value);
        let (source_alias, target_alias) = (k.string()?, k.string()?);
        let _version = v.i16()?;
        Ok(Heartbeat {
            source_alias,
            target_alias,
            timestamp_ms: v.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn offset_sync_matches_the_worked_example() {
        let sync = OffsetSync {
            topic: "foo".into(),
            partition: 0,
            upstream_offset: 100,
            downstream_offset: 42,
        };
        assert_eq!(hex(&sync.key()), "00 03 66 6f 6f 00 00 00 00");
        assert_eq!(
            hex(&sync.value()),
            "00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 2a"
        );
        assert_eq!(
            OffsetSync::decode(&sync.key(), &sync.value()).unwrap(),
            sync
        );
    }

    #[test]
    fn checkpoint_bytes() {
        let checkpoint = Checkpoint {
            group: "g1".into(),
            topic: "europe.orders".into(),
            partition: 2,
            upstream_offset: 300,
            downstream_offset: 201,
            metadata: String::new(),
        };
        assert_eq!(
            hex(&checkpoint.key()),
            "00 02 67 31 00 0d 65 75 72 6f 70 65 2e 6f 72 64 65 72 73 00 00 00 02"
        );
        assert_eq!(
            hex(&checkpoint.value()),
            "00 00 00 00 00 00 00 00 01 2c 00 00 00 00 00 00 00 c9 00 00"
        );
        assert_eq!(
            Checkpoint::decode(&checkpoint.key(), &checkpoint.value()).unwrap(),
            checkpoint
        );
    }

    #[test]
    fn heartbeat_bytes() {
        let heartbeat = Heartbeat {
            source_alias: "eu".into(),
            target_alias: "na".into(),
            timestamp_ms: 1_795_546_835_277,
        };
        assert_eq!(hex(&heartbeat.key()), "00 02 65 75 00 02 6e 61");
        assert_eq!(hex(&heartbeat.value()), "00 00 00 00 01 a2 0e ee 69 4d");
        assert_eq!(
            Heartbeat::decode(&heartbeat.key(), &heartbeat.value()).unwrap(),
            heartbeat
        );
    }

    #[test]
    fn trailing_bytes_are_ignored_and_short_input_is_an_error() {
        let sync = OffsetSync {
            topic: "t".into(),
            partition: 1,
            upstream_offset: 5,
            downstream_offset: 6,
        };
        let mut value = sync.value();
        value.extend_from_slice(&[9, 9, 9]);
        assert_eq!(OffsetSync::decode(&sync.key(), &value).unwrap(), sync);
        assert!(OffsetSync::decode(&sync.key(), &value[..10]).is_err());
        assert!(Heartbeat::decode(&[0, 5, b'a'], &[]).is_err());
    }

    #[test]
    fn non_ascii_names_round_trip() {
        let checkpoint = Checkpoint {
            group: "grüppe".into(),
            topic: "tópico".into(),
            partition: 0,
            upstream_offset: 1,
            downstream_offset: 1,
            metadata: "{\"k\":1}".into(),
        };
        assert_eq!(
            Checkpoint::decode(&checkpoint.key(), &checkpoint.value()).unwrap(),
            checkpoint
        );
    }
}
