//! Client workloads: each a thread with its own process id, in the client namespace (through
//! the service address) or in a node's namespace (straight to that node). Every loop is
//! bounded by a count and by the run's deadline, and paced.

pub mod append;
pub mod expunge_move;
pub mod flags;
pub mod lmtp;
pub mod reader;

use super::history::{Event, Kind, Recorder, F};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ALL: &[&str] = &["lmtp", "append", "flags", "expunge-move", "reader"];

/// Replicated durability holds an acknowledgement up to replication_sync_timeout (2 s in the
/// lab); a reply later than this counts as unknown.
pub const IO_TIMEOUT: Duration = Duration::from_secs(4);

/// A message a client appended and the server acknowledged, which others may act on.
#[derive(Clone, Debug)]
pub struct Target {
    pub msgid: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

#[derive(Clone)]
pub struct Ctx {
    pub rec: Recorder,
    pub stop: Arc<AtomicBool>,
    pub deadline: Instant,
    pub max_ops: usize,
    pub pace: Duration,
    pub addr: SocketAddr,
    /// LMTP on the same host as `addr`.
    pub lmtp: SocketAddr,
    pub process: u32,
    /// Appended messages the flag and expunge/move workloads pick from.
    pub targets: Arc<Mutex<Vec<Target>>>,
    /// Distinguishes this run's Message-IDs from any other run's.
    pub run_id: String,
    pub seed: u64,
    /// The node this client talks to straight, if it does.
    pub direct: Option<u32>,
    /// The node holding the service address as last seen by the harness (0: none or two).
    /// IMAP greetings do not name the node, so for clients of the service address this is
    /// who answered, to within the monitor's 200 ms.
    pub holder: Arc<AtomicU32>,
}

impl Ctx {
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    pub fn invoke(&self, f: F) -> Event {
        Event::new(self.process, Kind::Invoke, f)
    }

    /// Records `e` as the invocation, then the same operation completed as `kind`.
    pub fn complete(
        &self,
        e: &Event,
        kind: Kind,
        node: Option<u32>,
        error: Option<String>,
    ) -> Event {
        let mut c = e.clone();
        c.kind = kind;
        let holder = self.holder.load(Ordering::SeqCst);
        c.node = node.or(self.direct).or((holder != 0).then_some(holder));
        c.error = error;
        c
    }

    pub fn sleep(&self, d: Duration) {
        // Short steps so a stop is honoured quickly.
        let end = Instant::now() + d;
        while Instant::now() < end && self.running() {
            std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
        }
    }

    pub fn lock_targets(&self) -> std::sync::MutexGuard<'_, Vec<Target>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tiny deterministic PRNG (splitmix64): reproducible choices from the run's seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// How an IMAP command's failure counts: before the command went out it cannot have taken
/// effect (fail); after, it may have (info).
pub fn kind_of_error(sent: bool) -> Kind {
    if sent {
        Kind::Info
    } else {
        Kind::Fail
    }
}

/// A logged-in session with INBOX selected: (connection, its UIDVALIDITY).
pub fn inbox_session(ctx: &Ctx) -> anyhow::Result<(super::wire::Conn, u32)> {
    use super::lab::{PASS, USER};
    let mut c = super::wire::Conn::imap_login(ctx.addr, USER, PASS, IO_TIMEOUT)?;
    let (lines, t) = c.imap("SELECT INBOX")?;
    if !t.starts_with("OK") {
        anyhow::bail!("SELECT INBOX: {t}");
    }
    let v = super::imap_parse::code_number(&lines, "UIDVALIDITY")
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| anyhow::anyhow!("SELECT INBOX without UIDVALIDITY"))?;
    Ok((c, v))
}
