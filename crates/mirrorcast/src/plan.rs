//! What the control plane tells the copier: the topic manager ([`Command`]) which partitions to
//! copy to which remote topics, from which stored progress, and which topics are gone; the group
//! membership ([`GroupCommand`]) which of them this process has. Both sides depend on this
//! module and not on each other.
//!
//! Invariant: the copier receives [`Command::Resume`] before any [`Command::Routes`], and a
//! route names a remote topic that exists with at least `partitions` partitions.

use crate::kafka::cluster::TopicId;
use crate::progress::Progress;

/// One replicated source topic and its remote topic on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub source_topic: String,
    pub remote_topic: String,
    /// Partitions to copy: the source's count, or fewer if the remote topic has fewer.
    pub partitions: i32,
    /// The source topic's ID when the route was given (`None`: the source has no topic IDs):
    /// progress stored under another ID is of an earlier topic of the same name.
    pub topic_id: Option<TopicId>,
    /// The remote topic's `max.message.bytes` on the target, when known: no batch may be
    /// larger, and a record that alone is larger is refused for good.
    pub max_message_bytes: Option<u32>,
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
    /// Exactly once without a group: copy unit `unit` lost its transactional id (its producer
    /// was fenced) and registered it again; `progress` was read afterwards, so it holds every
    /// commit made with the id before. The unit's partitions go on from there.
    Refenced { unit: usize, progress: Progress },
}

/// What the group membership of instances sharing a source (`crate::instances`) tells the
/// copier.
#[derive(Debug, Clone)]
pub enum GroupCommand {
    /// The group gave this process these partitions; their progress, read from the progress
    /// topic after the assignment.
    Acquire {
        partitions: Vec<(String, i32)>,
        progress: Progress,
    },
    /// The group takes these partitions away: stop reading them, store their acknowledged
    /// progress, then answer (the group hands them on only after every answer).
    Release {
        partitions: Vec<(String, i32)>,
        done: Reply<()>,
    },
    /// Exactly once: the group gave this process copy units (copier threads,
    /// `crate::ownership::shard`). The lanes of those threads register their transactional id
    /// anew, which fences the unit's previous owner and ends its open transaction, then answer
    /// with their unit (every lane answers, saying why if it could not); only then is the
    /// units' progress read and acquired.
    Fence {
        units: Vec<usize>,
        done: Reply<FenceAnswer>,
    },
    /// Exactly once: these units are no longer this process's (sent after their partitions'
    /// `Release` or `Abandon`): nothing their lanes still hold commits, and they register
    /// nothing until a `Fence` gives them again.
    Yield(Vec<usize>),
    /// The group took these partitions away without asking (the session expired): stop
    /// without storing anything, another member copies them from its own reading of the
    /// progress.
    Abandon(Vec<(String, i32)>),
}

/// Exactly once: copy units whose producer was fenced while this process still had them,
/// reported by their lanes to whoever gives units (the group membership, or the topic manager
/// without a group). Each lane drops its unit's partitions without writing and stands by; the
/// unit is fenced again and its progress read afterwards, unless another process took it.
#[derive(Debug, Clone, Default)]
pub struct LostUnits(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

impl LostUnits {
    pub fn report(&self, unit: usize) {
        self.lock().push(unit);
    }

    /// The units reported since the last call, each once.
    pub fn take(&self) -> Vec<usize> {
        let mut units = std::mem::take(&mut *self.lock());
        units.sort_unstable();
        units.dedup();
        units
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Exactly once without a group: set once a newer process took the flow's transactional ids
/// over. This process then copies nothing more of the flow, and its once-per-flow duties
/// (checkpoints, group offset sync) stop too, so that only the newer process writes them.
#[derive(Debug, Clone, Default)]
pub struct TakenOver(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl TakenOver {
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A lane's answer to a fence: its unit, and whether it registered the unit's id.
pub type FenceAnswer = (usize, Result<(), FenceRefused>);

/// Why a lane could not fence its unit's previous owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FenceRefused(pub String);

/// Where a copier thread answers a command that waits for it.
#[derive(Debug, Clone)]
pub struct Reply<T>(std::sync::mpsc::Sender<T>);

impl<T> Reply<T> {
    /// A reply line, and the end the asker waits on.
    pub fn channel() -> (Self, std::sync::mpsc::Receiver<T>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        (Reply(sender), receiver)
    }

    /// Answers; an asker that stopped waiting is no error.
    pub fn send(&self, answer: T) {
        let _ = self.0.send(answer);
    }
}

/// What a copier thread hears, by who says it.
#[derive(Debug, Clone)]
pub enum ToCopier {
    Topics(Command),
    Group(GroupCommand),
}

impl From<Command> for ToCopier {
    fn from(command: Command) -> Self {
        ToCopier::Topics(command)
    }
}

impl From<GroupCommand> for ToCopier {
    fn from(command: GroupCommand) -> Self {
        ToCopier::Group(command)
    }
}

/// The topic manager's line to every copier thread of its flow: each is told everything and
/// keeps the partitions that are its own.
#[derive(Debug, Clone)]
pub struct Commands(Vec<std::sync::mpsc::Sender<ToCopier>>);

/// A copier thread of the flow is gone (the attempt is stopping).
#[derive(Debug)]
pub struct CopierGone;

impl Commands {
    /// A line to `threads` copier threads, and each thread's end of it.
    pub fn to_threads(threads: usize) -> (Self, Vec<std::sync::mpsc::Receiver<ToCopier>>) {
        let (senders, receivers) = (0..threads.max(1))
            .map(|_| std::sync::mpsc::channel())
            .unzip();
        (Commands(senders), receivers)
    }

    /// How many copier threads hear each command.
    pub fn threads(&self) -> usize {
        self.0.len()
    }

    pub fn send(&self, command: impl Into<ToCopier>) -> Result<(), CopierGone> {
        let command = command.into();
        for sender in &self.0 {
            sender.send(command.clone()).map_err(|_| CopierGone)?;
        }
        Ok(())
    }
}
