//! This node's own writes that no peer is known to hold yet (`replicated` durability), and
//! what clients may see meanwhile.
//!
//! A write is durable here before a peer has it. If this node dies or is cut off before the
//! record leaves, the write was never acknowledged, and the next active node gives its UID and
//! modseq to other changes. A client of this node that read the write meanwhile would then see
//! one UID name two messages, or HIGHESTMODSEQ go back (invariants 2 and 3). So, while a write
//! is unconfirmed, readers see each mailbox it touched as it was before it: UIDs from the
//! first unconfirmed write's UIDNEXT on and modseqs above its HIGHESTMODSEQ stay out of sight
//! until a peer acknowledges (or the node gives up waiting and acknowledges it alone, degraded
//! to local durability, which the node logs and counts).

use crate::types::MailboxId;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// A mailbox as it was before one unconfirmed record of this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Before {
    /// The record's sequence number (this node's origin).
    pub seq: u64,
    pub mailbox: MailboxId,
    pub uidnext: u32,
    pub highestmodseq: u64,
}

/// What readers may see of a mailbox while some of this node's writes to it are unconfirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisibleLimit {
    /// Messages at this UID or above are not shown yet; UIDNEXT shows no more than this.
    pub uidnext: u32,
    /// Changes above this modseq are not shown yet; HIGHESTMODSEQ shows no more than this.
    pub highestmodseq: u64,
}

#[derive(Default)]
pub(crate) struct Unconfirmed {
    /// In sequence order; a mailbox's first entry is its earliest (smallest) state.
    entries: Mutex<VecDeque<Before>>,
}

/// Bounds memory if nothing confirms for a long time (no peer, replication stopped): past it
/// the oldest entries are dropped, i.e. shown, as a degraded node shows its writes anyway.
const MAX_ENTRIES: usize = 100_000;

impl Unconfirmed {
    pub fn push(&self, before: impl IntoIterator<Item = Before>) {
        let mut e = self.entries.lock();
        e.extend(before);
        while e.len() > MAX_ENTRIES {
            e.pop_front();
        }
    }

    /// Every record up to `seq` is on a peer (or acknowledged alone): shown from now on.
    /// Returns whether anything became visible.
    pub fn confirm(&self, seq: u64) -> bool {
        let mut e = self.entries.lock();
        let before = e.len();
        while e.front().is_some_and(|b| b.seq <= seq) {
            e.pop_front();
        }
        e.len() != before
    }

    pub fn limit(&self, mailbox: &MailboxId) -> Option<VisibleLimit> {
        self.entries
            .lock()
            .iter()
            .find(|b| b.mailbox == *mailbox)
            .map(|b| VisibleLimit {
                uidnext: b.uidnext,
                highestmodseq: b.highestmodseq,
            })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(n: u8) -> MailboxId {
        crate::types::Guid([n; 16])
    }

    #[test]
    fn a_mailbox_is_seen_as_before_its_first_unconfirmed_write_until_confirmed() {
        let u = Unconfirmed::default();
        assert_eq!(u.limit(&mb(1)), None);
        u.push([
            Before {
                seq: 5,
                mailbox: mb(1),
                uidnext: 10,
                highestmodseq: 20,
            },
            Before {
                seq: 6,
                mailbox: mb(2),
                uidnext: 3,
                highestmodseq: 4,
            },
            Before {
                seq: 7,
                mailbox: mb(1),
                uidnext: 11,
                highestmodseq: 21,
            },
        ]);
        assert_eq!(
            u.limit(&mb(1)),
            Some(VisibleLimit {
                uidnext: 10,
                highestmodseq: 20
            })
        );
        assert!(!u.confirm(4));
        assert!(u.confirm(5));
        assert_eq!(
            u.limit(&mb(1)),
            Some(VisibleLimit {
                uidnext: 11,
                highestmodseq: 21
            })
        );
        assert_eq!(
            u.limit(&mb(2)),
            Some(VisibleLimit {
                uidnext: 3,
                highestmodseq: 4
            })
        );
        assert!(u.confirm(7));
        assert!(u.is_empty());
        assert_eq!(u.limit(&mb(1)), None);
    }
}
