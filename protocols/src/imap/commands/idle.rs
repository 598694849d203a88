//! IDLE (RFC 2177): pushes other sessions' changes as they become durable, sends
//! `* OK Still here` every imap_idle_notify_interval, ends on DONE.

use crate::imap::changes::Doorbell;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// What ends a wait for changes.
enum Wake {
    /// The selected mailbox's doorbell (imap::changes), rung once the answer is ready.
    Bell(Arc<Doorbell>),
    /// No mailbox selected: the user's change counter (nothing to report, but harmless).
    Counter(watch::Receiver<u64>),
    Never,
}

pub(crate) async fn idle(s: &mut Session, _tag: &str) -> Reply {
    // With a mailbox selected, changes come through its shared notifier (one store call per
    // change for all idlers, see imap::changes). Subscribed before the first look below, so a
    // change after that look wakes this session.
    let mut wake = match s.sel.as_ref() {
        Some(sel) => match sel.share.idle_doorbell(&sel.name, sel.modseq_seen) {
            Some(bell) => Wake::Bell(bell),
            None => Wake::Never,
        },
        None => s.watch.clone().map_or(Wake::Never, Wake::Counter),
    };
    // NOTIFY: any change of the user's wakes the session to look at other mailboxes too
    // (the user's own counter, also while another user's mailbox is selected).
    let mut notify_watch = s.notify.as_ref().and(s.own_watch());
    s.encoder().continuation(&mut s.out, "idling");
    if s.sync(true).await.is_err() {
        tracing::warn!("mailbox update before IDLE failed");
    }
    if s.flush().await.is_err() {
        return Err(Done::Close);
    }
    let interval = s
        .ctx
        .config
        .idle_notify_interval
        .max(std::time::Duration::from_secs(1));
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let shutdown = s.ctx.shutdown.clone();
    // Small: an idling client sends little more than DONE, and thousands may idle at once.
    let mut buf = vec![0u8; 512];
    loop {
        match s.framer.next_raw_line() {
            Some(Ok(line)) if line.eq_ignore_ascii_case(b"DONE") => {
                return Ok(Done::Ok("Idle completed.".into()));
            }
            Some(_) => return Err(Done::Bad("Expected DONE.".into())),
            None => {}
        }
        let Some(stream) = s.stream.as_mut() else {
            return Err(Done::Close);
        };
        enum Ev {
            Read(std::io::Result<usize>),
            Changed(bool),
            Notify(bool),
            Tick,
            Shutdown,
        }
        let ev = tokio::select! {
            r = stream.read(&mut buf) => Ev::Read(r),
            c = async {
                match &mut wake {
                    Wake::Bell(b) => {
                        b.rung().await;
                        true
                    }
                    Wake::Counter(w) => w.changed().await.is_ok(),
                    Wake::Never => std::future::pending().await,
                }
            } => Ev::Changed(c),
            n = async {
                match &mut notify_watch {
                    Some(w) => w.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => Ev::Notify(n),
            _ = keepalive.tick() => Ev::Tick,
            _ = shutdown.cancelled() => Ev::Shutdown,
        };
        match ev {
            Ev::Read(Ok(0)) | Ev::Read(Err(_)) => {
                s.end_reason
                    .get_or_insert_with(|| "Connection closed".into());
                return Err(Done::Close);
            }
            Ev::Read(Ok(n)) => {
                s.bytes_in += n as u64;
                s.framer.push(&buf[..n]);
            }
            Ev::Changed(true) => {
                if let Err(e) = s.sync(true).await {
                    tracing::warn!("mailbox update in IDLE failed: {e:?}");
                }
                // Search contexts (RFC 5267) are kept up to date while idling too.
                if let Err(e) = crate::imap::commands::update_contexts(s).await {
                    tracing::warn!("search context update in IDLE failed: {e:?}");
                }
                if s.pending_close {
                    let _ = s.flush().await;
                    return Err(Done::Close);
                }
            }
            // The store went away: keep idling, but without notifications.
            Ev::Changed(false) => wake = Wake::Never,
            Ev::Notify(true) => {
                if let Err(e) = crate::imap::commands::notify_check(s).await {
                    tracing::warn!("NOTIFY update in IDLE failed: {e:?}");
                }
            }
            Ev::Notify(false) => notify_watch = None,
            Ev::Tick => s.send(&Untagged::Ok("Still here".into())),
            Ev::Shutdown => {
                s.send(&Untagged::Bye("Server shutting down.".into()));
                s.end_reason = Some("Server shutting down".into());
                return Err(Done::Close);
            }
        }
        if s.flush().await.is_err() {
            return Err(Done::Close);
        }
    }
}
