//! `jepsen bench-replication`: two nodes in one process (real stores in temporary directories,
//! real TCP on 127.0.0.1 with mutual TLS) measuring
//! - replication lag: delivery acknowledged on A until readable on B, at a steady rate;
//! - deliveries/s with `replicated` durability against `local`, in alternating rounds (the
//!   machine is shared: both modes should see the same load), with where a delivery's time went
//!   (local append, wait for a peer) and the process CPU per delivery;
//! - `sync_user` of a large user to an empty peer, the incremental sync after more mail, and
//!   the user pulled by a new empty node.
//!
//! With `--compare-dovecot`, `doveadm sync` of the same messages between two Dovecot instances
//! (`tests::dovecot`) is timed afterwards and printed beside ours.

use anyhow::{Context, Result};
use replication::certs;
use replication::store_api::ReplicaStore;
use replication::{
    Durability, Handle, PeerConfig, ReplicaWait, ReplicationConfig, Replicator, TlsMaterial,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Store, StoreConfig};

#[derive(clap::Parser)]
#[command(
    name = "bench_replication",
    about = "Replication lag p50/p99 at a steady delivery rate, replicated vs local deliveries/s, and full/incremental sync of a large user (two nodes in-process over mTLS loopback)"
)]
struct Args {
    /// Directory for the test data (a temporary directory under it is removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    /// Deliveries per second for the lag measurement.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds of steady delivery for the lag measurement.
    #[arg(long, default_value_t = 10.0)]
    pub lag_secs: f64,
    /// Seconds per throughput measurement (local, replicated).
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Pairs of (local, replicated) throughput measurements, alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Skip the lag and sync measurements (throughput rounds only).
    #[arg(long)]
    pub throughput_only: bool,
    /// Concurrent writers for the throughput measurement.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Messages of the user for the full-sync measurement.
    #[arg(long, default_value_t = 10_000)]
    pub sync_messages: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Afterwards time `doveadm sync` of the same messages between two Debian Dovecot 2.3
    /// instances (mdbox), full and incremental, and print it beside ours.
    #[arg(long)]
    pub compare_dovecot: bool,
}

/// Wall seconds of our syncs, as each `SyncReport` measured them.
struct SyncSecs {
    full: f64,
    incremental: f64,
    noop: f64,
}

fn message(size: usize, tag: &str) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.com\r\nTo: user@example.com\r\nSubject: {tag}\r\n\
         Message-ID: <{tag}@bench>\r\n\r\n"
    )
    .into_bytes();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ tag.len() as u64;
    for b in tag.bytes() {
        x = x.rotate_left(5) ^ b as u64;
    }
    while m.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.extend_from_slice(format!("{:016x} mail body text\r\n", x).as_bytes());
    }
    m.truncate(size);
    m
}

fn append(store: &Store, user: &str, raw: &[u8]) -> Result<()> {
    let u = store.user(user)?;
    append_to_inbox(&u, raw).context("append")
}

struct Cluster {
    _ca: tempfile::TempDir,
    tls: BTreeMap<u32, TlsMaterial>,
}

impl Cluster {
    fn new() -> Result<Cluster> {
        let ca = tempfile::tempdir()?;
        certs::init_ca(ca.path())?;
        let mut tls = BTreeMap::new();
        for id in [1, 2] {
            let out = ca.path().join(format!("n{id}"));
            let p = certs::issue_node_cert(ca.path(), id, &[], &out)?;
            tls.insert(
                id,
                TlsMaterial::load(&ca.path().join(certs::CA_CERT_FILE), &p.cert, &p.key)?,
            );
        }
        Ok(Cluster { _ca: ca, tls })
    }
}

fn open_store(dir: &std::path::Path, id: u32) -> Result<Arc<Store>> {
    let mut c = StoreConfig::new(dir);
    c.node_id = id;
    Ok(Store::open(c)?)
}

async fn start(
    cl: &Cluster,
    id: u32,
    store: Arc<Store>,
    listener: tokio::net::TcpListener,
    peer: (u32, String),
    durability: Durability,
) -> Result<Handle> {
    let mut c = ReplicationConfig::new(
        id,
        listener.local_addr()?,
        vec![PeerConfig {
            id: peer.0,
            addr: peer.1,
        }],
        cl.tls[&id].clone(),
    );
    c.durability = durability;
    c.sync_timeout = Duration::from_secs(5);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(500);
    let rs: Arc<dyn ReplicaStore> = Arc::new(replication::storage_adapter::StorageReplica(store));
    Ok(Replicator::start_on(c, listener, rs)?)
}

async fn pair(
    cl: &Cluster,
    base: &std::path::Path,
    durability: Durability,
) -> Result<(Arc<Store>, Arc<Store>, Handle, Handle)> {
    let (da, db) = (base.join("a"), base.join("b"));
    let (sa, sb) = (open_store(&da, 1)?, open_store(&db, 2)?);
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (aa, ba) = (la.local_addr()?.to_string(), lb.local_addr()?.to_string());
    let ha = start(cl, 1, sa.clone(), la, (2, ba), durability).await?;
    let hb = start(cl, 2, sb.clone(), lb, (1, aa), durability).await?;
    Ok((sa, sb, ha, hb))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Steady deliveries on A; per delivery, from its acknowledgement on A until B has applied it.
async fn lag(cl: &Cluster, base: &std::path::Path, a: &Args) -> Result<()> {
    let (sa, sb, ha, hb) = pair(cl, base, Durability::Local).await?;
    let user = "lag";
    append(&sa, user, &message(a.size, "warm-up"))?;
    ha.track_user(user).await?;
    // When B had each of A's sequence numbers (watching B's version vector), and when A
    // acknowledged it; paired up at the end, so a record on B before A's append call even
    // returned counts as zero lag rather than being lost.
    let acked: Arc<ack_times::Map> = Arc::new(ack_times::Map::default());
    let ub = tokio::task::spawn_blocking({
        let sb = sb.clone();
        move || sb.user(user)
    })
    .await??;
    let mut rx = ub.watch();
    let acked2 = acked.clone();
    let seen = tokio::spawn(async move {
        let mut arrived: Vec<(u64, Instant)> = Vec::new();
        let mut done = 0u64;
        loop {
            // Re-check now and then too: the last tick may come before the writer says "done".
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await
            {
                break;
            }
            let now = Instant::now();
            let have = ub
                .version_vector()
                .ok()
                .and_then(|v| v.get(&1).copied())
                .unwrap_or(0);
            while done < have {
                done += 1;
                arrived.push((done, now));
            }
            if acked2.finished(done) {
                break;
            }
        }
        arrived
    });
    let n = (a.rate as f64 * a.lag_secs) as u64;
    let period = Duration::from_secs_f64(1.0 / a.rate as f64);
    let size = a.size;
    let sa2 = sa.clone();
    let acked3 = acked.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let u = sa2.user(user)?;
        let start = Instant::now();
        for i in 0..n {
            let due = start + period * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let raw = message(size, &format!("lag-{i}"));
            append_to_inbox(&u, &raw)?;
            let t0 = Instant::now();
            // Each append is one record of A's log: its sequence number is A's vector entry.
            let seq = u.version_vector()?.get(&1).copied().unwrap_or(0);
            acked3.put(seq, t0);
        }
        acked3.close(u.version_vector()?.get(&1).copied().unwrap_or(0));
        Ok(())
    })
    .await??;
    let arrived = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .context("B did not catch up within 60 s")??;
    let mut lags: Vec<f64> = arrived
        .into_iter()
        .filter_map(|(seq, t1)| {
            acked
                .take(seq)
                .map(|t0| t1.saturating_duration_since(t0).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(|x, y| x.total_cmp(y));
    println!(
        "replication lag at {} deliveries/s of {} B for {:.0} s ({} deliveries measured): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        a.rate,
        a.size,
        a.lag_secs,
        lags.len(),
        pct(&lags, 0.5),
        pct(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    ha.shutdown().await;
    hb.shutdown().await;
    Ok(())
}

/// One throughput measurement: the rate and the CPU it cost.
struct Throughput {
    rate: f64,
    /// Process CPU (user + system, both nodes) per delivery.
    cpu_ms: f64,
}

/// User + system CPU seconds of this process so far.
#[allow(unsafe_code)]
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The 1-minute load average, as `uptime` shows it (the machine is shared: figures move with it).
fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Deliveries/s with `writers` concurrent writers (over 4 users), in one durability mode.
async fn throughput(
    cl: &Cluster,
    base: &std::path::Path,
    a: &Args,
    durability: Durability,
) -> Result<Throughput> {
    let (sa, sb, ha, hb) = pair(cl, base, durability).await?;
    for w in 0..4 {
        append(&sa, &format!("tp{w}"), &message(a.size, "warm-up"))?;
        ha.track_user(&format!("tp{w}")).await?;
    }
    let count = Arc::new(AtomicU64::new(0));
    let timeouts = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(a.secs);
    let cpu0 = cpu_secs();
    let commits = |s: &Store| s.counters().commits.load(Ordering::Relaxed);
    let (ca0, cb0) = (commits(&sa), commits(&sb));
    let mut tasks = Vec::new();
    for w in 0..a.writers {
        let (sa, ha, count, timeouts) = (sa.clone(), ha.clone(), count.clone(), timeouts.clone());
        let size = a.size;
        tasks.push(tokio::spawn(async move {
            let user = format!("tp{}", w % 4);
            let mut i = 0u64;
            let mut times = Vec::new();
            while Instant::now() < deadline && i < 1_000_000 {
                let raw = message(size, &format!("tp-{w}-{i}"));
                let (s, u) = (sa.clone(), user.clone());
                let t0 = Instant::now();
                tokio::task::spawn_blocking(move || append(&s, &u, &raw)).await??;
                let t1 = Instant::now();
                match ha.wait_replicated(&user, Duration::from_secs(5)).await {
                    ReplicaWait::TimedOut | ReplicaWait::Degraded => {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                times.push((t1 - t0, t1.elapsed()));
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(times)
        }));
    }
    let started = Instant::now();
    let (mut append_ms, mut wait_ms) = (Vec::new(), Vec::new());
    for t in tasks {
        for (ap, wt) in t.await?? {
            append_ms.push(ap.as_secs_f64() * 1000.0);
            wait_ms.push(wt.as_secs_f64() * 1000.0);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    let cpu_ms = (cpu_secs() - cpu0) * 1000.0 / n.max(1) as f64;
    // Group commits (one log fdatasync each) per delivery on A and on B: B applies each
    // shipped batch in one.
    let per = |c: u64| c as f64 / n.max(1) as f64;
    let (ca, cb) = (per(commits(&sa) - ca0), per(commits(&sb) - cb0));
    append_ms.sort_by(|x, y| x.total_cmp(y));
    wait_ms.sort_by(|x, y| x.total_cmp(y));
    let rate = n as f64 / secs;
    println!(
        "{:?} durability: {} writers, {} deliveries of {} B in {:.2} s = {:.0}/s (ack timeouts: {}); \
         per delivery: append p50 {:.2} ms p99 {:.2} ms, wait for a peer p50 {:.2} ms p99 {:.2} ms, \
         CPU {:.2} ms, commits on A {:.2} and on B {:.2}; load {}",
        durability,
        a.writers,
        n,
        a.size,
        secs,
        rate,
        timeouts.load(Ordering::Relaxed),
        pct(&append_ms, 0.5),
        pct(&append_ms, 0.99),
        pct(&wait_ms, 0.5),
        pct(&wait_ms, 0.99),
        cpu_ms,
        ca,
        cb,
        load_avg()
    );
    ha.shutdown().await;
    hb.shutdown().await;
    Ok(Throughput { rate, cpu_ms })
}

/// The median of sorted values: the mean of the two middle ones for an even count (a
/// percentile rank would report the upper one and flatter the ratio).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match (sorted.get(n / 2), n % 2) {
        (Some(m), 1) => *m,
        (Some(hi), _) => sorted.get(n / 2 - 1).map_or(*hi, |lo| (lo + hi) / 2.0),
        (None, _) => f64::NAN,
    }
}

/// `rounds` pairs of (local, replicated) measurements, alternating, so that both modes see the
/// same machine load as nearly as possible; prints each pair's ratio and the median.
async fn ratio(cl: &Cluster, base: &std::path::Path, a: &Args) -> Result<()> {
    let mut ratios = Vec::new();
    for r in 0..a.rounds.max(1) {
        let local = throughput(cl, &base.join(format!("local-{r}")), a, Durability::Local).await?;
        let repl = throughput(
            cl,
            &base.join(format!("repl-{r}")),
            a,
            Durability::Replicated,
        )
        .await?;
        let x = 100.0 * repl.rate / local.rate;
        println!(
            "round {}: replicated / local deliveries/s: {x:.0}% ({:.0}/s vs {:.0}/s; CPU per delivery {:.2} vs {:.2} ms)",
            r + 1,
            repl.rate,
            local.rate,
            repl.cpu_ms,
            local.cpu_ms
        );
        ratios.push(x);
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    println!(
        "replicated / local deliveries/s over {} rounds: median {:.1}%, min {:.0}%, max {:.0}%",
        ratios.len(),
        median(&ratios),
        ratios.first().copied().unwrap_or(f64::NAN),
        ratios.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Messages `big-0..n` fill the user; `more-0..100` are the incremental ones. Dovecot gets the
/// same bytes.
fn full_messages(a: &Args) -> impl Iterator<Item = Vec<u8>> {
    let size = a.size;
    (0..a.sync_messages).map(move |i| message(size, &format!("big-{i}")))
}
fn more_messages(a: &Args) -> impl Iterator<Item = Vec<u8>> {
    let size = a.size;
    (0..MORE).map(move |i| message(size, &format!("more-{i}")))
}
const MORE: usize = 100;

/// `sync_user` of a user with `sync_messages` messages to an empty peer, then of 100 more.
async fn full_sync(cl: &Cluster, base: &std::path::Path, a: &Args) -> Result<SyncSecs> {
    let (da, db) = (base.join("a"), base.join("b"));
    let (sa, sb) = (open_store(&da, 1)?, open_store(&db, 2)?);
    let user = "big";
    let n = a.sync_messages;
    let size = a.size;
    let sa2 = sa.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || -> Result<()> {
        // Filled by concurrent writers so group commit makes it quick.
        std::thread::scope(|s| -> Result<()> {
            let hs: Vec<_> = (0..8)
                .map(|w| {
                    let sa2 = &sa2;
                    s.spawn(move || -> Result<()> {
                        for i in (w..n).step_by(8) {
                            append(sa2, user, &message(size, &format!("big-{i}")))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in hs {
                h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
            }
            Ok(())
        })
    })
    .await??;
    println!(
        "filled {n} messages of {size} B on A in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let baddr = lb.local_addr()?.to_string();
    // B listens; A is "offline" (not listening): B's own shipper just retries.
    let hb = start(
        cl,
        2,
        sb.clone(),
        lb,
        (1, "127.0.0.1:1".into()),
        Durability::Local,
    )
    .await?;
    let peer = PeerConfig { id: 2, addr: baddr };
    let r =
        replication::sync::sync_user_with_store(&cl.tls[&1], sa.clone(), &peer, user, false, true)
            .await?;
    println!("full sync to an empty peer: {r}");
    let full = r.seconds;
    let sa2 = sa.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for i in 0..MORE {
            append(&sa2, user, &message(size, &format!("more-{i}")))?;
        }
        Ok(())
    })
    .await??;
    let r =
        replication::sync::sync_user_with_store(&cl.tls[&1], sa.clone(), &peer, user, false, true)
            .await?;
    println!("incremental sync after {MORE} new messages: {r}");
    let incremental = r.seconds;
    let r =
        replication::sync::sync_user_with_store(&cl.tls[&1], sa.clone(), &peer, user, false, true)
            .await?;
    println!("sync with nothing to do: {r}");
    let noop = r.seconds;
    hb.shutdown().await;
    // Pull direction: `node sync` run on a new, empty node fetches the user from A.
    let sc = open_store(&base.join("c"), 2)?;
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let a_addr = la.local_addr()?.to_string();
    let ha = start(
        cl,
        1,
        sa.clone(),
        la,
        (2, "127.0.0.1:1".into()),
        Durability::Local,
    )
    .await?;
    let peer_a = PeerConfig {
        id: 1,
        addr: a_addr,
    };
    // Only the pulling node writes meanwhile (A's shipper has no reachable peer), so the
    // process's fsync count is the puller's.
    let f0 = sa.fsyncs();
    let r = replication::sync::sync_user_with_store(&cl.tls[&2], sc, &peer_a, user, false, false)
        .await?;
    println!(
        "full sync pulled by an empty node: {r} ({} fsyncs)",
        sa.fsyncs() - f0
    );
    ha.shutdown().await;
    Ok(SyncSecs {
        full,
        incremental,
        noop,
    })
}

/// `doveadm sync` of the same messages between two Dovecot instances, printed beside ours.
fn compare_dovecot(base: &std::path::Path, a: &Args, ours: &SyncSecs) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let before = tests::dovecot::raw_fdatasync_rate(base, 500)?;
    let d = tests::dovecot::sync_bench(base, "big", full_messages(a), more_messages(a))?;
    let after = tests::dovecot::raw_fdatasync_rate(base, 500)?;
    println!(
        "disk: write 4 KiB + fdatasync {before:.0}/s before the Dovecot runs, {after:.0}/s after"
    );
    println!(
        "dovecot: imported {} messages of {} B on A in {:.2} s",
        a.sync_messages, a.size, d.fill_secs
    );
    println!(
        "dovecot: doveadm sync full {:.3} s, incremental after {MORE} {:.3} s, nothing to do {:.3} s",
        d.full_secs, d.incremental_secs, d.noop_secs
    );
    println!(
        "dovecot: doveadm sync full to an instance with mail_fsync = never (not durable): {:.3} s",
        d.full_nofsync_secs
    );
    println!(
        "sync of {} x {} B | ours | doveadm sync | ours faster by",
        a.sync_messages, a.size
    );
    for (what, o, dv) in [
        ("full, to an empty peer", ours.full, d.full_secs),
        (
            "incremental, after new mail",
            ours.incremental,
            d.incremental_secs,
        ),
        ("nothing to do", ours.noop, d.noop_secs),
    ] {
        println!("{what} | {o:.3} s | {dv:.3} s | {:.1}x", dv / o);
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = <Args as clap::Parser>::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cl = Cluster::new()?;
        std::fs::create_dir_all(&a.dir)?;
        let base = tempfile::tempdir_in(&a.dir)?;
        println!("data: {}", base.path().display());
        if !a.throughput_only {
            lag(&cl, &base.path().join("lag"), &a).await?;
        }
        ratio(&cl, &base.path().join("tp"), &a).await?;
        if a.throughput_only {
            return Ok(());
        }
        let ours = full_sync(&cl, &base.path().join("sync"), &a).await?;
        if a.compare_dovecot {
            let dir = base.path().join("dovecot");
            tokio::task::block_in_place(|| compare_dovecot(&dir, &a, &ours))?;
        }
        Ok(())
    })
}

/// A tiny map from sequence number to acknowledgement instant, shared between the delivering
/// thread and the watcher on B.
mod ack_times {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Map {
        inner: Mutex<(HashMap<u64, Instant>, Option<u64>)>,
    }

    impl Map {
        pub fn put(&self, seq: u64, t: Instant) {
            if let Ok(mut g) = self.inner.lock() {
                g.0.insert(seq, t);
            }
        }
        pub fn take(&self, seq: u64) -> Option<Instant> {
            self.inner.lock().ok()?.0.remove(&seq)
        }
        pub fn close(&self, last: u64) {
            if let Ok(mut g) = self.inner.lock() {
                g.1 = Some(last);
            }
        }
        pub fn finished(&self, done: u64) -> bool {
            self.inner
                .lock()
                .map(|g| g.1.is_some_and(|l| done >= l))
                .unwrap_or(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[61.0, 76.0, 77.0, 78.0]), 76.5);
        assert_eq!(median(&[57.0, 66.0, 78.0]), 66.0);
        assert!(median(&[]).is_nan());
    }
}

/// One message into a user's INBOX, as a delivery would.
fn append_to_inbox(u: &storage::UserStore, raw: &[u8]) -> storage::Result<()> {
    u.append(
        "INBOX",
        storage::NewMessage {
            raw,
            flags: storage::Flags::new(),
            internal_date: None,
            delivery_key: None,
        },
    )
    .map(|_| ())
}
