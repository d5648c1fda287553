//! The integration tests, in one binary (one link instead of one per file): each module starts
//! its own clusters on free ports and runs in parallel with the others.
//!
//! Brokers: Apache Kafka unless `MIRRORCAST_TEST_BROKER=nisshi` (see `common`); the demo and
//! the page tests run nisshi, the demo's broker.

mod common;

mod batch_plane;
mod cli;
mod demo;
mod deploy;
mod exactly_once;
mod exactly_once_fencing;
mod fanout;
mod faults;
mod group_scale;
mod groups;
mod hostile;
mod http_access;
mod instances;
mod java_stores;
mod kerberos;
mod kubernetes_api;
mod limits;
mod mm2;
mod observability;
mod offsets;
mod oidc;
mod outage;
mod page;
mod parity;
mod poison;
mod poison_order;
mod replication;
mod resources;
mod restart;
mod scale;
mod secure;
mod source_logs;
mod source_resets;
mod stored_progress;
mod supervision;
mod topic_sync;
