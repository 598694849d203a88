//! Per-IP failed-login limiting: more than `limit` failures from one address within `window`
//! and further attempts are refused without checking the password (fail2ban sees the log line).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses tracked at most; beyond, the quietest are forgotten first (bounded memory under a
/// spray from many addresses).
const MAX_TRACKED: usize = 65_536;

pub struct FailureLimiter {
    limit: u32,
    window: Duration,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl FailureLimiter {
    /// `limit` 0 turns limiting off.
    pub fn new(limit: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            limit,
            window,
            failures: HashMap::new(),
        }
    }

    fn prune(&mut self, ip: IpAddr, now: Instant) -> usize {
        let window = self.window;
        match self.failures.get_mut(&ip) {
            Some(q) => {
                while q.front().is_some_and(|t| now.duration_since(*t) > window) {
                    q.pop_front();
                }
                let n = q.len();
                if n == 0 {
                    self.failures.remove(&ip);
                }
                n
            }
            None => 0,
        }
    }

    /// Failures from `ip` within the window, if that reaches the limit.
    pub fn limited(&mut self, ip: IpAddr, now: Instant) -> Option<usize> {
        if self.limit == 0 {
            return None;
        }
        let n = self.prune(ip, now);
        (n >= self.limit as usize).then_some(n)
    }

    /// Counts a failure; true when this one reached the limit (the address is locked out
    /// from now on: the caller logs it once).
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let before = self.prune(ip, now);
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&ip) {
            let window = self.window;
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= window));
            if self.failures.len() >= MAX_TRACKED {
                return false;
            }
        }
        let q = self.failures.entry(ip).or_default();
        q.push_back(now);
        // Only the last `limit` failures matter.
        while q.len() > self.limit as usize {
            q.pop_front();
        }
        before < self.limit as usize && q.len() >= self.limit as usize
    }

    /// Addresses with failures within the window: (address, failures, locked out).
    pub fn list(&mut self, now: Instant) -> Vec<(IpAddr, usize, bool)> {
        let ips: Vec<IpAddr> = self.failures.keys().copied().collect();
        let mut out: Vec<_> = ips
            .into_iter()
            .filter_map(|ip| {
                let n = self.prune(ip, now);
                (n > 0).then_some((ip, n, self.limit > 0 && n >= self.limit as usize))
            })
            .collect();
        out.sort();
        out
    }

    /// Forgets an address's failures (`node penalty clear IP`); whether it had any.
    pub fn clear(&mut self, ip: IpAddr) -> bool {
        self.failures.remove(&ip).is_some()
    }

    /// Forgets every address's failures; how many addresses there were.
    pub fn clear_all(&mut self) -> usize {
        let n = self.failures.len();
        self.failures.clear();
        n
    }

    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_after_n_failures_within_window() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut l = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.limited(ip, t0), None, "after {i}");
            l.record_failure(ip, t0);
        }
        assert_eq!(l.limited(ip, t0), Some(3));
        assert_eq!(l.limited(other, t0), None);
        assert_eq!(l.list(t0), vec![(ip, 3, true)]);
        // Cleared: allowed at once, and the next lock-out is reported again.
        assert!(l.clear(ip));
        assert!(!l.clear(ip));
        assert_eq!(l.limited(ip, t0), None);
        assert!(!l.record_failure(ip, t0));
        assert!(!l.record_failure(ip, t0));
        assert!(l.record_failure(ip, t0), "the third failure locks out");
        assert!(!l.record_failure(ip, t0), "reported once");
        assert_eq!(l.clear_all(), 1);
        // The window passes: allowed again.
        assert_eq!(l.limited(ip, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn zero_limit_is_off() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut l = FailureLimiter::new(0, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..100 {
            l.record_failure(ip, t0);
        }
        assert_eq!(l.limited(ip, t0), None);
    }
}
