//! Ghosts (see [`crate::index::Ghost`]): messages a peer's record inserted without their
//! object. They hold their UID and take every change, but no client sees them.

use super::insert::show;
use super::messages::put_tomb;
use super::Effects;
use crate::error::Result;
use crate::index::*;
use crate::types::*;

/// Whether a message's object is on this node: in the index, or written by the same commit.
pub(super) fn object_here(tx: &Txn, fx: &Effects, o: &ObjectId) -> Result<bool> {
    if fx.arriving.is_some_and(|a| a.contains(o)) {
        return Ok(true);
    }
    Ok(tx.get_raw(&k_object(o))?.is_some())
}

pub(super) fn insert_ghost(
    tx: &mut Txn,
    mb: &MailboxRec,
    msg: MsgRec,
    since: HlcTime,
) -> Result<()> {
    let (uid, object) = (msg.meta.uid, msg.meta.object);
    tx.put(k_ghost(&mb.id, uid), &Ghost { msg, since });
    let mut waiting: Vec<(MailboxId, u32)> = tx.get(&k_ghost_object(&object))?.unwrap_or_default();
    if !waiting.contains(&(mb.id, uid)) {
        waiting.push((mb.id, uid));
    }
    tx.put(k_ghost_object(&object), &waiting);
    Ok(())
}

/// Forgets a ghost's keys (not its UID: UIDNEXT stays past it).
pub(super) fn unlink_ghost(tx: &mut Txn, mb: &MailboxId, m: &MsgRec) -> Result<()> {
    tx.del(k_ghost(mb, m.meta.uid));
    let key = k_ghost_object(&m.meta.object);
    let mut waiting: Vec<(MailboxId, u32)> = tx.get(&key)?.unwrap_or_default();
    waiting.retain(|w| *w != (*mb, m.meta.uid));
    if waiting.is_empty() {
        tx.del(key);
    } else {
        tx.put(key, &waiting);
    }
    Ok(())
}

/// The removal a ghost waited for (expunge, move away, renumbering): it leaves the expunged
/// entry a live message would.
pub(super) fn remove_ghost(
    tx: &mut Txn,
    mb: &mut MailboxRec,
    m: &MsgRec,
    modseq: u64,
) -> Result<()> {
    unlink_ghost(tx, &mb.id, m)?;
    put_tomb(tx, mb, m, modseq);
    Ok(())
}

/// A deleted mailbox takes its ghosts with it.
pub(super) fn drop_ghosts(tx: &mut Txn, mailbox: &MailboxId) -> Result<()> {
    for (_, g) in tx.scan::<Ghost>(&k_ghost_prefix(mailbox))? {
        tx.del(k_guid(&g.msg.meta.guid));
        unlink_ghost(tx, mailbox, &g.msg)?;
    }
    Ok(())
}

/// An insertion brought `object` here (the same content delivered again): the ghosts that
/// lacked it become ordinary messages, with the UIDs, flags and modseqs they kept, which is
/// what a rebuild from the log makes of them (it finds the object in its pack when it replays
/// their insertion). `mb` is the mailbox being changed (not yet written back).
pub(super) fn wake_ghosts(tx: &mut Txn, mb: &mut MailboxRec, object: &ObjectId) -> Result<()> {
    let Some(waiting) = tx.get::<Vec<(MailboxId, u32)>>(&k_ghost_object(object))? else {
        return Ok(());
    };
    tx.del(k_ghost_object(object));
    for (mbid, uid) in waiting {
        let Some(g) = tx.get::<Ghost>(&k_ghost(&mbid, uid))? else {
            continue;
        };
        tx.del(k_ghost(&mbid, uid));
        tracing::info!(user = tx.user, mailbox = %mbid, uid, guid = %g.msg.meta.guid,
            "message received without its object is visible now: the object came with another message");
        if mbid == mb.id {
            show(tx, mb, &g.msg);
        } else if let Some(mut other) = tx.mailbox(&mbid)? {
            show(tx, &mut other, &g.msg);
            tx.put_mailbox(&other);
        }
    }
    Ok(())
}
