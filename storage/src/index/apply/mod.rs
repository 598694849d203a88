//! One record into the index. [`apply`] dispatches on the kind of change; each kind lives in
//! its own file and applies the rules of [`crate::merge`]. Deterministic in (index state,
//! record): replaying the log in order rebuilds the same index. Never fails on content (a
//! record about a mailbox or message that no longer exists changes nothing); fails only on an
//! undecodable index value.

mod align;
mod attribute;
mod dedupe;
mod expunge;
mod flags;
mod ghosts;
mod insert;
mod mailbox;
mod messages;
mod renumber;

pub use align::tombstones;

use super::{MailboxRec, Meta, Txn, UidConflict};
use crate::error::Result;
use crate::merge;
use crate::record::{Op, Record};
use crate::types::*;

/// What applying records did beyond the index itself.
#[derive(Debug, Default)]
pub struct Effects<'a> {
    pub conflicts: Vec<UidConflict>,
    /// Objects the same group commit writes: not in the index until it is durable, but here
    /// for the records it applies (so their insertions are not ghosts).
    pub arriving: Option<&'a std::collections::HashSet<ObjectId>>,
    /// Insertions applied as ghosts: their object is not on this node (see [`super::Ghost`]).
    pub ghosts: Vec<(MailboxId, Guid, ObjectId)>,
}

/// The modseq of the mailbox's next visible change, which it now is.
fn bump(mb: &mut MailboxRec) -> u64 {
    mb.highestmodseq = merge::modseqs::next(mb.highestmodseq);
    mb.highestmodseq
}

/// Applies one record to the index (see the module doc).
pub fn apply(tx: &mut Txn, meta: &mut Meta, rec: &Record, fx: &mut Effects) -> Result<()> {
    let e = meta.vv.entry(rec.origin).or_insert(0);
    *e = (*e).max(rec.seq);
    meta.last_time = meta.last_time.max(rec.time);
    let time = rec.time;
    match &rec.op {
        Op::MailboxCreate {
            mailbox,
            name,
            uidvalidity,
            special_use,
        } => {
            meta.max_uidvalidity = meta.max_uidvalidity.max(*uidvalidity);
            mailbox::create(tx, mailbox, name, *uidvalidity, *special_use, time)
        }
        Op::MailboxRename { mailbox, new_name } => mailbox::rename(tx, mailbox, new_name, time),
        Op::MailboxDelete { mailbox } => mailbox::delete(tx, mailbox),
        Op::UidValidity {
            mailbox,
            uidvalidity,
        } => {
            meta.max_uidvalidity = meta.max_uidvalidity.max(*uidvalidity);
            mailbox::set_uidvalidity(tx, mailbox, *uidvalidity)
        }
        Op::Subscribe { name } => {
            tx.put(super::k_sub(name), &());
            Ok(())
        }
        Op::Unsubscribe { name } => {
            tx.del(super::k_sub(name));
            Ok(())
        }
        Op::Append {
            mailbox,
            entry,
            delivery_key,
            ..
        } => insert::append(tx, mailbox, entry, delivery_key.as_ref(), time, fx),
        Op::Copy { to, entries, .. } => insert::copy(tx, to, entries, time, fx),
        Op::Move {
            from, to, entries, ..
        } => {
            insert::copy(tx, to, entries, time, fx)?;
            let sources: Vec<Guid> = entries.iter().map(|(g, _)| *g).collect();
            expunge::expunge(tx, from, &sources)
        }
        Op::Flags {
            mailbox,
            messages,
            add,
            remove,
            ..
        } => flags::change(tx, mailbox, messages, add, remove, time),
        Op::Expunge {
            mailbox, messages, ..
        } => expunge::expunge(tx, mailbox, messages),
        Op::Renumber { mailbox, moves, .. } => renumber::renumber(tx, mailbox, moves, time, fx),
        Op::AlignModseqs {
            mailbox,
            modseq,
            messages,
        } => align::modseqs(tx, mailbox, *modseq, messages),
        Op::AlignExpunged {
            mailbox,
            modseq,
            uids,
        } => align::expunged(tx, mailbox, *modseq, uids),
        Op::Attribute {
            mailbox,
            key,
            value,
        } => attribute::set(tx, mailbox.as_ref(), key, value.as_ref(), time),
    }
}
