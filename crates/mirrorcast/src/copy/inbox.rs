//! What a lane hears: the topic manager's and the group membership's commands, taken between
//! rounds and dispatched to the lane's parts.
//!
//! Invariant: commands are applied in the order they were sent, each once.

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::plan::ToCopier;

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
    pub fn receive(&mut self) -> Option<ToCopier> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Command, GroupCommand};

    #[test]
    fn commands_come_in_the_order_sent_and_a_gone_sender_is_noted() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut inbox = Inbox::new(receiver);
        assert!(inbox.receive().is_none() && !inbox.disconnected());
        sender
            .send(Command::Forget(vec!["a".into()]).into())
            .unwrap();
        sender.send(GroupCommand::Yield(vec![1]).into()).unwrap();
        assert!(matches!(
            inbox.receive(),
            Some(ToCopier::Topics(Command::Forget(_)))
        ));
        assert!(matches!(
            inbox.receive(),
            Some(ToCopier::Group(GroupCommand::Yield(_)))
        ));
        assert!(inbox.receive().is_none() && !inbox.disconnected());
        drop(sender);
        assert!(inbox.receive().is_none() && inbox.disconnected());
    }
}
