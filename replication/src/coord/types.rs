//! The coordination group's types: the openraft type configuration, what a member is, the
//! commands the replicated log carries and the state they build.

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// A node's id in the cluster (the same id as in its certificate, `node-<id>.cluster`).
pub type NodeId = storage::NodeId;

openraft::declare_raft_types!(
    /// openraft's type configuration for the coordination group.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = CoordNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What the group knows of a member: where its coordination listener is and whether it is a
/// witness (a voter that stores no mail and never becomes active).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordNode {
    /// host:port of the member's coordination listener.
    pub addr: String,
    pub witness: bool,
}

/// How the cluster decides who may write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// The active node is the Raft leader (three voters, or two nodes and a witness).
    #[default]
    Raft,
    /// Two nodes without a witness: the node holding the virtual IP writes (keepalived decides)
    /// and the two-way merge repairs a split brain afterwards.
    KeepalivedLed,
}

/// A command of the replicated log. Small on purpose: the log carries decisions, not mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The Raft leader of `term` takes the active role (epoch + 1), or confirms a hand-over made
    /// to it (epoch unchanged). Ignored if a later term already confirmed an active node.
    Activate { node: NodeId, term: u64 },
    /// Planned hand-over: the active node `from` gives the active role to `to` (epoch + 1). Until
    /// `to` is Raft leader and confirms with `Activate`, no node is active.
    Handover { from: NodeId, to: NodeId },
    /// Changes the cluster mode.
    SetMode { mode: ClusterMode },
}

/// The state machine's answer to a command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Whether the command changed anything.
    pub applied: bool,
    pub active: Option<NodeId>,
    pub epoch: u64,
}

/// The replicated state (besides the membership, which openraft keeps beside it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The node that may write (once it confirmed it, see `active_term`).
    pub active: Option<NodeId>,
    /// Fencing epoch: grows at every change of active node (and at every new leader term).
    pub epoch: u64,
    /// The Raft term in which `active` confirmed the role; `None` while a hand-over waits for
    /// its target to become leader.
    pub active_term: Option<u64>,
    pub mode: ClusterMode,
}

impl ClusterState {
    /// Applies one command; deterministic, so every member computes the same state.
    pub fn apply(&mut self, cmd: &Command) -> CommandResult {
        let applied = match *cmd {
            Command::Activate { node, term } => {
                if self.active_term.is_some_and(|t| t >= term) {
                    // A duplicate, or a stale claim of an older leader committed late.
                    false
                } else if self.active == Some(node) && self.active_term.is_none() {
                    // The hand-over target confirms: the epoch was given at the hand-over.
                    self.active_term = Some(term);
                    true
                } else {
                    self.active = Some(node);
                    self.epoch += 1;
                    self.active_term = Some(term);
                    true
                }
            }
            Command::Handover { from, to } => {
                if self.active == Some(from) && self.active_term.is_some() && from != to {
                    self.active = Some(to);
                    self.epoch += 1;
                    self.active_term = None;
                    true
                } else {
                    false
                }
            }
            Command::SetMode { mode } => {
                let changed = self.mode != mode;
                self.mode = mode;
                changed
            }
        };
        CommandResult {
            applied,
            active: self.active,
            epoch: self.epoch,
        }
    }

    /// Whether `node` holds the active role confirmed in `term`.
    pub fn is_active_in(&self, node: NodeId, term: u64) -> bool {
        self.active == Some(node) && self.active_term == Some(term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_grows_at_every_change_of_active() {
        let mut s = ClusterState::default();
        assert!(s.apply(&Command::Activate { node: 1, term: 1 }).applied);
        assert_eq!((s.active, s.epoch), (Some(1), 1));
        // duplicate and stale claims change nothing
        assert!(!s.apply(&Command::Activate { node: 1, term: 1 }).applied);
        assert!(!s.apply(&Command::Activate { node: 2, term: 1 }).applied);
        assert!(s.apply(&Command::Activate { node: 2, term: 3 }).applied);
        assert_eq!((s.active, s.epoch), (Some(2), 2));
        // the same node in a later term takes a new epoch too
        assert!(s.apply(&Command::Activate { node: 2, term: 4 }).applied);
        assert_eq!(s.epoch, 3);
    }

    #[test]
    fn handover_gives_one_epoch_and_target_confirms() {
        let mut s = ClusterState::default();
        s.apply(&Command::Activate { node: 1, term: 2 });
        assert!(!s.apply(&Command::Handover { from: 3, to: 2 }).applied);
        assert!(s.apply(&Command::Handover { from: 1, to: 2 }).applied);
        assert_eq!((s.active, s.epoch, s.active_term), (Some(2), 2, None));
        assert!(!s.is_active_in(2, 2));
        assert!(s.apply(&Command::Activate { node: 2, term: 3 }).applied);
        assert_eq!((s.active, s.epoch), (Some(2), 2));
        assert!(s.is_active_in(2, 3));
        // if another node wins the election instead, it takes a new epoch
        s.apply(&Command::Handover { from: 2, to: 3 });
        s.apply(&Command::Activate { node: 1, term: 4 });
        assert_eq!((s.active, s.epoch), (Some(1), 4));
    }
}
