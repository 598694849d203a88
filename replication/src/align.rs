//! Modseq convergence after concurrent writes (design invariant 5).
//!
//! Every node gives each change it applies its mailbox's next modseq, so two nodes that applied
//! the same records in different orders (both written during a split, or two clients on two nodes
//! at once) end with different modseqs for the same messages. A node may not adopt a lower modseq
//! (invariant 3: its clients' CHANGEDSINCE must see every change), so the resolver (the node that
//! also writes `Renumber`, [`crate::policy`]) compares with the peer once both have applied the
//! same records and writes one `Op::AlignModseqs` per differing mailbox: the differing messages
//! and HIGHESTMODSEQ take `max(both HIGHESTMODSEQs) + 1`. It replicates like any record; each
//! node applies `max(that, its own HIGHESTMODSEQ + 1)`, so when writes stop both land on the same
//! values, and if a node moved on meanwhile the next check evens it again.
//!
//! Expunges too: each node gives an expunge its own next modseq, and a QRESYNC client asks for
//! `VANISHED (EARLIER)` since a modseq it saw on the node it left. So the digests also hash the
//! tombstones (UID, GUID, expunge modseq), and where they differ the resolver compares the
//! tombstone listings and writes `Op::AlignExpunged` with the same rule (the differing
//! tombstones and HIGHESTMODSEQ take one modseq above both HIGHESTMODSEQs). Only tombstones
//! both nodes hold for the same message are compared: a UID expunged on one node only (a
//! pending remote message expunged before its renumbering leaves none here; a tombstone pruned
//! on one side) can never be made equal by raising modseqs, and aligning it would write a
//! record at every check, forever. Such a difference is not counted as `skipped` either, so it
//! never holds the check mark back.
//!
//! When: the shipper asks [`crate::align_turn::after_ship`] after each turn of a user; it checks only if records of
//! at least two origins were applied here since the last check with that peer (the only way
//! orders can differ), so a single-writer (active/passive) stream compares nothing.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::exchange::peer_vv;
use crate::store_api::{MailboxDigest, MessageKey, ReplicaUser};
use crate::util::{blocking, covers};
use crate::wire::Message;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use storage::{Guid, MailboxId, NodeId, VersionVector};

/// Largest modseq a peer may claim (RFC 7162: 63 bits); above it the peer is lying or broken.
const MAX_MODSEQ: u64 = (1 << 63) - 1;

/// Per peer and user, this node's version vector at the last check. In memory only: after a
/// start, a user's first turn checks once (see [`crate::align_turn::after_ship`]).
#[derive(Default)]
pub(crate) struct AlignState {
    pub(crate) last: Mutex<HashMap<(NodeId, String), VersionVector>>,
}

/// What one check did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aligned {
    /// Mailboxes where alignment records (`AlignModseqs`, `AlignExpunged`) were written.
    pub mailboxes: usize,
    /// Messages whose modseq was aligned.
    pub messages: usize,
    /// Tombstones (expunged UIDs) whose modseq was aligned.
    pub expunged: usize,
    /// Mailboxes left for a later check: their messages (UID, GUID, flags) differ, so the
    /// comparison raced a write, or a merge is still under way.
    pub skipped: usize,
}

/// The outcome of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The two nodes have not applied the same records yet: try again later.
    NotReady,
    Done(Aligned),
}

/// Origins whose sequence grew from `before` to `now`.
pub(crate) fn origins_advanced(before: &VersionVector, now: &VersionVector) -> usize {
    now.iter()
        .filter(|(o, s)| before.get(o).copied().unwrap_or(0) < **s)
        .count()
}

fn unexpected(m: Message, wanted: &str) -> ReplError {
    match m {
        Message::Error { message } => ReplError::Refused(message),
        other => ReplError::protocol(format!("expected {wanted}, got {}", other.kind())),
    }
}

/// The peer's digest of every mailbox of `user`.
pub(crate) async fn remote_digests(
    conn: &mut Conn,
    user: &str,
    t: Duration,
) -> Result<BTreeMap<MailboxId, MailboxDigest>> {
    conn.send(&Message::GetDigests { user: user.into() })
        .await?;
    match conn.recv_timeout(t, "digests").await? {
        Message::Digests {
            user: du,
            mailboxes,
        } if du == user => Ok(mailboxes.into_iter().map(|d| (d.mailbox, d)).collect()),
        m => Err(unexpected(m, "Digests")),
    }
}

/// The peer's listing of one mailbox.
pub(crate) async fn remote_listing(
    conn: &mut Conn,
    user: &str,
    id: MailboxId,
    t: Duration,
) -> Result<Vec<MessageKey>> {
    conn.send(&Message::GetListing {
        user: user.into(),
        mailbox: id,
    })
    .await?;
    match conn.recv_timeout(t, "listing").await? {
        Message::Listing {
            user: lu,
            mailbox,
            messages,
        } if lu == user && mailbox == id => Ok(messages),
        m => Err(unexpected(m, "Listing")),
    }
}

/// The peer's tombstones of one mailbox.
async fn remote_expunged(
    conn: &mut Conn,
    user: &str,
    id: MailboxId,
    t: Duration,
) -> Result<Vec<MessageKey>> {
    conn.send(&Message::GetExpunged {
        user: user.into(),
        mailbox: id,
    })
    .await?;
    match conn.recv_timeout(t, "tombstones").await? {
        Message::Expunged {
            user: lu,
            mailbox,
            tombstones,
        } if lu == user && mailbox == id => Ok(tombstones),
        m => Err(unexpected(m, "Expunged")),
    }
}

pub(crate) async fn local_digests(
    u: &Arc<dyn ReplicaUser>,
) -> Result<BTreeMap<MailboxId, MailboxDigest>> {
    let uu = u.clone();
    Ok(blocking(move || uu.mailbox_digests())
        .await?
        .into_iter()
        .map(|d| (d.mailbox, d))
        .collect())
}

/// Messages on both sides with the same UID and GUID but another modseq.
pub fn differing_modseqs(here: &[MessageKey], there: &[MessageKey]) -> Vec<Guid> {
    let there: BTreeMap<u32, &MessageKey> = there.iter().map(|m| (m.uid, m)).collect();
    here.iter()
        .filter(|m| {
            there
                .get(&m.uid)
                .is_some_and(|o| o.guid == m.guid && o.modseq != m.modseq)
        })
        .map(|m| m.guid)
        .collect()
}

/// UIDs whose tombstone both sides hold for the same message but with another expunge modseq.
/// A tombstone only one side holds is left alone (see the module doc).
pub fn differing_expunged(here: &[MessageKey], there: &[MessageKey]) -> Vec<u32> {
    let there: BTreeMap<u32, &MessageKey> = there.iter().map(|t| (t.uid, t)).collect();
    here.iter()
        .filter(|t| {
            there
                .get(&t.uid)
                .is_some_and(|o| o.guid == t.guid && o.modseq != t.modseq)
        })
        .map(|t| t.uid)
        .collect()
}

/// Both listings hold the same messages (UID, GUID, flags), modseqs aside.
fn same_messages(here: &[MessageKey], there: &[MessageKey]) -> bool {
    here.len() == there.len()
        && here
            .iter()
            .zip(there)
            .all(|(a, b)| a.uid == b.uid && a.guid == b.guid && a.flags == b.flags)
}

/// Compares modseqs with the peer and writes the alignments. Only when both nodes have applied
/// the same records (equal version vectors); messages whose UID or GUID differ are left to the
/// UID-conflict path. The caller must be the resolver.
pub async fn check(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    t: Duration,
) -> Result<Check> {
    let uu = u.clone();
    let ours = blocking(move || uu.version_vector()).await?;
    let theirs = peer_vv(conn, user, t).await?;
    if !(covers(&ours, &theirs) && covers(&theirs, &ours)) {
        return Ok(Check::NotReady);
    }
    let local = local_digests(u).await?;
    let remote = remote_digests(conn, user, t).await?;
    let mut out = Aligned::default();
    for (id, l) in &local {
        let Some(r) = remote.get(id) else { continue };
        if r.highestmodseq > MAX_MODSEQ {
            return Err(ReplError::protocol(format!(
                "peer claims HIGHESTMODSEQ {} for a mailbox",
                r.highestmodseq
            )));
        }
        let modseqs_differ = l.highestmodseq != r.highestmodseq || l.modseq_hash != r.modseq_hash;
        let expunged_differ = l.expunged_hash != r.expunged_hash;
        if !modseqs_differ && !expunged_differ {
            continue;
        }
        if !l.same_content(r) {
            // Modseqs of mailboxes whose messages differ are not comparable: a write landed
            // between the version vectors and the digests (aligning now would only raise
            // modseqs for nothing), or UIDs are still being merged. Later.
            out.skipped += 1;
            continue;
        }
        let mb = *id;
        // The highest modseq either side has shown so far; alignments go above it.
        let mut high = l.highestmodseq.max(r.highestmodseq);
        let mut wrote = false;
        if modseqs_differ {
            let uu = u.clone();
            let here = blocking(move || uu.mailbox_listing(mb)).await?;
            let there = remote_listing(conn, user, *id, t).await?;
            if !same_messages(&here, &there) {
                out.skipped += 1; // a write between the digests and the listings
                continue;
            }
            let guids = differing_modseqs(&here, &there);
            if !guids.is_empty() || l.highestmodseq != r.highestmodseq {
                let uu = u.clone();
                let g = guids.clone();
                let Some(landed) = blocking(move || uu.align_modseqs(mb, high + 1, &g)).await?
                else {
                    continue; // deleted meanwhile
                };
                tracing::info!(
                    user,
                    mailbox = %l.name,
                    messages = guids.len(),
                    modseq = landed,
                    "replication: modseqs aligned"
                );
                high = high.max(landed);
                wrote = true;
                out.messages += guids.len();
            }
        }
        if expunged_differ {
            let uu = u.clone();
            let Some(here) = blocking(move || uu.expunged_listing(mb)).await? else {
                continue; // deleted meanwhile
            };
            let there = remote_expunged(conn, user, mb, t).await?;
            let uids = differing_expunged(&here, &there);
            if !uids.is_empty() {
                let uu = u.clone();
                let us = uids.clone();
                let Some(landed) = blocking(move || uu.align_expunged(mb, high + 1, &us)).await?
                else {
                    continue; // deleted meanwhile
                };
                tracing::info!(
                    user,
                    mailbox = %l.name,
                    expunged = uids.len(),
                    modseq = landed,
                    "replication: expunge modseqs aligned"
                );
                wrote = true;
                out.expunged += uids.len();
            }
        }
        if wrote {
            out.mailboxes += 1;
        }
    }
    Ok(Check::Done(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: u32, g: u8, modseq: u64) -> MessageKey {
        MessageKey {
            uid,
            guid: Guid([g; 16]),
            flags: Vec::new(),
            modseq,
        }
    }

    #[test]
    fn only_same_uid_and_guid_with_other_modseq_differ() {
        let here = [key(1, 1, 5), key(2, 2, 6), key(3, 3, 7), key(4, 4, 8)];
        // UID 2: same; UID 3: another message (a UID conflict's job); UID 4: not there.
        let there = [key(1, 1, 9), key(2, 2, 6), key(3, 9, 2), key(5, 5, 1)];
        assert_eq!(differing_modseqs(&here, &there), vec![Guid([1; 16])]);
    }

    #[test]
    fn only_tombstones_both_hold_for_the_same_message_differ() {
        let here = [key(1, 1, 5), key(2, 2, 6), key(3, 3, 7), key(4, 4, 8)];
        // UID 2: same modseq; UID 3: another message's tombstone; UID 4: only here; UID 5:
        // only there. None of those can be evened by raising modseqs.
        let there = [key(1, 1, 9), key(2, 2, 6), key(3, 9, 2), key(5, 5, 1)];
        assert_eq!(differing_expunged(&here, &there), vec![1]);
        assert_eq!(differing_expunged(&there, &here), vec![1]);
    }

    #[test]
    fn tombstones_are_in_the_digest_apart_from_the_messages() {
        let mb = Guid([7; 16]);
        let msgs = [key(3, 3, 4)];
        let plain = crate::store_api::digest_of(mb, "INBOX", 1, 9, &msgs);
        let a = crate::store_api::digest_with_expunged(mb, "INBOX", 1, 9, &msgs, &[key(1, 1, 5)]);
        let b = crate::store_api::digest_with_expunged(mb, "INBOX", 1, 9, &msgs, &[key(1, 1, 6)]);
        assert!(a.same_content(&b) && a.same_content(&plain));
        assert_eq!(a.modseq_hash, b.modseq_hash);
        assert_ne!(a.expunged_hash, b.expunged_hash);
        assert_ne!(a.expunged_hash, plain.expunged_hash);
        assert_eq!((a.expunged, plain.expunged), (1, 0));
    }

    #[test]
    fn two_origins_are_needed_to_trigger() {
        let vv = |v: &[(NodeId, u64)]| v.iter().copied().collect::<VersionVector>();
        assert_eq!(
            origins_advanced(&vv(&[(1, 5), (2, 3)]), &vv(&[(1, 9), (2, 3)])),
            1
        );
        assert_eq!(origins_advanced(&vv(&[(1, 5)]), &vv(&[(1, 6), (2, 1)])), 2);
        assert_eq!(
            origins_advanced(&vv(&[(1, 5), (2, 3)]), &vv(&[(1, 5), (2, 3)])),
            0
        );
    }
}
