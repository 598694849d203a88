//! The resolver's `Renumber` record ([`crate::merge::uids`]): every message it names leaves its
//! old UID (expunged for clients) and enters at its new one, with its flags and flag times;
//! parked messages enter for the first time.

use super::bump;
use super::ghosts::remove_ghost;
use super::insert::{entry_of, insert_entry};
use super::messages::{put_msg, remove_live};
use super::Effects;
use crate::error::Result;
use crate::index::*;
use crate::merge::flags::FlagTimes;
use crate::merge::uids::uidnext_after;
use crate::record::NewEntry;
use crate::types::*;

pub(super) fn renumber(
    tx: &mut Txn,
    mailbox: &MailboxId,
    moves: &[(Guid, u32)],
    time: HlcTime,
    fx: &mut Effects,
) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let modseq = bump(&mut mb);
    for (g, new_uid) in moves {
        // Every target UID is taken for good, here too, even for a message not here.
        mb.uidnext = uidnext_after(mb.uidnext, *new_uid);
        let Some((mut entry, times)) = take_out(tx, &mut mb, g, modseq)? else {
            continue;
        };
        entry.uid = *new_uid;
        if insert_entry(tx, &mut mb, &entry, time, modseq, fx)? {
            keep_flag_times(tx, mailbox, *new_uid, times)?;
        }
    }
    tx.put_mailbox(&mb);
    Ok(())
}

/// Takes message `g` out of its place here (parked, live or a ghost), leaving a tombstone for a
/// UID clients saw; returns it with its flag times, or None if it is not in this mailbox.
fn take_out(
    tx: &mut Txn,
    mb: &mut MailboxRec,
    g: &Guid,
    modseq: u64,
) -> Result<Option<(NewEntry, FlagTimes)>> {
    let mailbox = mb.id;
    if let Some(p) = tx.get::<PendingEntry>(&k_pending(&mailbox, g))? {
        tx.del(k_pending(&mailbox, g));
        return Ok(Some((p.entry, p.flag_times)));
    }
    let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
        return Ok(None);
    };
    if mbid != mailbox {
        return Ok(None);
    }
    if let Some(m) = tx.msg(&mailbox, uid)? {
        remove_live(tx, mb, &m, modseq);
        return Ok(Some((entry_of(&m.meta), m.flag_times)));
    }
    match tx.get::<Ghost>(&k_ghost(&mailbox, uid))? {
        Some(gh) => {
            remove_ghost(tx, mb, &gh.msg, modseq)?;
            Ok(Some((entry_of(&gh.msg.meta), gh.msg.flag_times)))
        }
        None => Ok(None),
    }
}

/// A renumbered message keeps the flag times it had, so later flag merges agree.
fn keep_flag_times(tx: &mut Txn, mailbox: &MailboxId, uid: u32, times: FlagTimes) -> Result<()> {
    if let Some(mut m) = tx.msg(mailbox, uid)? {
        m.flag_times = times;
        let ms = m.meta.modseq;
        put_msg(tx, mailbox, &m, Some(ms));
    } else if let Some(mut g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
        g.msg.flag_times = times;
        tx.put(k_ghost(mailbox, uid), &g);
    }
    Ok(())
}
