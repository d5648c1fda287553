//! What the control plane (the topic manager) tells the copier: which partitions to copy to
//! which remote topics, from which stored progress, and which topics are gone. Both sides
//! depend on this module and not on each other.
//!
//! Invariant: the copier receives [`Command::Resume`] before any [`Command::Routes`], and a
//! route names a remote topic that exists with at least `partitions` partitions.

use crate::progress::Progress;

/// One replicated source topic and its remote topic on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub source_topic: String,
    pub remote_topic: String,
    /// Partitions to copy: the source's count, or fewer if the remote topic has fewer.
    pub partitions: i32,
}

/// What the topic manager tells the copier.
#[derive(Debug)]
pub enum Command {
    /// The stored progress, read from the target before the first routes.
    Resume(Progress),
    /// The remote topics exist; copy these partitions (new ones are added, known ones kept).
    Routes(Vec<Route>),
    /// These source topics are gone for good: stop copying them and drop their progress, so
    /// that a topic created again under the same name starts from its beginning.
    Forget(Vec<String>),
}
