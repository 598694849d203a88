//! Message keys kept in step: a message with its modseq key, and the expunged entry
//! (tombstone and expunge modseq) a removed message leaves.

use crate::index::*;
use crate::types::*;

/// Writes a message and keeps its modseq key in step (`prev`: its modseq before this change).
pub(super) fn put_msg(tx: &mut Txn, mb: &MailboxId, m: &MsgRec, prev: Option<u64>) {
    if let Some(p) = prev.filter(|p| *p != m.meta.modseq) {
        tx.del(k_changed(mb, p, m.meta.uid));
    }
    tx.put_raw(k_changed(mb, m.meta.modseq, m.meta.uid), Vec::new());
    tx.put(k_msg(mb, m.meta.uid), m);
}

pub(super) fn del_msg(tx: &mut Txn, mb: &MailboxId, m: &MsgRec) {
    tx.del(k_changed(mb, m.meta.modseq, m.meta.uid));
    tx.del(k_msg(mb, m.meta.uid));
}

pub(super) fn remove_live(tx: &mut Txn, mb: &mut MailboxRec, m: &MsgRec, modseq: u64) {
    del_msg(tx, &mb.id, m);
    put_tomb(tx, mb, m, modseq);
    mb.exists = mb.exists.saturating_sub(1);
    mb.size = mb.size.saturating_sub(m.meta.size);
    if !m.meta.flags.contains(&Flag::Seen) {
        mb.unseen = mb.unseen.saturating_sub(1);
    }
}

/// The expunged entry a removed message leaves (live or ghost alike): its UID's tombstone and
/// its expunge modseq.
pub(super) fn put_tomb(tx: &mut Txn, mb: &MailboxRec, m: &MsgRec, modseq: u64) {
    tx.del(k_guid(&m.meta.guid));
    tx.del(k_contested(&mb.id, m.meta.uid));
    // An older tombstone of this UID (a renumbered message) gives way to the newer one.
    if let Ok(Some(old)) = tx.get::<Tomb>(&k_tomb(&mb.id, m.meta.uid)) {
        tx.del(k_expunged(&mb.id, old.modseq, m.meta.uid));
    }
    tx.put(
        k_tomb(&mb.id, m.meta.uid),
        &Tomb {
            guid: m.meta.guid,
            modseq,
        },
    );
    tx.put_raw(k_expunged(&mb.id, modseq, m.meta.uid), Vec::new());
}
