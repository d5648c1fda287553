//! What a lane hears: the topic manager's and the group membership's commands, taken between
//! rounds and dispatched to the lane's parts.
//!
//! Invariant: commands are applied in the order they were sent, each once.

use std::sync::mpsc::{Receiver, TryRecvError};
use tracing::info;

use super::io::{Reader, Target};
use super::lane::Lane;
use super::readers::Reading;
use crate::plan::{Command, GroupCommand, ToCopier};

/// A lane's line from the control plane.
pub(crate) struct Inbox {
    commands: Receiver<ToCopier>,
    /// The topic manager is gone (shutdown).
    disconnected: bool,
}

impl Inbox {
    pub fn new(commands: Receiver<ToCopier>) -> Self {
        Inbox {
            commands,
            disconnected: false,
        }
    }

    /// The next command, if any came.
    fn next(&mut self) -> Option<ToCopier> {
        match self.commands.try_recv() {
            Ok(command) => Some(command),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.disconnected = true;
                None
            }
        }
    }

    /// Whether the control plane is gone.
    pub fn disconnected(&self) -> bool {
        self.disconnected
    }
}

impl<T: Target> Lane<T> {
    pub fn apply_commands<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        while let Some(command) = self.inbox.next() {
            match command {
                ToCopier::Topics(command) => self.apply(command, io),
                ToCopier::Group(command) => self.apply_group(command, io),
            }
        }
    }

    fn apply<R: Reader>(&mut self, command: Command, io: &mut Reading<'_, R>) {
        match command {
            Command::Resume(progress) => {
                let (ours, pending) = self.book.resume(progress);
                info!(flow = %self.ctx.flow_name, "resuming {ours} partition(s) from {}", self.ctx.flow.progress_topic());
                self.add_routes(pending, io);
            }
            Command::Routes(routes) => self.add_routes(routes, io),
            Command::Forget(topics) => {
                for topic in topics {
                    self.forget(&topic, io);
                }
            }
        }
    }

    fn apply_group<R: Reader>(&mut self, command: GroupCommand, io: &mut Reading<'_, R>) {
        match command {
            GroupCommand::Acquire {
                partitions,
                progress,
            } => self.acquire(partitions, progress, io),
            GroupCommand::Release { partitions, done } => {
                self.release(&partitions, io);
                // The membership waits for every thread's answer, or gives up waiting.
                done.send(());
            }
            GroupCommand::Abandon(partitions) => self.abandon(&partitions, io),
            GroupCommand::Fence { units, done } => self.fence(&units, done),
            GroupCommand::Yield(units) => self.yield_units(&units),
        }
    }
}
