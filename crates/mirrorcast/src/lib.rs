//! mirrorcast: a cross-cluster Kafka replicator that reads MirrorMaker 2 configuration and
//! writes MirrorMaker 2's internal topics, built first for broadcast (one source, many targets).
//!
//! # Layout
//! - [`config`]: the MM2 properties file, resolved into clusters and flows (pure).
//! - [`policy`], [`filter`]: replication policies and topic filters (pure).
//! - [`progress`]: copy progress in `mm2-offsets.<source>.internal`; [`progress::codec`] is
//!   MM2's byte format (pure).
//! - [`topics`]: which topics a flow copies; the topic manager (create, grow, configs, ACLs,
//!   deletions) against a `ClusterAdmin` seam.
//! - [`offsets`]: offset syncs, checkpoints and heartbeats: MM2 bytes and translation (pure).
//! - [`copy`]: the copy loop of one flow: source partitions → same partitions on the target.
//! - [`flow`]: one flow at run time (topic manager + copier threads).
//! - [`demo`]: the scenario on one machine: event producer, consumers, `mirrorcast demo`.
//! - [`clients`]: librdkafka client settings: our defaults, the user's, and what we enforce.
//! - [`acls`]: which topic ACLs are copied and how (pure).
//! - [`admin_ext`]: librdkafka admin calls rust-rdkafka does not wrap (all of the `unsafe`).
//! - [`backoff`], [`shutdown`]: retry pacing and the stop signal shared by every thread.

#![deny(unsafe_code)]

pub mod acls;
pub(crate) mod backoff;
pub mod config;
pub(crate) mod copy;
pub mod demo;
pub(crate) mod filter;
pub mod flow;
mod health;
pub mod kafka;
pub mod observe;
pub mod offsets;
pub(crate) mod plan;
pub(crate) mod policy;
pub mod progress;
pub mod shutdown;
pub mod topics;
