//! A delivery retried on another node (its first attempt's reply was lost with a crash or a
//! cut cable) is stored once (invariant 4), even when both attempts were stored before their
//! nodes met: when the second copy of a delivery (same delivery key: Message-ID, envelope and
//! body) reaches a node that holds the first in the same mailbox, the copy with the larger
//! GUID is removed, on every node alike, as an expunge would (its UID leaves a tombstone).
//! Both nodes see the same pair once each, so they make the same choice and the same modseqs.

use super::bump;
use super::ghosts::remove_ghost;
use super::messages::remove_live;
use crate::error::Result;
use crate::index::*;
use crate::types::*;

/// Two copies of one delivery further apart than this (by their records' clocks) are two
/// deliveries (a list resending a message). Fixed, not the node's setting: every node must
/// decide the same.
const SAME_DELIVERY_WITHIN_MS: u64 = 3_600_000;

/// The other copy of the delivery `key` that `incoming` repeats, if one is still in `mailbox`.
pub(super) fn earlier_copy(
    tx: &Txn,
    mailbox: &MailboxId,
    key: &[u8; 32],
    incoming: &Guid,
    time: HlcTime,
) -> Result<Option<Guid>> {
    let Some(d) = tx.get::<Delivery>(&k_delivery(key))? else {
        return Ok(None);
    };
    let other = d.outcome.guid;
    if other == *incoming
        || d.outcome.mailbox != *mailbox
        || d.wall_ms.abs_diff(time.wall_ms) > SAME_DELIVERY_WITHIN_MS
    {
        return Ok(None);
    }
    let here = tx.get_raw(&k_guid(&other))?.is_some()
        || tx.get_raw(&k_pending(mailbox, &other))?.is_some();
    Ok(here.then_some(other))
}

/// Removes the copy with the larger GUID of `a` and `b`; returns the one kept.
pub(super) fn keep_one(tx: &mut Txn, mb: &mut MailboxRec, a: Guid, b: Guid) -> Result<Guid> {
    let (keep, drop) = if a < b { (a, b) } else { (b, a) };
    // One modseq for the removal on every node, whatever state the copy is in here.
    let modseq = bump(mb);
    tracing::info!(user = tx.user, mailbox = %mb.name, kept = %keep, removed = %drop,
        "a delivery stored on two nodes (a retry after a lost reply): keeping one copy");
    tx.del(k_pending(&mb.id, &drop));
    if let Some((mbid, uid)) = tx.get::<(MailboxId, u32)>(&k_guid(&drop))? {
        if mbid == mb.id {
            if let Some(m) = tx.msg(&mb.id, uid)? {
                remove_live(tx, mb, &m, modseq);
            } else if let Some(g) = tx.get::<Ghost>(&k_ghost(&mb.id, uid))? {
                remove_ghost(tx, mb, &g.msg, modseq)?;
            }
        }
    }
    Ok(keep)
}
