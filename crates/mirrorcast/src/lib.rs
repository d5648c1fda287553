//! mirrorcast: a cross-cluster Kafka replicator that reads MirrorMaker 2 configuration and
//! writes MirrorMaker 2's internal topics, built first for broadcast (one source, many targets).
//!
//! # Layout
//! Lowest first; a module depends only on modules above it in this list (no import circles).
//! - `policy`, `filter`, [`acls`], [`topic_configs`]: replication policies, name filters, which
//!   ACLs and topic configs are copied (pure); [`config`]: the MM2 properties file (or a
//!   KafkaMirrorMaker2 resource) resolved into clusters and flows (pure).
//! - [`clock`], `health`, `backoff`, [`shutdown`]: time as a dependency, log once per change,
//!   retry pacing, the stop signal.
//! - [`ownership`]: who copies what (a process's standing in its group, a partition's copier
//!   thread or copy unit).
//! - [`observe`]: metrics and status, what every layer reports to.
//! - [`kafka`]: librdkafka clients, the cluster seam ([`kafka::cluster::ClusterAdmin`]) and the
//!   admin client behind it, the FFI module (the crate's only `unsafe`), reading a topic to its
//!   end.
//! - [`progress`]: MM2's stored source offsets; `plan`: what the topic manager and the group
//!   membership tell the copier (`Route`, `Command`).
//! - [`topics`]: the topic manager (create, grow, configs, ACLs, deletions), its schedule and
//!   rounds.
//! - [`offsets`]: offset syncs, translation, checkpoints, group offsets.
//! - `copy`: the copy of one source's flows: read once, produce to every target, progress only
//!   for what was acknowledged; generic over a reader, a target and a clock, tested against
//!   fakes. [`instances`]: several processes sharing a source through a consumer group.
//! - [`flow`]: the threads of a running process, in bootstrap order; [`heartbeats`]: MM2's
//!   heartbeats for the cluster pairs without an enabled flow; [`serve`]: the HTTP server.
//! - [`demo`]: the scenario on one machine (`mirrorcast demo` needs the `demo` feature).

pub mod acls;
pub(crate) mod backoff;
pub mod clock;
pub mod config;
pub(crate) mod copy;
pub mod demo;
pub(crate) mod filter;
pub mod flow;
mod health;
pub mod heartbeats;
pub mod instances;
pub mod kafka;
pub mod observe;
pub mod offsets;
pub mod ownership;
pub(crate) mod plan;
pub(crate) mod policy;
pub mod progress;
pub mod serve;
pub mod shutdown;
mod supervise;
pub mod topic_configs;
pub mod topics;
