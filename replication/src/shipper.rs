//! Continuous shipping to one peer: keep a connection up (reconnecting with exponential back-off
//! on the monotonic clock), and ship dirty users round-robin, one batch each, so one user's huge
//! backlog never holds back another user's changes.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::exchange::{peer_vv, push_batch};
use crate::fence::FENCED_PREFIX;
use crate::peer_state::{LagMark, Lane, PeerState};
use crate::state::Shared;
use crate::store_api::bytes_of;
use crate::wire::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::Instrument;

pub(crate) async fn run(sh: Arc<Shared>, peer: Arc<PeerState>, lane: Arc<Lane>) {
    let span = tracing::info_span!("replication_ship", peer = peer.id, addr = %peer.addr, lane = lane.index);
    async move {
        let mut backoff = sh.cfg.backoff_min;
        let mut last_logged: Option<String> = None;
        loop {
            let now = sh.store.now();
            let gen = peer.connect_gen.load(Ordering::SeqCst);
            let r = tokio::select! {
                _ = sh.shutdown.cancelled() => return,
                r = Conn::connect(&sh.cfg.tls, sh.cfg.node_id, now, peer.id, &peer.addr) => r,
            };
            match r {
                Ok(mut conn) => {
                    if let Err(e) = sh.store.observe(conn.peer_time) {
                        tracing::warn!(error = %e, "replication: peer clock ahead");
                    }
                    lane.connected.store(true, Ordering::SeqCst);
                    peer.connects.fetch_add(1, Ordering::Relaxed);
                    peer.connect_succeeded();
                    last_logged = None;
                    backoff = sh.cfg.backoff_min;
                    tracing::info!("replication: connected to peer");
                    // The peer may have lost or gained state while we were apart: ask again
                    // for this lane's users.
                    peer.acked
                        .lock()
                        .retain(|u, _| peer.lane_of(u) != lane.index);
                    let users: Vec<String> = sh.users.lock().keys().cloned().collect();
                    for u in users.iter().filter(|u| peer.lane_of(u) == lane.index) {
                        peer.mark_dirty(u);
                    }
                    let r = session(&sh, &peer, &lane, &mut conn).await;
                    lane.connected.store(false, Ordering::SeqCst);
                    match r {
                        Ok(()) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "replication: connection to peer lost");
                            peer.connection_lost(e.to_string());
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    // A peer that stays down is logged once, not at every retry.
                    if last_logged.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(error = %msg, "replication: cannot connect to peer; retrying with back-off");
                        last_logged = Some(msg.clone());
                    } else {
                        tracing::debug!(error = %msg, "replication: still cannot connect to peer");
                    }
                    peer.connect_failed(gen, msg);
                }
            }
            tokio::select! {
                _ = sh.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {
                    backoff = (backoff * 2).min(sh.cfg.backoff_max);
                }
                _ = peer.redial.notified() => backoff = sh.cfg.backoff_min,
            }
        }
    }
    .instrument(span)
    .await
}

/// Ships until the connection fails (Err) or the node shuts down (Ok).
async fn session(
    sh: &Arc<Shared>,
    peer: &Arc<PeerState>,
    lane: &Arc<Lane>,
    conn: &mut Conn,
) -> Result<()> {
    // The epoch the peer was last told on this connection (it assumes 0 until told).
    let mut told_epoch = 0u64;
    loop {
        let next = lane.queue.lock().pop();
        let Some(user) = next else {
            // Everything queued has been shipped and acked: the peer is caught up.
            if peer.idle() && peer.connected() {
                sh.clear_degraded(peer.id);
            }
            tokio::select! {
                _ = sh.shutdown.cancelled() => return Ok(()),
                _ = lane.wake.notified() => continue,
                _ = tokio::time::sleep(sh.cfg.keepalive) => {
                    conn.send(&Message::Ping).await?;
                    match conn.recv_timeout(sh.cfg.reply_timeout, "pong").await? {
                        Message::Pong => continue,
                        m => return Err(ReplError::protocol(format!("expected Pong, got {}", m.kind()))),
                    }
                }
            }
        };
        let epoch = sh.epoch();
        if epoch != told_epoch {
            conn.send(&Message::Epoch { epoch }).await?;
            told_epoch = epoch;
        }
        match ship_user(sh, peer, lane, conn, &user).await {
            Ok(()) => peer.user_succeeded(&user),
            // A deposed active node: the peer knows a newer epoch. Ship again as soon as this
            // node learns it from the coordinator (its records then merge at the peer).
            Err(ReplError::Refused(why)) if why.starts_with(FENCED_PREFIX) => {
                tracing::info!(user, reason = %why, "replication: fenced by the peer; shipping again under the next epoch");
                peer.user_failed(&user, why);
                let (peer, sh2) = (peer.clone(), sh.clone());
                let mut epoch_rx = sh.cfg.epoch.clone();
                sh.tasks.spawn(async move {
                    let changed = async {
                        match epoch_rx.as_mut() {
                            Some(rx) => {
                                let _ = rx.wait_for(|v| v.epoch != epoch).await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    };
                    tokio::select! {
                        _ = sh2.shutdown.cancelled() => {}
                        _ = changed => peer.mark_dirty(&user),
                        _ = tokio::time::sleep(USER_RETRY) => peer.mark_dirty(&user),
                    }
                });
            }
            // One user's store trouble (here or at the peer) must not stall the lane's other
            // users: log, retry that user later, carry on.
            Err(e @ (ReplError::Refused(_) | ReplError::Store(_))) => {
                tracing::warn!(user, error = %e, "replication: cannot ship user; retrying later");
                peer.user_failed(&user, e.to_string());
                let (peer, sh2) = (peer.clone(), sh.clone());
                sh.tasks.spawn(async move {
                    tokio::select! {
                        _ = sh2.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(USER_RETRY) => peer.mark_dirty(&user),
                    }
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// A peer holding more of this node's own records than this node does means our log was lost
/// or restored from an old backup: take them back before they are shipped over or (worse)
/// their sequence numbers are given to new changes.
async fn recover_own_records(
    sh: &Arc<Shared>,
    conn: &mut Conn,
    u: &Arc<dyn crate::store_api::ReplicaUser>,
    user: &str,
    peer_has: &storage::VersionVector,
) -> Result<()> {
    let me = sh.cfg.node_id;
    let theirs = peer_has.get(&me).copied().unwrap_or(0);
    if theirs == 0 {
        return Ok(());
    }
    let uu = u.clone();
    let ours = crate::util::blocking(move || uu.version_vector())
        .await?
        .get(&me)
        .copied()
        .unwrap_or(0);
    if theirs <= ours {
        return Ok(());
    }
    tracing::error!(
        user,
        ours,
        theirs,
        "replication: the peer has more of this node's own changes than this node (log lost or \
         restored from backup?); fetching them back"
    );
    let pulled = crate::exchange::pull_all(
        conn,
        &sh.store,
        u,
        user,
        1000,
        sh.resolves_conflicts(),
        sh.cfg.reply_timeout,
    )
    .await?;
    tracing::info!(
        user,
        records = pulled.records,
        objects = pulled.objects,
        "replication: own changes recovered from the peer"
    );
    Ok(())
}

/// How long a user whose batch failed (a store error here or at the peer) waits to be retried.
const USER_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

async fn ship_user(
    sh: &Arc<Shared>,
    peer: &Arc<PeerState>,
    lane: &Arc<Lane>,
    conn: &mut Conn,
    user: &str,
) -> Result<()> {
    let Some(u) = sh.users.lock().get(user).cloned() else {
        return Ok(());
    };
    let known = peer.acked.lock().get(user).cloned();
    let have = match known {
        Some(v) => v,
        None => {
            let v = peer_vv(conn, user, sh.cfg.reply_timeout).await?;
            recover_own_records(sh, conn, &u, user, &v).await?;
            crate::exchange::warn_stale_ghosts_vv(&u, user, peer.id, &v).await?;
            peer.merge_acked(user, &v);
            confirm_own(sh, &u, user).await;
            v
        }
    };
    // Catch-up (the previous batch was cut) yields to busy clients, bounded; the live stream
    // ships at once (see `pacing`).
    let catch_up = lane.catching_up.lock().contains(user);
    let plan = sh.pacer.before_batch(catch_up, sh.cfg.batch_records).await;
    let mut last = None;
    let low = sh.pacer.low_priority(catch_up);
    let pushed = crate::background::catch_up(
        low,
        push_batch(
            conn,
            &u,
            user,
            &have,
            plan.records,
            sh.cfg.batch_bytes,
            sh.cfg.reply_timeout,
            |recs| {
                last = recs.last().map(|r| (r.origin, r.seq));
                let mark = LagMark {
                    oldest_unacked_ms: recs.first().map(|r| r.time.wall_ms).unwrap_or(0),
                    bytes: recs.iter().map(bytes_of).sum(),
                };
                peer.lag.lock().insert(user.to_string(), mark);
            },
        ),
    )
    .await?;
    if let Some(vv) = &pushed.acked {
        // A peer that acks without having applied what we sent would make us resend forever.
        if let Some((o, s)) = last {
            if vv.get(&o).copied().unwrap_or(0) < s {
                return Err(ReplError::protocol(format!(
                    "peer acked {user:?} without record {o}:{s}"
                )));
            }
        }
        peer.merge_acked(user, vv);
        confirm_own(sh, &u, user).await;
        peer.records_sent
            .fetch_add(pushed.records as u64, Ordering::Relaxed);
        peer.objects_sent
            .fetch_add(pushed.objects as u64, Ordering::Relaxed);
        peer.bytes_sent.fetch_add(pushed.bytes, Ordering::Relaxed);
        sh.acks.send_modify(|n| *n += 1);
    }
    if pushed.more {
        lane.catching_up.lock().insert(user.to_string());
        lane.queue.lock().push(user);
    } else {
        lane.catching_up.lock().remove(user);
        peer.lag.lock().remove(user);
        // Nothing more to push: the resolver evens modseqs if both nodes were written.
        crate::align_turn::after_ship(sh, peer.id, conn, &u, user).await?;
    }
    Ok(())
}

/// After a peer's acknowledgement: this node's own records it holds may be shown here, if
/// nothing it holds could contest them unseen (see `crate::confirm`).
async fn confirm_own(sh: &Arc<Shared>, u: &Arc<dyn crate::store_api::ReplicaUser>, user: &str) {
    let reader = u.clone();
    if let Ok(local) = crate::util::blocking(move || reader.version_vector()).await {
        crate::confirm::own_if_caught_up(sh, u, user, &local);
    }
}
