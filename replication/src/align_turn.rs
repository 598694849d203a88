//! When the merge resolver compares modseqs with a peer: after a shipping turn of a user, and
//! only if records of two origins moved since the last completed check (see [`crate::align`]
//! for the check itself).

use crate::align::{check, origins_advanced, Check};
use crate::conn::Conn;
use crate::error::Result;
use crate::state::Shared;
use crate::store_api::ReplicaUser;
use crate::util::blocking;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use storage::{NodeId, VersionVector};

/// Called by the resolver's shipper at the end of a user's turn with nothing more to push.
pub(crate) async fn after_ship(
    sh: &Arc<Shared>,
    peer: NodeId,
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
) -> Result<()> {
    if !sh.resolves_conflicts() {
        return Ok(());
    }
    let uu = u.clone();
    let ours = blocking(move || uu.version_vector()).await?;
    let key = (peer, user.to_string());
    {
        let mut last = sh.align.last.lock();
        let base = match last.get(&key) {
            Some(b) => b.clone(),
            // First turn since this node started: check once whatever moved. The marks are in
            // memory only, so modseqs left apart before a restart (the resolver crashed between
            // a two-origin merge and its check) are found only this way. An empty mark makes
            // every turn check (once two origins exist) until a check completes.
            None => {
                last.insert(key.clone(), VersionVector::new());
                VersionVector::new()
            }
        };
        if origins_advanced(&base, &ours) < 2 {
            return Ok(());
        }
    }
    sh.modseq_checks.fetch_add(1, Ordering::Relaxed);
    match check(conn, u, user, sh.cfg.reply_timeout).await? {
        // The peer has not applied the same records yet; whatever it still lacks or sends
        // makes the user dirty again, and the next turn checks again.
        Check::NotReady => {}
        Check::Done(a) => {
            sh.modseqs_aligned
                .fetch_add(a.mailboxes as u64, Ordering::Relaxed);
            // What this check covered; its own AlignModseqs records are of one origin only.
            // A skipped mailbox keeps the old mark, so the next turn looks again.
            let mut last = sh.align.last.lock();
            if a.skipped == 0 {
                last.insert(key, ours);
            }
            // This check wrote alignment records: every peer, this one included, applies them
            // on top of its own HIGHESTMODSEQ, which may have moved past ours meanwhile (then it
            // lands higher), and only this node writes them (one origin, which alone would
            // never trigger a check again). So every peer is checked again at its next turn,
            // until a check finds nothing to align (replicas were left one modseq apart:
            // jepsen finding 3).
            if a.mailboxes > 0 {
                for p in sh.peers.keys() {
                    last.insert((*p, user.to_string()), VersionVector::new());
                }
            }
        }
    }
    Ok(())
}
