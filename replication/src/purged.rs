//! Records whose message objects were purged.
//!
//! `node purge` drops the objects of expunged messages. A peer that lacks the Append (or Copy,
//! Move) of such a message still needs the record, since sequence numbers have no gaps, but
//! the object is gone for good. The sender ships the record without its object, and the
//! receiver accepts that only where the message can never become visible without its body:
//! - a later record of the same frame removes it (an Expunge of its GUID in its mailbox, a Move
//!   out of that mailbox, or the mailbox's deletion), so the insertion and its removal are
//!   applied in one store call; the sender extends the batch's cut to keep them together;
//! - or it targets a mailbox that does not exist on the receiver (deleted before the insertion
//!   in the sender's log, hence also on the receiver), so applying it changes nothing.
//!
//! Why not keep objects until every peer has acked their records instead: that needs every
//! peer's acks durable on every node, holds space forever for a peer that is gone, and still
//! fails a new node pulling a user's history (`node sync`), whose objects were purged long ago.
//! The rule here needs no state beyond the frame and the receiver's mailboxes, and holds for
//! pushes, pulls, and three nodes alike (whoever ships, the removal follows the insertion in
//! its log, because a node can only remove a message it has).

use std::collections::{HashMap, HashSet};
use storage::record::{Op, Record};
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

/// An insertion of an absent object that no later record of the frame removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Open {
    /// Position of the inserting record in the frame.
    pub at: usize,
    pub insertion: Insertion,
    /// The mailbox was created earlier in the same frame (so it exists when the record applies).
    pub created_in_frame: bool,
}

/// Walks a frame as the index applies it, tracking insertions of `absent` objects until a later
/// record removes them. Calls `after(p, open)` after each record (p = records so far).
fn walk(
    records: &[Record],
    absent: &HashSet<ObjectId>,
    mut after: impl FnMut(usize, &HashMap<(MailboxId, Guid), Open>),
) {
    let mut open: HashMap<(MailboxId, Guid), Open> = HashMap::new();
    let mut deleted: HashSet<MailboxId> = HashSet::new();
    let mut created: HashSet<MailboxId> = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        for ins in insertions(&r.op) {
            // Into a mailbox deleted earlier in the frame: the index ignores it.
            if absent.contains(&ins.object) && !deleted.contains(&ins.mailbox) {
                open.insert(
                    (ins.mailbox, ins.guid),
                    Open {
                        at: i,
                        insertion: ins,
                        created_in_frame: created.contains(&ins.mailbox),
                    },
                );
            }
        }
        match &r.op {
            Op::MailboxCreate { mailbox, .. } => {
                created.insert(*mailbox);
            }
            Op::MailboxDelete { mailbox } => {
                deleted.insert(*mailbox);
                open.retain(|(mb, _), _| mb != mailbox);
            }
            Op::Expunge {
                mailbox, messages, ..
            } => {
                for g in messages {
                    open.remove(&(*mailbox, *g));
                }
            }
            // A move inserts into `to` (above) and then expunges its sources from `from`.
            Op::Move { from, entries, .. } => {
                for (src, _) in entries {
                    open.remove(&(*from, *src));
                }
            }
            _ => {}
        }
        after(i + 1, &open);
    }
}

/// Insertions of `absent` objects left in place at the end of the frame, in frame order.
pub(crate) fn unresolved(records: &[Record], absent: &HashSet<ObjectId>) -> Vec<Open> {
    let mut last = Vec::new();
    walk(records, absent, |p, open| {
        if p == records.len() {
            last = open.values().copied().collect();
        }
    });
    last.sort_by_key(|o| o.at);
    last
}

/// `clean[p]`: cutting the frame after its first `p` records separates no insertion of an
/// absent object from its removal (`p` from 0 to `records.len()`).
pub(crate) fn clean_cuts(records: &[Record], absent: &HashSet<ObjectId>) -> Vec<bool> {
    let mut clean = vec![true; records.len() + 1];
    walk(records, absent, |p, open| clean[p] = open.is_empty());
    clean
}

/// Where a sender may end a batch of `records` (a prefix of what the peer lacks) so that no
/// insertion of an absent object is separated from the record that removes it. `want` is the
/// cut the count and byte bounds asked for; `no_op(open)` says whether an insertion left open
/// changes nothing on the peer (its mailbox is gone here, and no later record deletes it).
/// Returns the smallest clean cut at or after `want`; failing that, the largest clean cut before
/// it; `None` if the first record already opens an insertion that the loaded records do not
/// close (the caller cannot ship it within one frame).
pub(crate) fn cut(
    records: &[Record],
    absent: &HashSet<ObjectId>,
    want: usize,
    no_op: impl Fn(&Open) -> bool,
) -> Option<usize> {
    let mut before = None;
    let mut after = None;
    walk(records, absent, |p, open| {
        if after.is_some() {
            return;
        }
        if open.values().all(&no_op) {
            if p >= want {
                after = Some(p);
            } else {
                before = Some(p);
            }
        }
    });
    after.or(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::NewEntry;
    use storage::{Flags, HlcTime};

    fn rec(seq: u64, op: Op) -> Record {
        Record {
            origin: 1,
            seq,
            time: HlcTime {
                wall_ms: seq,
                logical: 0,
                node: 1,
            },
            op,
        }
    }
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
    fn append(seq: u64, mb: u8, g: u8) -> Record {
        rec(
            seq,
            Op::Append {
                mailbox: Guid([mb; 16]),
                entry: entry(g),
                modseq: 1,
                delivery_key: None,
            },
        )
    }
    fn expunge(seq: u64, mb: u8, g: u8) -> Record {
        rec(
            seq,
            Op::Expunge {
                mailbox: Guid([mb; 16]),
                messages: vec![Guid([g; 16])],
                modseq: 1,
            },
        )
    }
    fn absent(objs: &[u8]) -> HashSet<ObjectId> {
        objs.iter().map(|g| ObjectId([*g; 32])).collect()
    }

    #[test]
    fn an_absent_insertion_must_be_removed_in_the_frame_in_its_mailbox() {
        let frame = vec![append(1, 9, 1), append(2, 9, 2), expunge(3, 9, 1)];
        assert!(unresolved(&frame, &absent(&[1])).is_empty());
        // Message 2's object is absent and nothing removes it.
        let left = unresolved(&frame, &absent(&[1, 2]));
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].at, left[0].insertion.guid), (1, Guid([2; 16])));
        // An expunge naming another mailbox removes nothing.
        let frame = vec![append(1, 9, 1), expunge(2, 8, 1)];
        assert_eq!(unresolved(&frame, &absent(&[1])).len(), 1);
        // Removed before it was inserted does not count either.
        let frame = vec![expunge(1, 9, 1), append(2, 9, 1)];
        assert_eq!(unresolved(&frame, &absent(&[1])).len(), 1);
    }

    #[test]
    fn mailbox_delete_and_move_remove_and_a_deleted_mailbox_takes_nothing() {
        let mb = Guid([9; 16]);
        let del = rec(3, Op::MailboxDelete { mailbox: mb });
        assert!(unresolved(
            &[append(1, 9, 1), append(2, 9, 2), del.clone()],
            &absent(&[1, 2])
        )
        .is_empty());
        // Insertion after the delete in the frame: ignored by the index.
        assert!(unresolved(&[del, append(4, 9, 1)], &absent(&[1])).is_empty());
        // A move out of the mailbox removes the source; the moved copy needs its own removal.
        let mv = rec(
            2,
            Op::Move {
                from: mb,
                to: Guid([7; 16]),
                entries: vec![(Guid([1; 16]), entry(5))],
                modseq: 2,
                from_modseq: 2,
            },
        );
        let frame = vec![append(1, 9, 1), mv.clone()];
        let left = unresolved(&frame, &absent(&[1, 5]));
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].insertion.mailbox, Guid([7; 16]));
        assert!(unresolved(&[append(1, 9, 1), mv, expunge(3, 7, 5)], &absent(&[1, 5])).is_empty());
    }

    #[test]
    fn created_in_frame_is_marked() {
        let mb = Guid([9; 16]);
        let create = rec(
            1,
            Op::MailboxCreate {
                mailbox: mb,
                name: "x".into(),
                uidvalidity: 1,
                special_use: None,
            },
        );
        let left = unresolved(&[create, append(2, 9, 1)], &absent(&[1]));
        assert!(left[0].created_in_frame);
        assert!(!unresolved(&[append(2, 9, 1)], &absent(&[1]))[0].created_in_frame);
    }

    #[test]
    fn clean_cuts_mark_the_spans_between_insertion_and_removal() {
        let frame = vec![append(1, 9, 1), append(2, 9, 2), expunge(3, 9, 1)];
        assert_eq!(
            clean_cuts(&frame, &absent(&[1])),
            vec![true, false, false, true]
        );
        assert_eq!(clean_cuts(&frame, &absent(&[])), vec![true; 4]);
    }

    #[test]
    fn the_cut_keeps_an_insertion_with_its_removal() {
        // 0: A1 (absent) 1: A2 2: A3 3: X1 4: A4
        let frame = vec![
            append(1, 9, 1),
            append(2, 9, 2),
            append(3, 9, 3),
            expunge(4, 9, 1),
            append(5, 9, 4),
        ];
        let none = |_: &Open| false;
        // Nothing absent: the asked cut stands.
        assert_eq!(cut(&frame, &absent(&[]), 2, none), Some(2));
        // Asked to cut at 2, inside A1..X1: extended to just after the expunge.
        assert_eq!(cut(&frame, &absent(&[1]), 2, none), Some(4));
        // A2 absent and never removed: no prefix is clean (A1 is open until X1, A2 after it).
        assert_eq!(cut(&frame, &absent(&[1, 2]), 2, none), None);
        // Message 4 absent, never removed in the loaded records: cut before it.
        assert_eq!(cut(&frame, &absent(&[4]), 5, none), Some(4));
        // ... unless its insertion changes nothing on the peer.
        assert_eq!(cut(&frame, &absent(&[4]), 5, |_| true), Some(5));
    }
}
