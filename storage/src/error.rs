//! Errors of the store. Each says what happened and, where it helps, where (user, file, offset).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mailbox {0:?} does not exist")]
    NoSuchMailbox(String),
    #[error("mailbox {0:?} already exists")]
    MailboxExists(String),
    #[error("invalid mailbox name {name:?}: {reason}")]
    InvalidMailboxName { name: String, reason: &'static str },
    #[error("mailbox {0:?} cannot be deleted or renamed this way")]
    MailboxProtected(String),
    #[error("mailbox {0:?} has child mailboxes")]
    HasChildren(String),
    #[error("quota exceeded: {0}")]
    OverQuota(String),
    /// The store's filesystem is (nearly) full: nothing was written; writes resume by
    /// themselves once space is freed.
    #[error("not enough disk space: {0}")]
    DiskFull(String),
    #[error("message too large: {size} bytes, limit {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("invalid user name {0:?}")]
    InvalidUser(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data for user {user} in {path} at offset {offset}: {what}")]
    Corrupt {
        user: String,
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("index error: {0}")]
    Index(String),
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
