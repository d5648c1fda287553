//! Consumer offsets following the data (MM2's MirrorCheckpointConnector side): the byte
//! formats of offset syncs, checkpoints and heartbeats ([`codec`]) and the translation rules
//! (`translate`). Pure; the tasks that read and write these records build on them.

pub mod checkpoints;
pub mod codec;
pub mod groups;
pub mod sync_store;
pub(crate) mod translate;
