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

/// How to run this program again from another terminal, for the hints the demo prints:
/// `mirrorcast` when that name on PATH is this very program, else its full path (a fresh
/// clone runs it through `cargo run`, so nothing named mirrorcast is on PATH).
#[cfg(feature = "demo")]
pub fn program() -> String {
    let this = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("mirrorcast"))
            .find(|candidate| candidate.is_file())
            .and_then(|found| std::fs::canonicalize(found).ok())
    });
    match this {
        Some(this) if on_path.as_ref() != Some(&this) => {
            let shown = this.display().to_string();
            if shown.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", shown.replace('\'', r"'\''"))
            } else {
                shown
            }
        }
        _ => "mirrorcast".to_string(),
    }
}

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
