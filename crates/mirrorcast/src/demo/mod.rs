//! The broadcast scenario on one machine: the event producer (`datagen`), the regional
//! consumers (`consume`), and `mirrorcast demo` ([`scenario`]), which runs three local
//! clusters, replication from Europe to the two other regions, the producer and the consumers,
//! and removes it all; `control` has the commands for a second terminal. Those two need the
//! `demo` feature (on by default); the producer and the consumers do not.

pub mod consume;
#[cfg(feature = "demo")]
pub mod control;
pub mod datagen;
pub mod events;
#[cfg(feature = "demo")]
pub mod scenario;

/// What can stop the demo.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[cfg(feature = "demo")]
    #[error(transparent)]
    Cluster(#[from] localcluster::Error),
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Topic(#[from] crate::topics::TopicError),
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}
