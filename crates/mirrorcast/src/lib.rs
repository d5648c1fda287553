//! mirrorcast: a cross-cluster Kafka replicator that reads MirrorMaker 2 configuration and
//! writes MirrorMaker 2's internal topics, built first for broadcast (one source, many targets).
//!
//! # Layout
//! - [`config`]: the MM2 properties file (or a KafkaMirrorMaker2 resource) resolved into
//!   clusters and flows (pure).
//! - `policy`, `filter`, [`acls`]: replication policies, name filters, which ACLs are copied
//!   (pure).
//! - `plan`: what the control plane tells the copier (`Route`, `Command`).
//! - [`topics`]: the topic manager (create, grow, configs, ACLs, deletions) against the
//!   [`topics::ClusterAdmin`] seam, its schedule and rounds.
//! - `copy`: the copy of one source's flows: read once, produce to every target, progress only
//!   for what was acknowledged; generic over a reader and a target, tested against fakes.
//! - [`progress`], [`offsets`]: MM2's internal records (bytes, translation, checkpoints).
//! - [`flow`]: the threads of a running process, in bootstrap order; [`heartbeats`]: MM2's
//!   heartbeats for the cluster pairs without an enabled flow.
//! - [`kafka`]: librdkafka clients, the admin client, the FFI module (the crate's only
//!   `unsafe`), reading a topic to its end.
//! - [`observe`]: metrics, status, the HTTP server.
//! - [`demo`]: the scenario on one machine (`mirrorcast demo` needs the `demo` feature).
//! - `health`, `backoff`, [`shutdown`]: log once per change, retry pacing, the stop signal.

#![deny(unsafe_code)]

pub mod acls;
pub(crate) mod backoff;
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
pub(crate) mod plan;
pub(crate) mod policy;
pub mod progress;
pub mod shutdown;
mod supervise;
pub mod topics;
