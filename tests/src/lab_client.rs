//! The client side of the lab fail-over tests: a steady writer (one LMTP delivery and one IMAP
//! APPEND per round, through the service address) that records every acknowledged write and
//! every failure, a LOGIN prober, and a reader of INBOX as Message-ID -> UID. Runs inside a
//! lab namespace through [`crate::lab::in_netns`].

use crate::cluster::{fetch_all, select};
use crate::lab::{self, PASS, RCPT, USER};
use crate::{lmtp_deliver, tagged, LineConn};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One write the server acknowledged: its Message-ID and, for an APPEND, (UIDVALIDITY, UID).
#[derive(Clone, Debug)]
pub struct Acked {
    pub id: String,
    pub appended: Option<(u32, u32)>,
    pub at: Instant,
}

/// One write that failed, and how: a refusal (IMAP NO, LMTP 4xx) or a broken connection.
#[derive(Clone, Debug)]
pub struct Failed {
    pub id: String,
    pub at: Instant,
    pub refused: bool,
    pub why: String,
}

/// What the writer saw.
#[derive(Default)]
pub struct Log {
    pub acked: Vec<Acked>,
    pub failed: Vec<Failed>,
}

pub type Shared = Arc<Mutex<Log>>;

/// Writes at most this many rounds, for at most this long.
pub const MAX_ROUNDS: usize = 600;
pub const MAX_TRAFFIC: Duration = Duration::from_secs(50);
/// Pause between rounds: about 10 writes a second, bounded load on a 2-core machine.
pub const PACE: Duration = Duration::from_millis(100);

pub fn message(id: &str) -> Vec<u8> {
    format!(
        "From: failover <f@lab.test>\r\nTo: {RCPT}\r\nSubject: {id}\r\nMessage-ID: <{id}@failover.test>\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

pub fn imap_connect(addr: SocketAddr) -> Result<LineConn> {
    // Replicated durability holds an ack up to replication_sync_timeout (2 s) when the peer
    // is gone; a reply later than 4 s means the server is gone.
    let mut c = LineConn::connect_with(addr, Duration::from_millis(500), Duration::from_secs(4))?;
    let g = c.line()?;
    if !g.starts_with("* OK") {
        bail!("greeting {g:?}");
    }
    let r = c.imap("l", &format!("LOGIN {USER} {PASS}"))?;
    if !tagged(&r).starts_with("l OK") {
        bail!("LOGIN: {r:?}");
    }
    Ok(c)
}

/// Why an APPEND failed: the server's tagged NO/BAD (a refusal) or a transport error.
pub enum AppendError {
    Refused(String),
    Broken(anyhow::Error),
}

/// APPEND with a synchronizing literal; (UIDVALIDITY, UID) from APPENDUID.
pub fn append(c: &mut LineConn, msg: &[u8]) -> std::result::Result<(u32, u32), AppendError> {
    let broken = AppendError::Broken;
    c.send(&format!("a APPEND INBOX {{{}}}", msg.len()))
        .map_err(broken)?;
    let cont = c.line().map_err(broken)?;
    if !cont.starts_with('+') {
        return Err(AppendError::Refused(cont));
    }
    c.send_raw(msg).map_err(broken)?;
    c.send_raw(b"\r\n").map_err(broken)?;
    let r = c.imap_until("a").map_err(broken)?;
    parse_appenduid(tagged(&r)).ok_or_else(|| AppendError::Refused(tagged(&r).to_string()))
}

pub fn parse_appenduid(t: &str) -> Option<(u32, u32)> {
    let rest = t.strip_prefix("a OK [APPENDUID ")?;
    let mut it = rest.split([' ', ']']);
    let v = it.next()?.parse().ok()?;
    let u = it.next()?.parse().ok()?;
    Some((v, u))
}

/// One LMTP delivery with short timeouts: Ok on the recipient's 250, Err((refused, why)).
pub fn lmtp_once(msg: &[u8]) -> std::result::Result<(), (bool, String)> {
    // lmtp_deliver's own connect waits 5 s on a dead address; probe quickly first.
    std::net::TcpStream::connect_timeout(&lab::vip(24), Duration::from_millis(500))
        .map_err(|e| (false, e.to_string()))?;
    match lmtp_deliver(lab::vip(24), "f@lab.test", &[RCPT], msg) {
        Ok(replies) => match replies.first() {
            Some(r) if r.starts_with("250") => Ok(()),
            other => Err((true, format!("{other:?}"))),
        },
        Err(e) => Err((false, format!("{e:#}"))),
    }
}

/// The writer: rounds of one LMTP delivery and one APPEND through the service address until
/// `stop`; a failed APPEND session is replaced by a new connection next round.
pub fn traffic(stop: Arc<AtomicBool>, log: Shared, tag: &'static str) {
    let start = Instant::now();
    let mut imap: Option<LineConn> = None;
    for round in 0..MAX_ROUNDS {
        if stop.load(Ordering::SeqCst) || start.elapsed() > MAX_TRAFFIC {
            break;
        }
        let id = format!("{tag}-lmtp-{round}");
        let r = lmtp_once(&message(&id));
        record(&log, id, r.map(|()| None));
        let id = format!("{tag}-imap-{round}");
        let result = match imap.as_mut() {
            Some(c) => append(c, &message(&id)),
            None => match imap_connect(lab::vip(143)) {
                Ok(mut c) => {
                    let r = append(&mut c, &message(&id));
                    imap = Some(c);
                    r
                }
                Err(e) => Err(AppendError::Broken(e)),
            },
        };
        let r = match result {
            Ok(uid) => Ok(Some(uid)),
            Err(AppendError::Refused(t)) => Err((true, t)),
            Err(AppendError::Broken(e)) => {
                imap = None;
                Err((false, format!("{e:#}")))
            }
        };
        record(&log, id, r);
        std::thread::sleep(PACE);
    }
}

fn record(log: &Shared, id: String, r: std::result::Result<Option<(u32, u32)>, (bool, String)>) {
    let at = Instant::now();
    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
    match r {
        Ok(appended) => l.acked.push(Acked { id, appended, at }),
        Err((refused, why)) => l.failed.push(Failed {
            id,
            at,
            refused,
            why,
        }),
    }
}

/// One IMAP LOGIN through the service address with short timeouts.
pub fn login_once() -> Result<()> {
    // A short connect timeout: a SYN lost while the address moves is retried at once, not
    // after TCP's own 1 s retransmission.
    let mut c = LineConn::connect_with(
        lab::vip(143),
        Duration::from_millis(100),
        Duration::from_millis(1000),
    )?;
    let g = c.line()?;
    if !g.starts_with("* OK") {
        bail!("greeting {g:?}");
    }
    let r = c.imap("p", &format!("LOGIN {USER} {PASS}"))?;
    if !tagged(&r).starts_with("p OK") {
        bail!("LOGIN {r:?}");
    }
    let _ = c.imap("q", "LOGOUT");
    Ok(())
}

/// Polls until an IMAP LOGIN through the service address succeeds; when, measured from `t0`.
pub fn first_login_after(t0: Instant, within: Duration) -> Result<Duration> {
    let deadline = Instant::now() + within;
    loop {
        let ok = login_once();
        if ok.is_ok() {
            return Ok(t0.elapsed());
        }
        if Instant::now() > deadline {
            bail!("no IMAP LOGIN through the service address within {within:?}: {ok:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// INBOX at `addr`: Message-ID -> (UIDVALIDITY, UID).
pub fn inbox_by_message_id(addr: SocketAddr) -> Result<BTreeMap<String, (u32, u32)>> {
    let mut c = imap_connect(addr)?;
    c.set_timeout(Duration::from_secs(30))?;
    // fetch_all asks for MODSEQ; ENABLE is valid before SELECT only.
    c.imap("e", "ENABLE CONDSTORE")?;
    let (uidvalidity, exists) = select(&mut c, "INBOX")?;
    let mut out = BTreeMap::new();
    if exists == 0 {
        return Ok(out);
    }
    for (uid, m) in fetch_all(&mut c).context("FETCH")? {
        let id = m
            .body
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.split('@').next())
            .unwrap_or("")
            .to_string();
        out.insert(id, (uidvalidity, uid));
    }
    Ok(out)
}

/// Acknowledged writes missing from `inbox`, and APPENDs found under another UID.
pub fn check_acked(
    acked: &[Acked],
    inbox: &BTreeMap<String, (u32, u32)>,
) -> (Vec<String>, Vec<String>) {
    let mut lost = Vec::new();
    let mut wrong_uid = Vec::new();
    for a in acked {
        match (inbox.get(&a.id), a.appended) {
            (None, _) => lost.push(a.id.clone()),
            (Some(found), Some(acked_uid)) if *found != acked_uid => {
                wrong_uid.push(format!("{}: acked {acked_uid:?}, found {found:?}", a.id))
            }
            _ => {}
        }
    }
    (lost, wrong_uid)
}
