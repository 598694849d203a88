//! Flag changes, merged last writer wins per flag ([`crate::merge::flags`]) into live
//! messages, ghosts and pending ones alike; a message no longer here (expunged) takes nothing.

use super::bump;
use super::messages::put_msg;
use crate::error::Result;
use crate::index::*;
use crate::merge::flags::merge;
use crate::types::*;

pub(super) fn change(
    tx: &mut Txn,
    mailbox: &MailboxId,
    messages: &[Guid],
    add: &Flags,
    remove: &Flags,
    time: HlcTime,
) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    // One modseq for every message the record visibly changes, taken at the first one.
    let mut modseq = None;
    for g in messages {
        let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
            // Not live here: pending as a UID conflict (the change waits with it for the
            // renumbering), or expunged (an expunge beats a flag change).
            if let Some(mut p) = tx.get::<PendingEntry>(&k_pending(mailbox, g))? {
                merge(&mut p.entry.flags, &mut p.flag_times, add, remove, time);
                tx.put(k_pending(mailbox, g), &p);
            }
            continue;
        };
        if mbid != *mailbox {
            continue;
        }
        let Some(mut m) = tx.msg(mailbox, uid)? else {
            // A ghost takes the change as a live message would (same modseq), unseen.
            if let Some(mut g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
                let msg = &mut g.msg;
                if merge(&mut msg.meta.flags, &mut msg.flag_times, add, remove, time) {
                    msg.meta.modseq = *modseq.get_or_insert_with(|| bump(&mut mb));
                }
                tx.put(k_ghost(mailbox, uid), &g);
            }
            continue;
        };
        let was_seen = m.meta.flags.contains(&Flag::Seen);
        let old_modseq = m.meta.modseq;
        if merge(&mut m.meta.flags, &mut m.flag_times, add, remove, time) {
            m.meta.modseq = *modseq.get_or_insert_with(|| bump(&mut mb));
            match (was_seen, m.meta.flags.contains(&Flag::Seen)) {
                (true, false) => mb.unseen = mb.unseen.saturating_add(1),
                (false, true) => mb.unseen = mb.unseen.saturating_sub(1),
                _ => {}
            }
        }
        // Flag times are kept even without a visible change, so later merges agree.
        put_msg(tx, mailbox, &m, Some(old_modseq));
    }
    if modseq.is_some() {
        tx.put_mailbox(&mb);
    }
    Ok(())
}
