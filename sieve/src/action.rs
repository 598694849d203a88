//! What a script decided: the actions the caller (the delivery agent) carries out.

/// The message an action carries out, as editheader had left it when the action was taken
/// (RFC 5293 4); `None`: the message as it came, unedited.
pub type Snapshot = Option<std::sync::Arc<Vec<u8>>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store in the user's default mailbox (explicit `keep`, or the implicit keep).
    Keep {
        flags: Vec<String>,
        implicit: bool,
        message: Snapshot,
    },
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        copy: bool,
        create: bool,
        special_use: Option<String>,
        message: Snapshot,
    },
    Redirect {
        address: String,
        copy: bool,
        message: Snapshot,
    },
    Discard,
    /// `reject` (RFC 5429 2.2) or `ereject` (2.1, `extended`: refuse in protocol if possible).
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Vacation),
}

impl Action {
    /// Pigeonhole's name of the action (its test suite checks them).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Keep { .. } => "keep",
            Action::FileInto { .. } => "store",
            Action::Redirect { .. } => "redirect",
            Action::Discard => "discard",
            Action::Reject { .. } => "reject",
            Action::Vacation(_) => "vacation",
        }
    }
}

/// RFC 5230 vacation, with the RFC 6131 period in seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vacation {
    pub reason: String,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    /// Identifies "the same" vacation for reply tracking (RFC 5230 4.2).
    pub handle: String,
    /// Minimum time between two replies to one sender, in seconds.
    pub period: u64,
    /// The reply's To is the first of Reply-To, Sender, Resent-From, From even when it does
    /// not name the envelope sender (`sieve_vacation_to_header_ignore_envelope`).
    pub to_ignore_envelope: bool,
}
