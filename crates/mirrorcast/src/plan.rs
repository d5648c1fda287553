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
#[derive(Debug, Clone)]
pub enum Command {
    /// The stored progress, read from the target before the first routes.
    Resume(Progress),
    /// The remote topics exist; copy these partitions (new ones are added, known ones kept).
    Routes(Vec<Route>),
    /// These source topics are gone for good: stop copying them and drop their progress, so
    /// that a topic created again under the same name starts from its beginning.
    Forget(Vec<String>),
    /// Instances sharing a group (`crate::instances`): the group gave this process these
    /// partitions; their progress, read from the progress topic after the assignment.
    Acquire {
        partitions: Vec<(String, i32)>,
        progress: Progress,
    },
    /// The group takes these partitions away: stop reading them, store their acknowledged
    /// progress, then answer on `done` (the group hands them on only after every answer).
    Release {
        partitions: Vec<(String, i32)>,
        done: std::sync::mpsc::Sender<()>,
    },
    /// Exactly once with instances sharing a group: the group gave this process copy units
    /// (copier threads, `crate::instances::units`). The lanes of those threads register their
    /// transactional id anew, which fences the unit's previous owner and ends its open
    /// transaction, then answer on `done` with their unit (every lane answers, `Err` saying
    /// why it could not); only then is the units' progress read and acquired.
    Fence {
        units: Vec<usize>,
        done: std::sync::mpsc::Sender<(usize, Result<(), String>)>,
    },
    /// Exactly once with instances sharing a group: these units are no longer this process's
    /// (sent after their partitions' `Release` or `Abandon`): nothing their lanes still hold
    /// commits, and they register nothing until a `Fence` gives them again.
    Yield(Vec<usize>),
    /// The group took these partitions away without asking (the session expired): stop
    /// without storing anything, another member copies them from its own reading of the
    /// progress.
    Abandon(Vec<(String, i32)>),
}

/// The topic manager's line to every copier thread of its flow: each is told everything and
/// keeps the partitions that are its own.
#[derive(Debug, Clone)]
pub struct Commands(Vec<std::sync::mpsc::Sender<Command>>);

/// A copier thread of the flow is gone (the attempt is stopping).
#[derive(Debug)]
pub struct CopierGone;

impl Commands {
    /// A line to `threads` copier threads, and each thread's end of it.
    pub fn to_threads(threads: usize) -> (Self, Vec<std::sync::mpsc::Receiver<Command>>) {
        let (senders, receivers) = (0..threads.max(1))
            .map(|_| std::sync::mpsc::channel())
            .unzip();
        (Commands(senders), receivers)
    }

    /// How many copier threads hear each command.
    pub fn threads(&self) -> usize {
        self.0.len()
    }

    pub fn send(&self, command: Command) -> Result<(), CopierGone> {
        for sender in &self.0 {
            sender.send(command.clone()).map_err(|_| CopierGone)?;
        }
        Ok(())
    }
}
