//! Errors of the coordination group.

use super::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("coordination store: {0}")]
    Store(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("node {0} is not a member")]
    UnknownNode(NodeId),
    #[error("node {0} is a witness and cannot be active")]
    Witness(NodeId),
    #[error("peer protocol violation: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("hand-over to node {to} did not complete: {why}")]
    Handover { to: NodeId, why: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the coordinator is shut down")]
    Shutdown,
}

impl CoordError {
    pub fn raft(e: impl std::fmt::Display) -> CoordError {
        CoordError::Raft(e.to_string())
    }
}

pub type CoordResult<T> = std::result::Result<T, CoordError>;
