//! `jepsen bench-store`: durable appends per second through `storage::UserStore::append`, on the
//! same disk as a raw "append 4 KiB + fsync" loop measured in the same run.

use anyhow::{Context, Result};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Flags, NewMessage, Store, StoreConfig, UserStore};

#[derive(clap::Parser)]
#[command(
    name = "bench_store",
    about = "Durable appends/s of the store (4 KiB and 64 KiB; 1 and 16 writers; 1 and 16 users), with fsyncs per append and the disk's raw append+fsync rate beside"
)]
struct Args {
    /// Directory for the test data (a temporary directory under it is removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Upper bound of appends per measurement (the loop stops at whichever comes first).
    #[arg(long, default_value_t = 200_000)]
    pub max_appends: u64,
}

struct Row {
    name: String,
    appends: u64,
    secs: f64,
    fsyncs: u64,
}

/// Text-like message of `size` bytes, unique per (writer, i) so every append stores an object.
fn message(size: usize, writer: usize, i: u64, rng: &mut u64) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.com\r\nTo: user@example.com\r\nSubject: bench {writer}-{i}\r\n\
         Message-ID: <{writer}.{i}.{}@bench>\r\n\r\n",
        *rng
    )
    .into_bytes();
    const WORDS: [&str; 12] = [
        "mail ", "store ", "durable ", "append ", "the ", "of ", "replica ", "fsync ", "log ",
        "index ", "pack ", "quota ",
    ];
    while m.len() < size {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let w = WORDS[(*rng % WORDS.len() as u64) as usize];
        m.extend_from_slice(w.as_bytes());
        if (*rng).is_multiple_of(13) {
            m.extend_from_slice(format!("{:x}\r\n", *rng).as_bytes());
        }
    }
    m.truncate(size);
    m
}

fn raw_fsync_rate(dir: &std::path::Path, secs: f64, max: u64) -> Result<Row> {
    let path = dir.join("raw-fsync.dat");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let buf = vec![b'x'; 4096];
    let start = Instant::now();
    let mut n = 0;
    while n < max && start.elapsed().as_secs_f64() < secs {
        f.write_all(&buf)?;
        f.sync_all()?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(Row {
        name: "raw".into(),
        appends: n,
        secs,
        fsyncs: n,
    })
}

fn measure(
    root: &std::path::Path,
    size: usize,
    writers: usize,
    users: usize,
    a: &Args,
) -> Result<Row> {
    let store = Store::open(StoreConfig::new(root)).context("open store")?;
    let names: Vec<String> = (0..users).map(|u| format!("bench{u}")).collect();
    let stores: Vec<_> = names
        .iter()
        .map(|n| store.user(n))
        .collect::<Result<_, _>>()
        .context("open users")?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let f0 = store.fsyncs();
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let u = stores[w % users].clone();
            let (stop, count) = (stop.clone(), count.clone());
            let max = a.max_appends;
            std::thread::spawn(move || -> Result<()> {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && count.fetch_add(1, Ordering::Relaxed) < max {
                    let raw = message(size, w, i, &mut rng);
                    append_to_inbox(&u, &raw)?;
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(a.secs));
    stop.store(true, Ordering::Relaxed);
    let mut appends = 0;
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    for u in &stores {
        appends += u.mailbox("INBOX")?.exists as u64;
    }
    let fsyncs = store.fsyncs() - f0;
    Ok(Row {
        name: format!(
            "{:>2} KiB, {:>2} writer{}, {:>2} user{}",
            size / 1024,
            writers,
            if writers == 1 { " " } else { "s" },
            users,
            if users == 1 { " " } else { "s" }
        ),
        appends,
        secs,
        fsyncs,
    })
}

fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "nproc {cores}, {cpu}, kernel {kernel}, loadavg {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn main() -> Result<()> {
    let a = <Args as clap::Parser>::parse();
    let tmp = tempfile::Builder::new()
        .prefix("bench-store-")
        .tempdir_in(&a.dir)
        .with_context(|| format!("temporary directory under {}", a.dir.display()))?;
    println!("machine: {}", machine_line());
    println!("data: {}", tmp.path().display());
    // The disk is shared: the raw rate is measured again right before each case and printed
    // beside it, so each ratio compares like with like.
    let mut rows = Vec::new();
    let mut i = 0;
    for size in [4 << 10, 64 << 10] {
        for (writers, users) in [(1, 1), (16, 1), (16, 16)] {
            let raw = raw_fsync_rate(tmp.path(), a.secs.min(2.0), a.max_appends)?;
            let root = tmp.path().join(format!("run{i}"));
            i += 1;
            rows.push((raw, measure(&root, size, writers, users, &a)?));
        }
    }
    println!(
        "{:<32} {:>8} {:>10} {:>14} {:>16} {:>7}",
        "case", "appends", "appends/s", "fsyncs/append", "raw 4K+fsync/s", "vs raw"
    );
    for (raw, r) in &rows {
        let rate = r.appends as f64 / r.secs;
        let raw_rate = raw.appends as f64 / raw.secs;
        println!(
            "{:<32} {:>8} {:>10.0} {:>14.3} {:>16.0} {:>6.2}x",
            r.name,
            r.appends,
            rate,
            r.fsyncs as f64 / r.appends.max(1) as f64,
            raw_rate,
            rate / raw_rate
        );
    }
    Ok(())
}

/// Appends `raw` to INBOX as a delivery would: no flags, no delivery key, received now. The
/// benchmarks' one write.
fn append_to_inbox(u: &UserStore, raw: &[u8]) -> storage::Result<()> {
    u.append(
        "INBOX",
        NewMessage {
            raw,
            flags: Flags::new(),
            internal_date: None,
            delivery_key: None,
        },
    )
    .map(|_| ())
}
