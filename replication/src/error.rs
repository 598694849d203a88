//! Errors of the replication layer. A peer's misbehaviour is a `Protocol` error: it ends that
//! peer's connection (with the reason logged), never the node.

use storage::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    #[error("certificate error: {0}")]
    Cert(String),
    #[error("peer protocol violation: {0}")]
    Protocol(String),
    #[error("peer speaks protocol version {theirs}, we speak {ours}")]
    Version { ours: u32, theirs: u32 },
    #[error("peer claims node id {claimed} but {why}")]
    NodeId { claimed: NodeId, why: String },
    #[error("store error: {0}")]
    Store(#[from] storage::StoreError),
    /// The peer could not serve a request (its store failed); the connection is fine.
    #[error("peer refused: {0}")]
    Refused(String),
    #[error("connection closed by peer")]
    Closed,
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Other(String),
}

impl ReplError {
    pub fn protocol(why: impl Into<String>) -> ReplError {
        ReplError::Protocol(why.into())
    }
}

pub type Result<T, E = ReplError> = std::result::Result<T, E>;
