//! The lane applying what it hears: the topic manager's commands (resume, routes, forget) and
//! the group membership's (acquire, release, abandon, fence, yield), in the order sent.

use tracing::info;

use super::Lane;
use crate::copy::io::{Reader, Target};
use crate::copy::readers::Reading;
use crate::plan::{Command, GroupCommand, ToCopier};

impl<T: Target> Lane<T> {
    pub fn apply_commands<R: Reader>(&mut self, io: &mut Reading<'_, R>) {
        while let Some(command) = self.inbox.receive() {
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
            Command::Refenced { unit, progress } => self.refenced(unit, &progress, io),
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
            GroupCommand::Fence { units, done } => self.fence(&units, done, io),
            GroupCommand::Yield(units) => self.yield_units(&units),
        }
    }
}
