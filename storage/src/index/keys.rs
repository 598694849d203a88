//! The index's key schema: one byte of kind, then the ids that make the key unique, in
//! big-endian so range scans run in UID and modseq order.

use crate::types::*;

pub const META: &[u8] = b"\x00meta";
/// The index's own format: an index written by another version is rebuilt from the log.
pub const VERSION_KEY: &[u8] = b"\x00version";
/// 5: `MessageMeta::saved_ms` (SAVEDATE).
pub const INDEX_VERSION: u32 = 5;
/// Mailboxes by the name they want: `W`+name+0+GUID (names have no control characters).
pub fn k_wanted_prefix(name: &str) -> Vec<u8> {
    [&b"W"[..], name.as_bytes(), &[0]].concat()
}
pub fn k_wanted(name: &str, mb: &MailboxId) -> Vec<u8> {
    [&k_wanted_prefix(name)[..], &mb.0].concat()
}
/// Mailboxes deleted here (by GUID): a delete is final, a late create of that GUID is ignored.
pub fn k_deleted(mb: &MailboxId) -> Vec<u8> {
    [&b"D"[..], &mb.0].concat()
}
pub fn k_mailbox(id: &MailboxId) -> Vec<u8> {
    [&b"M"[..], &id.0].concat()
}
pub fn k_name(name: &str) -> Vec<u8> {
    [&b"N"[..], name.as_bytes()].concat()
}
pub fn k_msg_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"m"[..], &mb.0].concat()
}
pub fn k_msg(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"m"[..], &mb.0, &uid.to_be_bytes()].concat()
}
pub fn k_guid(g: &Guid) -> Vec<u8> {
    [&b"g"[..], &g.0].concat()
}
pub fn k_tomb_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"t"[..], &mb.0].concat()
}
pub fn k_tomb(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"t"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Live messages by modseq (`c`) and expunges by modseq (`x`): `changes_since` is a range scan.
pub fn k_changed_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"c"[..], &mb.0].concat()
}
pub fn k_changed(mb: &MailboxId, modseq: u64, uid: u32) -> Vec<u8> {
    [&b"c"[..], &mb.0, &modseq.to_be_bytes(), &uid.to_be_bytes()].concat()
}
pub fn k_expunged_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"x"[..], &mb.0].concat()
}
pub fn k_expunged(mb: &MailboxId, modseq: u64, uid: u32) -> Vec<u8> {
    [&b"x"[..], &mb.0, &modseq.to_be_bytes(), &uid.to_be_bytes()].concat()
}
pub fn k_delivery(key: &[u8; 32]) -> Vec<u8> {
    [&b"d"[..], &key[..]].concat()
}
pub fn k_object(o: &ObjectId) -> Vec<u8> {
    [&b"o"[..], &o.0].concat()
}
pub fn k_facts(o: &ObjectId) -> Vec<u8> {
    [&b"f"[..], &o.0].concat()
}
/// The cached top-level header block of an object (see `store/headers.rs`). Under `f` with the
/// facts: a cache of the immutable object, kept by rebuilds and left out of index dumps.
pub fn k_header(o: &ObjectId) -> Vec<u8> {
    [&b"f"[..], &o.0, b"h"].concat()
}
pub fn k_sub(name: &str) -> Vec<u8> {
    [&b"s"[..], name.as_bytes()].concat()
}
/// Attributes (METADATA and ACL entries): `A`, then 0 for the server's or 1 and the
/// mailbox's GUID, then the key.
pub fn k_attr_prefix(mb: Option<&MailboxId>) -> Vec<u8> {
    match mb {
        None => b"A\x00".to_vec(),
        Some(mb) => [&b"A\x01"[..], &mb.0].concat(),
    }
}
pub fn k_attr(mb: Option<&MailboxId>, key: &str) -> Vec<u8> {
    [&k_attr_prefix(mb)[..], key.as_bytes()].concat()
}
pub fn k_pending_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"p"[..], &mb.0].concat()
}
pub fn k_pending(mb: &MailboxId, g: &Guid) -> Vec<u8> {
    [&b"p"[..], &mb.0, &g.0].concat()
}
/// UIDs a remote message claimed while a live message here held them (value: that message's
/// GUID): the resolver renumbers the holder even when the claimant is gone before it resolves
/// (a purged message travels with its removal, so it is never pending long enough).
pub fn k_contested_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"u"[..], &mb.0].concat()
}
pub fn k_contested(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"u"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Ghosts (see [`super::Ghost`]) by mailbox and UID: `h`+GUID+UID.
pub fn k_ghost_prefix(mb: &MailboxId) -> Vec<u8> {
    [&b"h"[..], &mb.0].concat()
}
pub fn k_ghost(mb: &MailboxId, uid: u32) -> Vec<u8> {
    [&b"h"[..], &mb.0, &uid.to_be_bytes()].concat()
}
/// Ghosts by the object they lack (value: their (mailbox, UID) list), so an insertion that
/// brings the object here again finds them with one lookup.
pub fn k_ghost_object(o: &ObjectId) -> Vec<u8> {
    [&b"H"[..], &o.0].concat()
}
