//! Expunges: a removed message leaves its UID's tombstone and an expunge modseq; an expunge
//! of a message that is pending (a UID conflict) or a ghost removes it too. An expunge beats a
//! flag change ([`crate::merge::flags`]): changes to a gone message find nothing.

use super::bump;
use super::ghosts::remove_ghost;
use super::messages::remove_live;
use crate::error::Result;
use crate::index::*;
use crate::types::*;

pub(super) fn expunge(tx: &mut Txn, mailbox: &MailboxId, guids: &[Guid]) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let mut modseq = None;
    for g in guids {
        if tx.get_raw(&k_pending(mailbox, g))?.is_some() {
            tx.del(k_pending(mailbox, g));
        }
        let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
            continue;
        };
        if mbid != *mailbox {
            continue;
        }
        if let Some(m) = tx.msg(mailbox, uid)? {
            let ms = *modseq.get_or_insert_with(|| bump(&mut mb));
            remove_live(tx, &mut mb, &m, ms);
        } else if let Some(g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
            // The removal a ghost waited for: the same expunged entry and modseq as the peer's.
            let ms = *modseq.get_or_insert_with(|| bump(&mut mb));
            remove_ghost(tx, &mut mb, &g.msg, ms)?;
        }
    }
    if modseq.is_some() {
        tx.put_mailbox(&mb);
    }
    Ok(())
}
