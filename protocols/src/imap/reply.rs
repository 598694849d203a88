//! How a command ends ([`Done`]), and the store's errors as the NO a client gets for them. Shared
//! by the session loop and every command.

use super::response::{Code, RespText};
use storage::StoreError;

/// How a command ended: the tagged status and its text (response code included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    Ok(RespText),
    No(RespText),
    Bad(RespText),
    /// The connection ends now (what had to be said is already in the output).
    Close,
    /// The command already wrote its tagged reply (STARTTLS).
    Silent,
}

pub(crate) type Reply = Result<Done, Done>;

impl Done {
    /// `NO [code] text`.
    pub fn no(code: Code, text: impl Into<std::borrow::Cow<'static, str>>) -> Done {
        Done::No(RespText::coded(code, text))
    }

    /// `OK [code] text`.
    pub fn ok_coded(code: Code, text: impl Into<std::borrow::Cow<'static, str>>) -> Done {
        Done::Ok(RespText::coded(code, text))
    }

    /// Whether this is a NO with `code`.
    pub fn is_no(&self, code: &Code) -> bool {
        matches!(self, Done::No(t) if t.code.as_ref() == Some(code))
    }
}

/// A missing target mailbox gets TRYCREATE, so the client knows CREATE may help.
pub(crate) fn trycreate(name: &str) -> impl Fn(Done) -> Done + '_ {
    move |d| {
        if d.is_no(&Code::NonExistent) {
            Done::no(Code::TryCreate, format!("Mailbox doesn't exist: {name}"))
        } else {
            d
        }
    }
}

/// NO [SERVERBUG]: what a client is told when something failed that is not its doing.
pub(crate) fn server_bug() -> Done {
    Done::no(
        Code::ServerBug,
        "Internal error occurred. Refer to server log for more information.",
    )
}

/// Maps a store error to a tagged NO with Dovecot's response codes and texts.
pub(crate) fn store_error(e: StoreError) -> Done {
    match e {
        StoreError::NoSuchMailbox(name) => {
            Done::no(Code::NonExistent, format!("Mailbox doesn't exist: {name}"))
        }
        StoreError::MailboxExists(_) => Done::no(Code::AlreadyExists, "Mailbox already exists"),
        StoreError::InvalidMailboxName { reason, .. } => {
            Done::no(Code::Cannot, format!("Invalid mailbox name: {reason}"))
        }
        StoreError::MailboxProtected(name) => Done::no(
            Code::Cannot,
            format!("Mailbox {name} can't be deleted or renamed this way."),
        ),
        StoreError::HasChildren(_) => {
            Done::no(Code::InUse, "Mailbox has children, delete them first")
        }
        StoreError::OverQuota(what) => Done::no(
            Code::OverQuota,
            format!("Quota exceeded (mailbox for user is full): {what}"),
        ),
        StoreError::DiskFull(_) => Done::no(
            Code::Unavailable,
            "Not enough disk space on the server; try again later",
        ),
        StoreError::TooLarge { size, limit } => Done::no(
            Code::TooBig,
            format!("Message too large: {size} bytes, limit {limit}"),
        ),
        other => {
            tracing::error!("store error: {other}");
            server_bug()
        }
    }
}
