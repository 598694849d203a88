//! The merge resolver's alignments ([`crate::merge::modseqs`]): messages, or expunged UIDs,
//! that two nodes gave different modseqs take one common modseq, never lower than anything
//! this node has shown (invariant 3).

use super::messages::put_msg;
use crate::error::{Result, StoreError};
use crate::index::*;
use crate::merge;
use crate::types::*;

/// `Op::AlignModseqs`: the listed messages (those here) and HIGHESTMODSEQ take
/// `max(modseq, HIGHESTMODSEQ + 1)`.
pub(super) fn modseqs(
    tx: &mut Txn,
    mailbox: &MailboxId,
    modseq: u64,
    messages: &[Guid],
) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let ms = merge::modseqs::aligned(modseq, mb.highestmodseq);
    for g in messages {
        let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(g))? else {
            continue; // expunged (or pending) here: nothing to align
        };
        if mbid != *mailbox {
            continue;
        }
        let Some(mut m) = tx.msg(mailbox, uid)? else {
            if let Some(mut g) = tx.get::<Ghost>(&k_ghost(mailbox, uid))? {
                g.msg.meta.modseq = ms;
                tx.put(k_ghost(mailbox, uid), &g);
            }
            continue;
        };
        let old = m.meta.modseq;
        m.meta.modseq = ms;
        put_msg(tx, mailbox, &m, Some(old));
    }
    mb.highestmodseq = ms;
    tx.put_mailbox(&mb);
    Ok(())
}

/// A mailbox's expunged UIDs (tombstones) with the GUID each held and its expunge modseq, in
/// UID order: what QRESYNC's `VANISHED (EARLIER)` answers from.
pub fn tombstones(tx: &Txn, mailbox: &MailboxId) -> Result<Vec<(u32, Tomb)>> {
    let prefix = k_tomb_prefix(mailbox);
    tx.scan::<Tomb>(&prefix)?
        .into_iter()
        .map(|(k, t)| {
            let uid = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| {
                    StoreError::Index(format!("user {}: bad tombstone key {}", tx.user, hex(&k)))
                })?;
            Ok((uid, t))
        })
        .collect()
}

/// `Op::AlignExpunged`: the listed UIDs' tombstones (those held here) and HIGHESTMODSEQ take
/// `max(modseq, HIGHESTMODSEQ + 1)`, never lower than anything this node has shown (invariant
/// 3); a node that moved on since the resolver looked lands higher and the next check evens it.
pub(super) fn expunged(tx: &mut Txn, mailbox: &MailboxId, modseq: u64, uids: &[u32]) -> Result<()> {
    let Some(mut mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    let ms = merge::modseqs::aligned(modseq, mb.highestmodseq);
    for uid in uids {
        let Some(mut t) = tx.get::<Tomb>(&k_tomb(mailbox, *uid))? else {
            continue; // never expunged here (or pruned): nothing to raise
        };
        tx.del(k_expunged(mailbox, t.modseq, *uid));
        t.modseq = ms;
        tx.put(k_tomb(mailbox, *uid), &t);
        tx.put_raw(k_expunged(mailbox, ms, *uid), Vec::new());
    }
    mb.highestmodseq = ms;
    tx.put_mailbox(&mb);
    Ok(())
}
