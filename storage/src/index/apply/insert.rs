//! Append, Copy and Move's insertions: a message enters a mailbox at the UID its record gives,
//! unless another message holds that UID here ([`crate::merge::uids`]): then it is parked
//! (pending) until the resolver renumbers it. A message whose object is not here is a ghost.

use super::bump;
use super::ghosts::{insert_ghost, object_here, wake_ghosts};
use super::messages::{put_msg, remove_live};
use super::Effects;
use crate::error::Result;
use crate::index::*;
use crate::merge::{self, flags::initial_times};
use crate::record::NewEntry;
use crate::types::*;

pub(super) fn append(
    tx: &mut Txn,
    mailbox: &MailboxId,
    entry: &NewEntry,
    delivery_key: Option<&[u8; 32]>,
    time: HlcTime,
    fx: &mut Effects,
) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let modseq = bump(&mut mb);
    let earlier = match delivery_key {
        Some(key) => super::dedupe::earlier_copy(tx, mailbox, key, &entry.guid)?,
        None => None,
    };
    let inserted = insert_entry(tx, &mut mb, entry, time, modseq, fx)?;
    if let Some(other) = earlier {
        // A second copy of one delivery (a retry on another node): one stays, on every node.
        let kept = super::dedupe::keep_one(tx, &mut mb, other, entry.guid)?;
        if kept == other {
            tx.put_mailbox(&mb);
            return Ok(());
        }
    }
    // A copy parked behind a UID conflict is here too: a retry reaching this node before the
    // resolver renumbers it must find it, or this node stores the delivery twice while its
    // peers (which hold it live) keep one.
    let here = inserted || tx.get_raw(&k_pending(&mb.id, &entry.guid))?.is_some();
    if here {
        if let Some(key) = delivery_key {
            // Remembered so a retried delivery is answered, not stored twice (invariant 4).
            let d = Delivery {
                wall_ms: time.wall_ms,
                outcome: AppendOutcome {
                    mailbox: *mailbox,
                    uidvalidity: mb.uidvalidity,
                    uid: entry.uid,
                    guid: entry.guid,
                    modseq,
                    duplicate: false,
                },
            };
            tx.put(k_delivery(key), &d);
        }
    }
    tx.put_mailbox(&mb);
    Ok(())
}

/// Copy's insertions (and Move's, before its expunge of the sources): one modseq for all.
pub(super) fn copy(
    tx: &mut Txn,
    to: &MailboxId,
    entries: &[(Guid, NewEntry)],
    time: HlcTime,
    fx: &mut Effects,
) -> Result<()> {
    if let Some(mut mb) = tx.mailbox(to)? {
        let modseq = bump(&mut mb);
        for (_, entry) in entries {
            insert_entry(tx, &mut mb, entry, time, modseq, fx)?;
        }
        tx.put_mailbox(&mb);
    }
    Ok(())
}

/// The message that holds (or held) `uid` here: live, a ghost (on the peer it came from,
/// clients saw it), or the tombstone of an expunged one. The bool says whether it is live.
fn uid_holder(tx: &Txn, mb: &MailboxId, uid: u32) -> Result<Option<(Guid, bool)>> {
    if let Some(m) = tx.msg(mb, uid)? {
        return Ok(Some((m.meta.guid, true)));
    }
    if let Some(g) = tx.get::<Ghost>(&k_ghost(mb, uid))? {
        return Ok(Some((g.msg.meta.guid, true)));
    }
    Ok(tx.get::<Tomb>(&k_tomb(mb, uid))?.map(|t| (t.guid, false)))
}

/// Inserts a message at its UID, or parks it as pending when the UID belongs to another message.
/// Returns whether it was inserted.
pub(super) fn insert_entry(
    tx: &mut Txn,
    mb: &mut MailboxRec,
    entry: &NewEntry,
    time: HlcTime,
    modseq: u64,
    fx: &mut Effects,
) -> Result<bool> {
    if tx.get_raw(&k_guid(&entry.guid))?.is_some() {
        return Ok(false); // already here (a replayed record)
    }
    let holder = uid_holder(tx, &mb.id, entry.uid)?;
    if merge::uids::is_conflict(holder.map(|(g, _)| g), entry.guid) {
        if let Some((local, live)) = holder {
            park(tx, mb, entry, time, local, live, fx);
            hide_holder(tx, mb, entry.uid, time, modseq)?;
        }
        return Ok(false);
    }
    let meta = MessageMeta {
        uid: entry.uid,
        guid: entry.guid,
        object: entry.object,
        flags: entry.flags.clone(),
        modseq,
        internal_date: entry.internal_date,
        internal_date_tz_min: entry.internal_date_tz_min,
        size: entry.size,
    };
    let msg = MsgRec {
        meta,
        flag_times: initial_times(&entry.flags, time),
    };
    mb.uidnext = merge::uids::uidnext_after(mb.uidnext, entry.uid);
    tx.put(k_guid(&entry.guid), &(mb.id, entry.uid));
    if !object_here(tx, fx, &entry.object)? {
        insert_ghost(tx, mb, msg, time)?;
        fx.ghosts.push((mb.id, entry.guid, entry.object));
        return Ok(true);
    }
    show(tx, mb, &msg);
    wake_ghosts(tx, mb, &entry.object)?;
    Ok(true)
}

/// Parks an incoming message whose UID `local` holds; a live holder's UID is marked contested
/// so the resolver renumbers it even if the newcomer is gone before it resolves.
fn park(
    tx: &mut Txn,
    mb: &MailboxRec,
    entry: &NewEntry,
    time: HlcTime,
    local: Guid,
    live: bool,
    fx: &mut Effects,
) {
    if live {
        tx.put(k_contested(&mb.id, entry.uid), &local);
    }
    tracing::warn!(user = tx.user, mailbox = %mb.name, uid = entry.uid, %local,
        remote = %entry.guid, "UID conflict: incoming message kept pending until renumbered");
    tx.put(
        k_pending(&mb.id, &entry.guid),
        &PendingEntry {
            entry: entry.clone(),
            time,
            flag_times: initial_times(&entry.flags, time),
        },
    );
    fx.conflicts.push(UidConflict {
        mailbox: mb.id,
        uid: entry.uid,
        local,
        remote: entry.guid,
    });
}

/// Takes the live local holder of a contested UID out of clients' sight until the resolver's
/// renumbering gives it a new UID: its UID is expunged now (a tombstone at `modseq`, so
/// QRESYNC clients get VANISHED) and it waits parked like the newcomer. Without this a client
/// of this node would go on reading the UID as this message while the peer's clients read it
/// as the other one, and after the renumbering nobody could tell which they saw (invariant 2).
/// A ghost holder (no object here, not shown) keeps its place and the contested mark.
fn hide_holder(
    tx: &mut Txn,
    mb: &mut MailboxRec,
    uid: u32,
    time: HlcTime,
    modseq: u64,
) -> Result<()> {
    let Some(m) = tx.msg(&mb.id, uid)? else {
        return Ok(());
    };
    remove_live(tx, mb, &m, modseq);
    tx.put(
        k_pending(&mb.id, &m.meta.guid),
        &PendingEntry {
            entry: entry_of(&m.meta),
            time,
            flag_times: m.flag_times.clone(),
        },
    );
    Ok(())
}

/// Makes a message visible: its keys and the mailbox's counts.
pub(super) fn show(tx: &mut Txn, mb: &mut MailboxRec, m: &MsgRec) {
    if !m.meta.flags.contains(&Flag::Seen) {
        mb.unseen = mb.unseen.saturating_add(1);
    }
    mb.exists = mb.exists.saturating_add(1);
    mb.size = mb.size.saturating_add(m.meta.size);
    put_msg(tx, &mb.id, m, None);
}

pub(super) fn entry_of(m: &MessageMeta) -> NewEntry {
    NewEntry {
        guid: m.guid,
        uid: m.uid,
        object: m.object,
        size: m.size,
        internal_date: m.internal_date,
        internal_date_tz_min: m.internal_date_tz_min,
        flags: m.flags.clone(),
    }
}
