//! `jepsen bench`: an imaptest-style load generator for IMAP, POP3 and LMTP against any server
//! (over the wire only). N client tasks run one workload until a time or an operation count is
//! reached; every command's latency and errors are recorded; the report gives operations per
//! second, p50/p99/max and errors per command, and this process's own CPU time. Any protocol
//! error (a NO/BAD/-ERR/4xx/5xx reply, a dropped connection, a malformed reply) makes the
//! command exit non-zero.

pub mod imap;
pub mod lmtp;
pub mod message;
pub mod parse;
pub mod pop3;
pub mod stats;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use stats::{Cpu, Recorder, Report};
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// IMAP sessions: LOGIN, SELECT, the new-mail FETCH, then `--mix` (bodies, flags, expunge,
    /// append), LOGOUT.
    Imap,
    /// IMAP sessions that only APPEND.
    Append,
    /// IMAP LOGIN and LOGOUT only.
    Login,
    /// LMTP deliveries of generated messages to random users.
    Lmtp,
    /// POP3 sessions: USER/PASS, STAT, RETR of every message, DELE of some, QUIT.
    Pop3,
    /// IMAP connections that log in, SELECT and IDLE, held for `--secs` once all are in.
    Idle,
    /// One large mailbox: SELECT, the folder-listing FETCH 1:*, SEARCH SUBJECT/FROM/HEADER/BODY,
    /// SORT by DATE and SUBJECT, in turn.
    Large,
}

/// Weights of the IMAP commands after the new-mail FETCH: `fetch=30,body=20,...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    pub fetch: u32,
    pub body: u32,
    pub store: u32,
    pub expunge: u32,
    pub append: u32,
}

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut m = Mix {
            fetch: 0,
            body: 0,
            store: 0,
            expunge: 0,
            append: 0,
        };
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
            let v: u32 = v
                .parse()
                .map_err(|_| format!("{part:?}: weight is not a number"))?;
            match k {
                "fetch" => m.fetch = v,
                "body" => m.body = v,
                "store" => m.store = v,
                "expunge" => m.expunge = v,
                "append" => m.append = v,
                _ => return Err(format!("{k:?}: one of fetch, body, store, expunge, append")),
            }
        }
        if m.fetch + m.body + m.store + m.expunge + m.append == 0 {
            return Err("every weight is zero".into());
        }
        Ok(m)
    }
}

/// `1-100` or `7`: an inclusive range of user numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UserRange(pub u32, pub u32);

impl FromStr for UserRange {
    type Err = String;
    fn from_str(s: &str) -> Result<UserRange, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: not N or N-M"))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: not N or N-M"))?;
        if b < a {
            return Err(format!("{s:?}: the range is empty"));
        }
        Ok(UserRange(a, b))
    }
}

/// `1k-1m`, `4096`: a range of message sizes in bytes (k = KiB, m = MiB).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeRange(pub usize, pub usize);

fn size(s: &str) -> Result<usize, String> {
    let s = s.trim().to_ascii_lowercase();
    let (n, mul) = match s.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => match s.strip_suffix('m') {
            Some(n) => (n, 1024 * 1024),
            None => (s.as_str(), 1),
        },
    };
    n.parse::<usize>()
        .map(|n| n * mul)
        .map_err(|_| format!("{s:?}: not a size such as 4096, 1k or 1m"))
}

impl FromStr for SizeRange {
    type Err = String;
    fn from_str(s: &str) -> Result<SizeRange, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (a, b) = (size(a)?, size(b)?);
        if b < a || b > 64 << 20 {
            return Err(format!("{s:?}: want MIN-MAX with MIN <= MAX <= 64m"));
        }
        Ok(SizeRange(a, b))
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[arg(long, value_enum)]
    pub workload: Workload,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server's port for the workload's protocol.
    #[arg(long)]
    pub port: u16,
    /// Implicit TLS (IMAPS, POP3S); the certificate is not checked.
    #[arg(long)]
    pub tls: bool,
    /// User names: `%d` is replaced by a number from `--users`.
    #[arg(long, default_value = "u%d")]
    pub user: String,
    #[arg(long, default_value = "1-100")]
    pub users: UserRange,
    #[arg(long, default_value = "pass")]
    pub password: String,
    /// LMTP recipients are USER@DOMAIN.
    #[arg(long, default_value = "example.org")]
    pub domain: String,
    /// Concurrent clients (connections).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Stop after this many seconds (idle: hold this long once every connection is in).
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Stop after this many operations in all (0: no bound).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// IMAP workload: weights of the commands after the new-mail FETCH.
    #[arg(long, default_value = "fetch=20,body=30,store=25,expunge=5,append=20")]
    pub mix: Mix,
    /// IMAP workload: commands of the mix per session before LOGOUT.
    #[arg(long, default_value_t = 20)]
    pub ops_per_session: u32,
    /// Sizes of generated messages (APPEND, LMTP): log-uniform over MIN-MAX.
    #[arg(long, default_value = "1k-1m")]
    pub msg_size: SizeRange,
    /// POP3: percentage of messages deleted in each session.
    #[arg(long, default_value_t = 10)]
    pub pop3_dele_pct: u32,
    /// Idle: connections logging in at the same time.
    #[arg(long, default_value_t = 64)]
    pub login_parallel: usize,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seed of the random choices (users, commands, messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What every client task of a run shares.
pub struct Ctx {
    pub args: Args,
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub rec: Recorder,
    pub gen: message::Gen,
    /// Idle: connections in IDLE (or failed) so far.
    pub settled: std::sync::atomic::AtomicUsize,
    /// Idle: connections logging in at the same time.
    pub login_slots: tokio::sync::Semaphore,
}

/// Longest server line accepted (a FETCH line without its literals is short; a SEARCH or SORT
/// answer of 100,000 numbers is not).
pub const MAX_LINE: u64 = 16 << 20;
/// Largest literal accepted.
pub const MAX_LITERAL: u64 = 80 << 20;
/// Connect and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Ctx {
    pub fn user(&self, n: u32) -> String {
        self.args.user.replace("%d", &n.to_string())
    }

    pub fn random_user(&self, rng: &mut impl Rng) -> String {
        self.user(rng.gen_range(self.args.users.0..=self.args.users.1))
    }

    pub async fn connect(&self) -> Result<crate::aconn::Conn> {
        let tls = self.tls.as_ref().map(|c| (c, self.args.host.as_str()));
        crate::aconn::Conn::connect(self.addr, tls, CONNECT_TIMEOUT, MAX_LINE).await
    }

    /// Times `fut` as one `op` and records it: Ok(Ok) is a success, Ok(Err) a protocol
    /// error (the session goes on), Err a broken session. Returns None when the session
    /// must end.
    pub async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<Result<T, String>>>,
    ) -> Option<Result<T, ()>> {
        let t = Instant::now();
        match fut.await {
            Ok(Ok(v)) => {
                self.rec.ok(op, t.elapsed());
                Some(Ok(v))
            }
            Ok(Err(why)) => {
                self.rec.err(op, t.elapsed(), why);
                Some(Err(()))
            }
            Err(e) => {
                self.rec.err(op, t.elapsed(), format!("{e:#}"));
                None
            }
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = rt.block_on(measure(a.clone()))?;
    println!(
        "workload {:?} against {}:{} ({} clients{})",
        a.workload,
        a.host,
        a.port,
        a.clients,
        if a.tls { ", TLS" } else { "" }
    );
    print!("{}", report.render());
    if report.errors() > 0 {
        bail!("{} protocol errors", report.errors());
    }
    if report.total() == 0 {
        bail!("no operation completed");
    }
    Ok(())
}

/// One run of `a.workload`; its report.
pub async fn measure(a: Args) -> Result<Report> {
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let addr = (a.host.as_str(), a.port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {}:{}", a.host, a.port))?
        .next()
        .with_context(|| format!("{} has no address", a.host))?;
    let tls = if a.tls {
        Some(crate::aconn::insecure_tls()?)
    } else {
        None
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let gen = if matches!(
        a.workload,
        Workload::Imap | Workload::Append | Workload::Lmtp
    ) {
        message::Gen::new(a.msg_size.0, a.msg_size.1, &mut rng)
    } else {
        message::Gen::new(512, 512, &mut rand::rngs::StdRng::seed_from_u64(0))
    };
    let ctx = Arc::new(Ctx {
        rec: Recorder::new(a.count),
        addr,
        tls,
        gen,
        settled: std::sync::atomic::AtomicUsize::new(0),
        login_slots: tokio::sync::Semaphore::new(a.login_parallel.max(1)),
        args: a.clone(),
    });
    let cpu0 = Cpu::now();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.clients {
        let ctx = ctx.clone();
        let seed = a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        tasks.spawn(async move {
            let rng = rand::rngs::StdRng::seed_from_u64(seed);
            match ctx.args.workload {
                Workload::Imap | Workload::Append | Workload::Login => {
                    imap::client(&ctx, i, rng).await
                }
                Workload::Idle => imap::idle(&ctx, i).await,
                Workload::Large => imap::large(&ctx, rng).await,
                Workload::Lmtp => lmtp::client(&ctx, i, rng).await,
                Workload::Pop3 => pop3::client(&ctx, i, rng).await,
            }
        });
    }
    let progress = progress_bar(&a);
    let timer = {
        let ctx = ctx.clone();
        let progress = progress.clone();
        tokio::spawn(async move { pace(&ctx, progress).await })
    };
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            ctx.rec.stop();
            bail!("a client task failed: {e}");
        }
    }
    let elapsed = start.elapsed();
    timer.abort();
    progress.finish_and_clear();
    Ok(ctx.rec.report(elapsed, Cpu::now().since(cpu0)))
}

fn progress_bar(a: &Args) -> indicatif::ProgressBar {
    if a.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} {spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb
}

/// Stops the run at its time (idle: `--secs` after every connection settled) and updates the
/// progress line.
async fn pace(ctx: &Ctx, progress: indicatif::ProgressBar) {
    use std::sync::atomic::Ordering;
    let secs = Duration::from_secs_f64(ctx.args.secs.max(0.0));
    let mut until = (ctx.args.workload != Workload::Idle).then(|| Instant::now() + secs);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        if until.is_none() && ctx.settled.load(Ordering::Acquire) >= ctx.args.clients {
            until = Some(now + secs);
        }
        let done = ctx.rec.done.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        progress.set_message(format!(
            "{done} operations ({rate:.0}/s), {} errors{}",
            ctx.rec.errors.load(Ordering::Relaxed),
            if ctx.args.workload == Workload::Idle {
                format!(
                    ", {} connections settled",
                    ctx.settled.load(Ordering::Relaxed)
                )
            } else {
                String::new()
            }
        ));
        progress.tick();
        if until.is_some_and(|u| now >= u) {
            ctx.rec.stop();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        assert_eq!("1-100".parse(), Ok(UserRange(1, 100)));
        assert_eq!("7".parse(), Ok(UserRange(7, 7)));
        assert!("9-3".parse::<UserRange>().is_err());
        assert_eq!("1k-1m".parse(), Ok(SizeRange(1024, 1 << 20)));
        assert_eq!("4096".parse(), Ok(SizeRange(4096, 4096)));
        assert!("1m-1k".parse::<SizeRange>().is_err());
        let m: Mix = "append=1".parse().unwrap();
        assert_eq!((m.append, m.fetch), (1, 0));
        assert!("append=0".parse::<Mix>().is_err());
        assert!("bogus=1".parse::<Mix>().is_err());
    }
}
