//! Record batches as the wire carries them (for the batch data plane, `crate::copy::batches`) (format v2, magic 2): a fetch's bytes cut into
//! batches read in place, the few header fields a copy must change rewritten with the
//! checksum, and the batches that cannot pass whole re-encoded.
//!
//! Invariant: a batch that passes whole keeps its body (records, compressed or not) byte for
//! byte; only base offset, partition leader epoch, the transactional bit, producer id and
//! epoch, base sequence and the CRC change. A re-encoded batch holds the same records in the
//! same order, each record's key, value and headers copied as their bytes (duplicate and
//! non-UTF-8 header keys included), and the same timestamps.
//!
//! The records' own encoding is hand-written (varints and slices, ~100 lines) rather than
//! `kafka_protocol::records`: its `Record` keeps headers in a map, which would merge duplicate
//! header keys and refuse non-UTF-8 ones. Its compression codecs are used as they are.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;
/// The v2 batch header; the records follow.
pub const HEADER_LEN: usize = 61;
/// Base offset and batch length come before what the batch length counts.
const LOG_OVERHEAD: usize = 12;

const COMPRESSION_MASK: i16 = 0x07;
const LOG_APPEND_TIME: i16 = 0x08;
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// Why bytes are not the batches they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("record batch at offset {offset} has magic {magic}: only format v2 is copied whole")]
    OldFormat { offset: i64, magic: i8 },
    #[error("record batch at offset {offset}: checksum {found:#010x}, computed {computed:#010x}")]
    Checksum {
        offset: i64,
        found: u32,
        computed: u32,
    },
    #[error("record batch at offset {offset}: {what}")]
    Corrupt { offset: i64, what: String },
    #[error("record batch at offset {offset}: compression {codec} unknown")]
    UnknownCodec { offset: i64, codec: i16 },
}

/// A batch's compression codec (its attributes' low 3 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn from_attributes(attributes: i16) -> Option<Self> {
        Some(match attributes & COMPRESSION_MASK {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return None,
        })
    }

    fn bits(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// A topic's `compression.type` as a codec; `None` for `producer` (keep the batch's own).
    pub fn of_topic_config(value: &str) -> Option<Self> {
        match value {
            "uncompressed" | "none" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// One record batch of a fetch, sharing the fetch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
}

/// A fetch's bytes cut into whole batches, and what the cut left.
#[derive(Debug, Default)]
pub struct Batches {
    pub batches: Vec<Batch>,
    /// A batch only partly in the fetch (the fetch's size limit cut it): read it again from its
    /// base offset. `None` when the bytes ended on a batch's end.
    pub cut_at: Option<i64>,
}

/// Cuts a fetch's records into batches. Bytes after the last whole batch are a batch the
/// response's size limit cut: not an error.
pub fn split(records: &Bytes) -> Result<Batches, FormatError> {
    let mut out = Batches::default();
    let mut at = 0;
    while records.len() - at >= LOG_OVERHEAD {
        let offset = i64_at(records, at + BASE_OFFSET);
        let length = i32_at(records, at + BATCH_LENGTH);
        let Ok(length) = usize::try_from(length) else {
            return Err(corrupt(offset, format!("batch length {length}")));
        };
        let end = at + LOG_OVERHEAD + length;
        if end > records.len() {
            out.cut_at = Some(offset);
            break;
        }
        // (A v0/v1 message is shorter than a v2 header: its magic is read first.)
        let magic = records.get(at + MAGIC).map_or(2, |m| *m as i8);
        if magic != 2 {
            return Err(FormatError::OldFormat { offset, magic });
        }
        if LOG_OVERHEAD + length < HEADER_LEN {
            return Err(corrupt(offset, format!("batch length {length}")));
        }
        out.batches.push(Batch {
            bytes: records.slice(at..end),
        });
        at = end;
    }
    if out.cut_at.is_none() && at < records.len() {
        out.cut_at = Some(i64_at_padded(records, at));
    }
    Ok(out)
}

fn corrupt(offset: i64, what: String) -> FormatError {
    FormatError::Corrupt { offset, what }
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

/// The base offset of a batch whose first 8 bytes may not all be there (-1 if not).
fn i64_at_padded(bytes: &[u8], at: usize) -> i64 {
    if bytes.len() >= at + 8 {
        i64_at(bytes, at)
    } else {
        -1
    }
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(b)
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

impl Batch {
    /// A batch from its bytes (tests, and re-encoded batches).
    pub fn from_bytes(bytes: Bytes) -> Result<Self, FormatError> {
        let mut batches = split(&bytes)?;
        match (batches.batches.len(), batches.cut_at) {
            (1, None) => Ok(batches.batches.remove(0)),
            _ => Err(corrupt(-1, "not one whole batch".to_string())),
        }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn base_offset(&self) -> i64 {
        i64_at(&self.bytes, BASE_OFFSET)
    }

    pub fn last_offset_delta(&self) -> i32 {
        i32_at(&self.bytes, LAST_OFFSET_DELTA)
    }

    /// The offset of its last record (or of the last one it held before compaction).
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }

    fn attributes(&self) -> i16 {
        i16_at(&self.bytes, ATTRIBUTES)
    }

    pub fn codec(&self) -> Result<Codec, FormatError> {
        let attributes = self.attributes();
        Codec::from_attributes(attributes).ok_or(FormatError::UnknownCodec {
            offset: self.base_offset(),
            codec: attributes & COMPRESSION_MASK,
        })
    }

    pub fn log_append_time(&self) -> bool {
        self.attributes() & LOG_APPEND_TIME != 0
    }

    pub fn transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL != 0
    }

    pub fn control(&self) -> bool {
        self.attributes() & CONTROL != 0
    }

    pub fn record_count(&self) -> i32 {
        i32_at(&self.bytes, RECORDS_COUNT)
    }

    /// Records were removed from inside it (compaction): its offsets have gaps.
    pub fn has_gaps(&self) -> bool {
        i64::from(self.record_count()) != i64::from(self.last_offset_delta()) + 1
    }

    pub fn producer_id(&self) -> i64 {
        i64_at(&self.bytes, PRODUCER_ID)
    }

    pub fn base_timestamp(&self) -> i64 {
        i64_at(&self.bytes, BASE_TIMESTAMP)
    }

    /// The largest timestamp of its records (the append time, for a LogAppendTime batch).
    pub fn max_timestamp(&self) -> i64 {
        i64_at(&self.bytes, MAX_TIMESTAMP)
    }

    /// The body: its records, compressed as the batch says.
    pub fn body(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN..)
    }

    /// The stored checksum against one computed over what it covers.
    pub fn check_crc(&self) -> Result<(), FormatError> {
        let found = u32::from_be_bytes([
            self.bytes[CRC],
            self.bytes[CRC + 1],
            self.bytes[CRC + 2],
            self.bytes[CRC + 3],
        ]);
        let computed = crc32c::crc32c(&self.bytes[ATTRIBUTES..]);
        if found == computed {
            Ok(())
        } else {
            Err(FormatError::Checksum {
                offset: self.base_offset(),
                found,
                computed,
            })
        }
    }

    /// Whether a control batch ends an aborted transaction (`Some(false)`: a commit; `None`:
    /// not a control batch, or an unknown control type).
    pub fn aborts(&self) -> Option<bool> {
        if !self.control() {
            return None;
        }
        let records = self.records().ok()?;
        let key = records.first()?.key()?;
        // Control record key: version (int16), type (int16: 0 abort, 1 commit).
        if key.len() < 4 {
            return None;
        }
        match i16_at(&key, 2) {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        }
    }

    /// The batch as the target's producer sends it: its records untouched, written by
    /// `producer` (id, epoch, base sequence; `None`: not idempotent), not transactional. The
    /// checksum of the body is computed once and combined with the new header's.
    pub fn for_producer(&self, producer: Option<Sequence>) -> Bytes {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.bytes[..HEADER_LEN]);
        header[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&0i64.to_be_bytes());
        header[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&(-1i32).to_be_bytes());
        let attributes = self.attributes() & !TRANSACTIONAL;
        header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let (id, epoch, sequence) = producer.map_or((-1, -1, -1), |p| (p.id, p.epoch, p.base));
        header[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&id.to_be_bytes());
        header[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
        header[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&sequence.to_be_bytes());
        let body = &self.bytes[HEADER_LEN..];
        let body_crc = crc32c::crc32c(body);
        let crc =
            crc32c::crc32c_combine(crc32c::crc32c(&header[ATTRIBUTES..]), body_crc, body.len());
        header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let mut out = BytesMut::with_capacity(self.bytes.len());
        out.put_slice(&header);
        out.put_slice(body);
        out.freeze()
    }

    /// Its records, decompressed, each with its absolute offset and timestamp.
    pub fn records(&self) -> Result<Vec<RawRecord>, FormatError> {
        let offset = self.base_offset();
        let body = decompress(self.codec()?, self.body())
            .map_err(|e| corrupt(offset, format!("cannot decompress: {e}")))?;
        let mut cursor = Cursor {
            bytes: &body,
            at: 0,
            offset,
        };
        let count = self.record_count();
        // (A record takes at least 7 bytes: the count cannot ask for more room than that.)
        let room = usize::try_from(count).unwrap_or(0).min(body.len() / 7 + 1);
        let mut records = Vec::with_capacity(room);
        let (base_offset, base_timestamp) = (self.base_offset(), self.base_timestamp());
        let append_time = self.log_append_time().then(|| self.max_timestamp());
        for _ in 0..count {
            let length = usize::try_from(cursor.varint()?)
                .map_err(|_| corrupt(offset, "negative record length".to_string()))?;
            let start = cursor.at;
            let end = start
                .checked_add(length)
                .filter(|end| *end <= body.len())
                .ok_or_else(|| corrupt(offset, "record past the batch's end".to_string()))?;
            let attributes = cursor.byte()?;
            let timestamp_delta = cursor.varlong()?;
            let offset_delta = cursor.varint()?;
            if cursor.at > end {
                return Err(corrupt(
                    offset,
                    "record shorter than its header".to_string(),
                ));
            }
            let rest = body.slice(cursor.at..end);
            cursor.at = end;
            records.push(RawRecord {
                offset: base_offset.wrapping_add(offset_delta),
                // A LogAppendTime batch's records all carry the append time (the consumer's
                // view of them, and what the record plane copies).
                timestamp: append_time.unwrap_or(base_timestamp.wrapping_add(timestamp_delta)),
                attributes,
                rest,
            });
        }
        Ok(records)
    }
}

/// The producer a batch is written by: its id, epoch and the batch's base sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    pub id: i64,
    pub epoch: i16,
    pub base: i32,
}

/// A record of a batch: where it was, when, and its key, value and headers as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: i64,
    pub timestamp: i64,
    attributes: u8,
    /// Key, value and headers as the record encodes them (length-prefixed, varints).
    rest: Bytes,
}

impl RawRecord {
    /// A record of key, value and headers (tests and fallbacks that build records).
    pub fn new(
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Self {
        let mut rest = BytesMut::new();
        put_nullable(&mut rest, key);
        put_nullable(&mut rest, value);
        put_varint(&mut rest, headers.len() as i64);
        for (k, v) in headers {
            put_nullable(&mut rest, Some(k));
            put_nullable(&mut rest, *v);
        }
        RawRecord {
            offset,
            timestamp,
            attributes: 0,
            rest: rest.freeze(),
        }
    }

    /// Its key, as the record holds it.
    pub fn key(&self) -> Option<Bytes> {
        let mut cursor = Cursor {
            bytes: &self.rest,
            at: 0,
            offset: self.offset,
        };
        cursor.nullable().ok().flatten()
    }

    /// Key, value and headers in order (tests compare what a copy kept).
    pub fn parts(&self) -> Result<RecordParts, FormatError> {
        let mut cursor = Cursor {
            bytes: &self.rest,
            at: 0,
            offset: self.offset,
        };
        let key = cursor.nullable()?;
        let value = cursor.nullable()?;
        let count = cursor.varint()?;
        let mut headers = Vec::new();
        for _ in 0..count {
            let name = cursor.nullable()?.unwrap_or_default();
            headers.push((name, cursor.nullable()?));
        }
        Ok(RecordParts {
            key,
            value,
            headers,
        })
    }

    fn encoded_len(&self) -> usize {
        self.rest.len() + 1 + 10 + 5
    }
}

/// A record's key, value and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordParts {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Encodes `records` (in order, at least one) as one CreateTime batch compressed with
/// `codec`, written by `producer`. Offset deltas are 0, 1, 2…: the target numbers them anyway,
/// and contiguous deltas are what it appends without re-compressing.
pub fn encode(
    records: &[RawRecord],
    codec: Codec,
    producer: Option<Sequence>,
) -> Result<Bytes, FormatError> {
    let (Some(first), Some(_)) = (records.first(), records.last()) else {
        return Err(corrupt(-1, "no records to encode".to_string()));
    };
    let base_timestamp = records.iter().map(|r| r.timestamp).min().unwrap_or(-1);
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);
    let mut plain = BytesMut::with_capacity(records.iter().map(RawRecord::encoded_len).sum());
    let mut scratch = BytesMut::with_capacity(32);
    for (delta, record) in records.iter().enumerate() {
        scratch.clear();
        scratch.put_u8(record.attributes);
        put_varint(&mut scratch, record.timestamp - base_timestamp);
        put_varint(&mut scratch, delta as i64);
        put_varint(&mut plain, (scratch.len() + record.rest.len()) as i64);
        plain.put_slice(&scratch);
        plain.put_slice(&record.rest);
    }
    let body = compress(codec, plain.freeze())
        .map_err(|e| corrupt(first.offset, format!("cannot compress: {e}")))?;
    let count = i32::try_from(records.len())
        .map_err(|_| corrupt(first.offset, "too many records".to_string()))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_i64(0);
    out.put_i32((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    out.put_i32(-1);
    out.put_i8(2);
    out.put_u32(0); // the CRC, below
    out.put_i16(codec.bits());
    out.put_i32(count - 1);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    let (id, epoch, sequence) = producer.map_or((-1, -1, -1), |p| (p.id, p.epoch, p.base));
    out.put_i64(id);
    out.put_i16(epoch);
    out.put_i32(sequence);
    out.put_i32(count);
    out.put_slice(&body);
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

fn decompress(codec: Codec, mut body: Bytes) -> anyhow::Result<Bytes> {
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    match codec {
        Codec::None => Ok(body),
        Codec::Gzip => Gzip::decompress(&mut body, take),
        Codec::Snappy => Snappy::decompress(&mut body, take),
        Codec::Lz4 => Lz4::decompress(&mut body, take),
        Codec::Zstd => Zstd::decompress(&mut body, take),
    }
}

fn compress(codec: Codec, plain: Bytes) -> anyhow::Result<Bytes> {
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| {
        b.put_slice(&plain);
        Ok(())
    };
    match codec {
        Codec::None => return Ok(plain.clone()),
        Codec::Gzip => Gzip::compress(&mut out, put)?,
        Codec::Snappy => Snappy::compress(&mut out, put)?,
        Codec::Lz4 => Lz4::compress(&mut out, put)?,
        Codec::Zstd => Zstd::compress(&mut out, put)?,
    }
    Ok(out.freeze())
}

/// Reads a record's varints and slices, naming the batch in its errors.
struct Cursor<'a> {
    bytes: &'a Bytes,
    at: usize,
    offset: i64,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, FormatError> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| corrupt(self.offset, "record truncated".to_string()))?;
        self.at += 1;
        Ok(b)
    }

    /// A zig-zag varint of up to 64 bits (Kafka's varint and varlong alike).
    fn varlong(&mut self) -> Result<i64, FormatError> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(corrupt(self.offset, "varint too long".to_string()))
    }

    fn varint(&mut self) -> Result<i64, FormatError> {
        self.varlong()
    }

    fn nullable(&mut self) -> Result<Option<Bytes>, FormatError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        let end = self
            .at
            .checked_add(length as usize)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt(self.offset, "field past the record's end".to_string()))?;
        let value = self.bytes.slice(self.at..end);
        self.at = end;
        Ok(Some(value))
    }
}

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

fn put_nullable(out: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => put_varint(out, -1),
        Some(v) => {
            put_varint(out, v.len() as i64);
            out.put_slice(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(from: i64, n: i64) -> Vec<RawRecord> {
        (from..from + n)
            .map(|o| {
                let value = format!("value {o}");
                RawRecord::new(
                    o,
                    1_700_000_000_000 + o,
                    Some(format!("k{o}").as_bytes()),
                    Some(value.as_bytes()),
                    &[
                        (b"trace-id".as_slice(), Some(b"t".as_slice())),
                        (b"trace-id".as_slice(), None),
                        (&[0xff, 0xfe], Some(b"not utf-8 key".as_slice())),
                    ],
                )
            })
            .collect()
    }

    /// A batch as a source broker stores it: at `base`, written by producer 7.
    fn stored(base: i64, n: i64, codec: Codec) -> Batch {
        let producer = Sequence {
            id: 7,
            epoch: 3,
            base: 40,
        };
        let bytes = encode(&records(base, n), codec, Some(producer)).unwrap();
        let mut bytes = BytesMut::from(&bytes[..]);
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        bytes[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&5i32.to_be_bytes());
        Batch {
            bytes: bytes.freeze(),
        }
    }

    #[test]
    fn a_batch_passes_with_its_body_byte_for_byte_and_a_valid_checksum() {
        for codec in [
            Codec::None,
            Codec::Lz4,
            Codec::Zstd,
            Codec::Gzip,
            Codec::Snappy,
        ] {
            let source = stored(100, 5, codec);
            let producer = Sequence {
                id: 99,
                epoch: 0,
                base: 12,
            };
            let out = Batch::from_bytes(source.for_producer(Some(producer))).unwrap();
            out.check_crc().unwrap();
            assert_eq!(out.body(), source.body(), "{codec:?}");
            assert_eq!(out.producer_id(), 99);
            assert_eq!(out.base_offset(), 0);
            assert_eq!(out.record_count(), 5);
            assert_eq!(out.codec().unwrap(), codec);
            let kept: Vec<_> = out
                .records()
                .unwrap()
                .iter()
                .map(|r| r.rest.clone())
                .collect();
            let had: Vec<_> = source
                .records()
                .unwrap()
                .iter()
                .map(|r| r.rest.clone())
                .collect();
            assert_eq!(kept, had);
        }
    }

    #[test]
    fn re_encoding_keeps_keys_values_duplicate_headers_and_timestamps() {
        let source = stored(10, 6, Codec::Lz4);
        let tail: Vec<_> = source
            .records()
            .unwrap()
            .into_iter()
            .filter(|r| r.offset >= 13)
            .collect();
        let out = Batch::from_bytes(encode(&tail, Codec::Lz4, None).unwrap()).unwrap();
        out.check_crc().unwrap();
        let got = out.records().unwrap();
        assert_eq!(got.len(), 3);
        for (got, want) in got.iter().zip(records(13, 3)) {
            assert_eq!(got.timestamp, want.timestamp);
            assert_eq!(got.parts().unwrap(), want.parts().unwrap());
        }
        let parts = got[0].parts().unwrap();
        assert_eq!(parts.headers.len(), 3);
        assert_eq!(parts.headers[1], (Bytes::from_static(b"trace-id"), None));
        assert_eq!(parts.headers[2].0, Bytes::from_static(&[0xff, 0xfe]));
    }

    #[test]
    fn a_fetch_cut_inside_a_batch_gives_the_whole_ones_and_where_to_read_again() {
        let (a, b) = (stored(0, 3, Codec::None), stored(3, 4, Codec::Lz4));
        let mut fetch = BytesMut::new();
        fetch.put_slice(a.bytes());
        fetch.put_slice(&b.bytes()[..b.len() - 5]);
        let cut = split(&fetch.freeze()).unwrap();
        assert_eq!(cut.batches, vec![a.clone()]);
        assert_eq!(cut.cut_at, Some(3));
        assert_eq!(a.last_offset(), 2);
        let whole = split(a.bytes()).unwrap();
        assert_eq!((whole.batches.len(), whole.cut_at), (1, None));
    }

    #[test]
    fn damaged_bytes_are_errors_not_batches() {
        let source = stored(0, 3, Codec::None);
        let mut bad = BytesMut::from(&source.bytes()[..]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let bad = Batch::from_bytes(bad.freeze()).unwrap();
        assert!(matches!(bad.check_crc(), Err(FormatError::Checksum { .. })));
        let mut old = BytesMut::from(&source.bytes()[..]);
        old[MAGIC] = 1;
        assert_eq!(
            split(&old.freeze()).unwrap_err(),
            FormatError::OldFormat {
                offset: 0,
                magic: 1
            }
        );
    }

    #[test]
    fn compacted_and_control_batches_are_told_apart() {
        let mut gaps = records(0, 5);
        gaps.remove(2);
        let mut bytes = BytesMut::from(&encode(&gaps, Codec::None, None).unwrap()[..]);
        // As compaction leaves it: last offset delta 4, four records.
        bytes[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&4i32.to_be_bytes());
        let batch = Batch {
            bytes: bytes.freeze(),
        };
        assert!(batch.has_gaps());
        assert!(!stored(0, 5, Codec::None).has_gaps());
        let marker = RawRecord::new(9, 0, Some(&[0, 0, 0, 0]), Some(&[0, 0, 0, 0, 0, 0]), &[]);
        let mut bytes = BytesMut::from(&encode(&[marker], Codec::None, None).unwrap()[..]);
        bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&(CONTROL | TRANSACTIONAL).to_be_bytes());
        let abort = Batch {
            bytes: bytes.freeze(),
        };
        assert_eq!(abort.aborts(), Some(true));
        assert_eq!(stored(0, 1, Codec::None).aborts(), None);
        let unmarked = Batch::from_bytes(abort.for_producer(None)).unwrap();
        assert!(!unmarked.transactional() && unmarked.control());
    }
}
