//! The batch data plane (`data.plane = batch`, beyond MM2): record batches fetched from the
//! source and produced to each target whole, their bodies (records, compressed as the source
//! stored them) never decoded. Only what must change is rewritten (producer id, epoch and
//! sequence, the checksum); batches that cannot pass whole are re-encoded on the way
//! (`plan`; the format is `crate::kafka::record_batch`). Connections are our own over `kafka-protocol`'s messages (`crate::kafka::wire`);
//! progress, offset syncs and heartbeats go through librdkafka, as on the record plane.
//!
//! Invariant, as on the record plane: progress is stored only for batches the target
//! acknowledged, and a failure is a retry from there, never a gap.

mod cache;
mod copier;
pub mod plan;

pub use copier::run;
