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
    pub fn next(&mut self) -> Option<ToCopier> {
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
