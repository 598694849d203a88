//! What a benchmark run records: per command, the latency of every completed operation and
//! its errors; the run's bounds (a time and an operation count); the report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Errors whose text is kept for the report.
const KEEP_ERRORS: usize = 8;

#[derive(Default)]
struct Op {
    /// Latencies in microseconds.
    lat_us: Vec<u32>,
    errors: u64,
}

/// Shared by every client task of one run.
pub struct Recorder {
    stop: AtomicBool,
    /// Operations allowed in all (0: no bound).
    count: u64,
    claimed: AtomicU64,
    pub done: AtomicU64,
    pub errors: AtomicU64,
    ops: Mutex<BTreeMap<&'static str, Op>>,
    first_errors: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn new(count: u64) -> Recorder {
        Recorder {
            stop: AtomicBool::new(false),
            count,
            claimed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ops: Mutex::new(BTreeMap::new()),
            first_errors: Mutex::new(Vec::new()),
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// May one more operation start? False once stopped or the count is used up.
    pub fn claim(&self) -> bool {
        if self.stopped() {
            return false;
        }
        if self.count > 0 && self.claimed.fetch_add(1, Ordering::AcqRel) >= self.count {
            self.stop();
            return false;
        }
        true
    }

    pub fn ok(&self, op: &'static str, took: Duration) {
        self.record(op, took, None);
    }

    pub fn err(&self, op: &'static str, took: Duration, why: String) {
        self.record(op, took, Some(why));
    }

    fn record(&self, op: &'static str, took: Duration, err: Option<String>) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let o = ops.entry(op).or_default();
            o.lat_us.push(us);
            o.errors += u64::from(err.is_some());
        }
        if let Some(why) = err {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
            if first.len() < KEEP_ERRORS {
                first.push(format!("{op}: {why}"));
            }
        }
    }

    /// The report of everything recorded, over `elapsed`.
    pub fn report(&self, elapsed: Duration, cpu: Cpu) -> Report {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let rows = ops
            .iter()
            .map(|(name, o)| {
                let mut v = o.lat_us.clone();
                v.sort_unstable();
                Row {
                    op: name,
                    count: v.len() as u64,
                    errors: o.errors,
                    p50_ms: pct(&v, 50.0),
                    p99_ms: pct(&v, 99.0),
                    max_ms: pct(&v, 100.0),
                }
            })
            .collect();
        Report {
            rows,
            elapsed,
            cpu,
            first_errors: self
                .first_errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// One command's figures.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: &'static str,
    pub count: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// CPU time (user, system) of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user: f64,
    pub sys: f64,
}

impl Cpu {
    /// getrusage(RUSAGE_SELF): every thread of this process so far.
    #[allow(unsafe_code)]
    pub fn now() -> Cpu {
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes only the struct it is given.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
            return Cpu::default();
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Cpu {
            user: secs(r.ru_utime),
            sys: secs(r.ru_stime),
        }
    }

    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
        }
    }
}

pub struct Report {
    pub rows: Vec<Row>,
    pub elapsed: Duration,
    /// The load generator's own CPU time during the run.
    pub cpu: Cpu,
    pub first_errors: Vec<String>,
}

impl Report {
    pub fn row(&self, op: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.op == op)
    }

    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.count).sum()
    }

    pub fn errors(&self) -> u64 {
        self.rows.iter().map(|r| r.errors).sum()
    }

    /// Completed operations of `op` (all when None) per second.
    pub fn rate(&self, op: Option<&str>) -> f64 {
        let n = match op {
            Some(op) => self.row(op).map_or(0, |r| r.count - r.errors),
            None => self.total() - self.errors(),
        };
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The table `jepsen bench` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{:<16} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}\n",
            "command", "count", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"
        );
        for r in &self.rows {
            s.push_str(&format!(
                "{:<16} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>7}\n",
                r.op,
                r.count,
                self.rate(Some(r.op)),
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            ));
        }
        s.push_str(&format!(
            "{:<16} {:>9} {:>10.1} {:>39}\n",
            "all",
            self.total(),
            self.rate(None),
            self.errors()
        ));
        let total = self.total().max(1) as f64;
        s.push_str(&format!(
            "elapsed {:.2} s; load generator CPU: user {:.2} s, system {:.2} s ({:.3} s per 1,000 \
             operations)\n",
            self.elapsed.as_secs_f64(),
            self.cpu.user,
            self.cpu.sys,
            (self.cpu.user + self.cpu.sys) * 1000.0 / total
        ));
        for e in &self.first_errors {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rates_and_percentiles() {
        let r = Recorder::new(3);
        assert!(r.claim() && r.claim() && r.claim());
        assert!(!r.claim(), "the fourth operation is over the count");
        assert!(r.stopped());
        for ms in 1..=100 {
            r.ok("fetch", Duration::from_millis(ms));
        }
        r.err("store", Duration::from_millis(5), "NO [SERVERBUG]".into());
        let rep = r.report(Duration::from_secs(2), Cpu::default());
        let f = rep.row("fetch").unwrap();
        assert_eq!((f.count, f.errors), (100, 0));
        assert_eq!((f.p50_ms, f.p99_ms, f.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(rep.rate(Some("fetch")), 50.0);
        assert_eq!(rep.rate(Some("store")), 0.0);
        assert_eq!(rep.errors(), 1);
        assert!(rep.render().contains("error: store: NO [SERVERBUG]"));
    }

    #[test]
    fn own_cpu_time_grows() {
        let a = Cpu::now();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let d = Cpu::now().since(a);
        assert!(d.user + d.sys > 0.0);
    }
}
