//! Records whose message objects were purged.
//!
//! `node purge` drops the objects of expunged messages. A peer that lacks the Append (or Copy,
//! Move) of such a message still needs the record, since sequence numbers have no gaps, but
//! the object is gone for good. The sender ships the record without its object: it marks the
//! object purged by not sending it (a push sends every object of a new append it has and offers
//! every object a copy or move reuses; a pull answers `None` for it), and the receiver takes
//! the message as a *ghost* (`storage::index::Ghost`): its UID is taken (UIDNEXT moves past
//! it), the version vector and the mailbox's modseqs move exactly as on the sender, it takes
//! flag changes and renumberings like any message, but no client ever sees it (not in
//! SELECT/FETCH/SEARCH/STATUS, not in POP3, not in `--full` digests). The record that removes
//! it (an Expunge of its GUID in its mailbox, a Move out of it, the mailbox's deletion) turns it
//! into an ordinary expunged entry, the same tombstone and modseq as on the sender, whenever it
//! arrives: in the same frame or thousands of records later.
//!
//! Why this is correct in every case: a node never shows a message without its body, so a
//! sender that lacks an object has every message using it removed (or held as a ghost itself),
//! and the record that removes it follows the insertion in the sender's log (a node can only
//! remove a message it has): whoever ships, in push or pull, two or three nodes, the removal
//! reaches the receiver after the insertion, and until then the ghost is exactly the invisible
//! state the message will end in. The index reproduces ghosts from the log alone (a rebuild
//! replays the insertion and finds no object: a ghost again), so they survive restarts. If the
//! same bytes arrive again with another message, the object is here and the ghost becomes an
//! ordinary message (what a rebuild would make of it too).
//!
//! What it replaced: the insertion had to travel in the same frame as its removal, so the
//! shipper stretched a batch up to 10,000 records to keep them together, and a removal further
//! away failed the user's shipping every 5 s forever (a peer down long on a busy mailbox, or a
//! new node pulling a long history): every later message of that user never reached the peer.
//! Ghosts need no frame bound, no cut placement, and the resolver may cut a frame between an
//! insertion and its removal again (a conflicting purged message is renumbered like any).
//!
//! Why not keep objects until every peer has acked their records instead: that needs every
//! peer's acks durable on every node, holds space forever for a peer that is gone, and still
//! fails a new node pulling a user's history (`node sync`), whose objects were purged long ago.
//!
//! Strictness: the store refuses (nothing applied, the peer disconnected) a bodiless insertion
//! that would leave a message visible without its body (its GUID names a message visible
//! here). A ghost whose removal never comes (a lying or buggy peer) is listed by
//! `UserStore::ghosts` and logged when it is made and when a complete exchange with a peer
//! leaves it waiting.

use storage::record::Op;
use storage::{Guid, MailboxId, ObjectId};

/// A message a record brings into a mailbox, with the object it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insertion {
    pub mailbox: MailboxId,
    pub guid: Guid,
    pub object: ObjectId,
}

pub(crate) fn insertions(op: &Op) -> Vec<Insertion> {
    match op {
        Op::Append { mailbox, entry, .. } => vec![Insertion {
            mailbox: *mailbox,
            guid: entry.guid,
            object: entry.object,
        }],
        Op::Copy { to, entries, .. } | Op::Move { to, entries, .. } => entries
            .iter()
            .map(|(_, e)| Insertion {
                mailbox: *to,
                guid: e.guid,
                object: e.object,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::NewEntry;
    use storage::Flags;

    fn entry(g: u8) -> NewEntry {
        NewEntry {
            guid: Guid([g; 16]),
            uid: g as u32,
            object: ObjectId([g; 32]),
            size: 10,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        }
    }

    #[test]
    fn appends_copies_and_moves_insert_into_their_target_mailbox() {
        let (a, b) = (Guid([1; 16]), Guid([2; 16]));
        let append = Op::Append {
            mailbox: a,
            entry: entry(5),
            modseq: 1,
            delivery_key: None,
        };
        assert_eq!(
            insertions(&append),
            vec![Insertion {
                mailbox: a,
                guid: Guid([5; 16]),
                object: ObjectId([5; 32])
            }]
        );
        let mv = Op::Move {
            from: a,
            to: b,
            entries: vec![(Guid([5; 16]), entry(6)), (Guid([7; 16]), entry(8))],
            modseq: 2,
            from_modseq: 2,
        };
        let got: Vec<(MailboxId, Guid)> = insertions(&mv)
            .iter()
            .map(|i| (i.mailbox, i.guid))
            .collect();
        assert_eq!(got, vec![(b, Guid([6; 16])), (b, Guid([8; 16]))]);
        let expunge = Op::Expunge {
            mailbox: a,
            messages: vec![Guid([5; 16])],
            modseq: 3,
        };
        assert!(insertions(&expunge).is_empty());
    }
}
