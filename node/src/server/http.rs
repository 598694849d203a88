//! The health and metrics endpoint: a deliberately tiny HTTP/1.1 server (GET only, one request
//! per connection) for keepalived's track script, load balancers and Prometheus.
//! `/health` 200 + JSON; `/health/active` 200 on the active node, 503 elsewhere; `/metrics`.

use super::listen::ConnStats;
use crate::backend::ClusterHooks;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct HealthState {
    pub node_id: u32,
    pub durability: &'static str,
    pub started: Instant,
    pub hooks: Arc<dyn ClusterHooks>,
    pub stats: Arc<ConnStats>,
    pub metrics: PrometheusHandle,
    pub store: Arc<storage::Store>,
    /// The last VRRP state keepalived reported (`node notify`).
    pub vrrp: Arc<crate::active::VrrpReport>,
}

impl HealthState {
    fn health_json(&self) -> String {
        let failure = self.store.index_failure();
        serde_json::json!({
            "status": if failure.is_some() { "failed" } else { "ok" },
            "index_failure": failure,
            "node_id": self.node_id,
            "active": self.hooks.is_active(),
            "mode": self.hooks.active_mode(),
            "vrrp": self.vrrp.get().map(|(s, _)| s.as_str()),
            "vrrp_since": self.vrrp.get().map(|(_, at)| at),
            "degraded": self.hooks.degraded(),
            "durability": self.durability,
            "uptime_secs": self.started.elapsed().as_secs(),
            "connections": self.stats.snapshot(),
        })
        .to_string()
    }

    fn metrics_text(&self) -> String {
        // Store counters are plain atomics in the store; copy them in at scrape time.
        // Counters: one per step of the wall clock (not per read while it stays behind).
        let clock = self.store.clock();
        metrics::counter!("node_clock_backward_steps_total").absolute(clock.backward_steps());
        metrics::counter!("node_clock_forward_jumps_total").absolute(clock.forward_jumps());
        metrics::gauge!("node_active").set(if self.hooks.is_active() { 1.0 } else { 0.0 });
        metrics::gauge!("node_replication_degraded").set(if self.hooks.degraded() {
            1.0
        } else {
            0.0
        });
        let c = self.store.counters();
        use std::sync::atomic::Ordering::Relaxed;
        metrics::counter!("node_store_appends_total").absolute(c.appends.load(Relaxed));
        metrics::counter!("node_store_commits_total").absolute(c.commits.load(Relaxed));
        metrics::counter!("node_store_records_total").absolute(c.records.load(Relaxed));
        metrics::counter!("node_store_fsyncs_total").absolute(self.store.fsyncs());
        metrics::gauge!("node_uptime_seconds").set(self.started.elapsed().as_secs_f64());
        if let Some(p) = self.hooks.replication().map(|h| h.pacing()) {
            // How much replication catch-up was held back for clients (issue 6).
            metrics::counter!("node_replication_catch_up_batches_total")
                .absolute(p.catch_up_batches);
            metrics::counter!("node_replication_catch_up_batches_delayed_total")
                .absolute(p.catch_up_batches_delayed);
            metrics::counter!("node_replication_catch_up_batches_shrunk_total")
                .absolute(p.catch_up_batches_shrunk);
            metrics::gauge!("node_replication_yield_seconds_total").set(p.yield_seconds);
            metrics::counter!("node_replication_applies_delayed_total").absolute(p.applies_delayed);
            metrics::gauge!("node_replication_apply_yield_seconds_total")
                .set(p.apply_yield_seconds);
        }
        if let Some(c) = self.hooks.replication().map(|h| h.counters()) {
            metrics::counter!("node_replication_degraded_events_total").absolute(c.degraded_events);
            metrics::counter!("node_replication_conflicts_resolved_total")
                .absolute(c.conflicts_resolved);
            metrics::counter!("node_replication_refused_frames_total").absolute(c.refused_frames);
            metrics::counter!("node_replication_fenced_frames_total").absolute(c.fenced_frames);
            metrics::counter!("node_replication_modseq_checks_total").absolute(c.modseq_checks);
            metrics::counter!("node_replication_modseqs_aligned_total").absolute(c.modseqs_aligned);
            // Ghosts as of the replicator's last rescan (5 s): only users that have had any are
            // labelled, so the series stay few.
            metrics::gauge!("node_replication_ghosts")
                .set(c.ghosts.iter().map(|g| g.ghosts).sum::<u64>() as f64);
            for g in c.ghosts {
                metrics::gauge!("node_replication_user_ghosts", "user" => g.user)
                    .set(g.ghosts as f64);
            }
            for p in c.peers {
                let peer = p.id.to_string();
                metrics::gauge!("node_replication_peer_connected", "peer" => peer.clone())
                    .set(if p.connected { 1.0 } else { 0.0 });
                metrics::counter!("node_replication_peer_connects_total", "peer" => peer.clone())
                    .absolute(p.connects);
                metrics::counter!("node_replication_records_sent_total", "peer" => peer.clone())
                    .absolute(p.records_sent);
                metrics::counter!("node_replication_objects_sent_total", "peer" => peer.clone())
                    .absolute(p.objects_sent);
                metrics::counter!("node_replication_bytes_sent_total", "peer" => peer.clone())
                    .absolute(p.bytes_sent);
                metrics::counter!("node_replication_batches_failed_total", "peer" => peer.clone())
                    .absolute(p.batches_failed);
                metrics::gauge!("node_replication_users_behind", "peer" => peer)
                    .set(p.users_behind as f64);
            }
        }
        self.metrics.render()
    }

    /// (status, content type, body) for a request path.
    pub fn route(&self, method: &str, path: &str) -> (u16, &'static str, String) {
        if method != "GET" && method != "HEAD" {
            return (405, "text/plain", "method not allowed\n".into());
        }
        match path {
            // A node whose index failed takes no writes: unhealthy, so keepalived moves the
            // address to a node that does.
            "/health" if self.store.index_failure().is_some() => {
                (503, "application/json", self.health_json())
            }
            "/health" => (200, "application/json", self.health_json()),
            "/health/active" => {
                if self.hooks.is_active() && self.store.index_failure().is_none() {
                    (200, "application/json", self.health_json())
                } else {
                    (503, "application/json", self.health_json())
                }
            }
            "/metrics" => (200, "text/plain; version=0.0.4", self.metrics_text()),
            _ => (404, "text/plain", "not found\n".into()),
        }
    }
}

/// Splits "GET /path HTTP/1.1" out of a request head.
pub fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(head.get(..line_end)?).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn handle(mut sock: tokio::net::TcpStream, state: Arc<HealthState>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        loop {
            let n = sock.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(buf.get(..n)?);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if head.len() > MAX_REQUEST {
                return None;
            }
        }
    })
    .await;
    let (status, ctype, body, is_head) = match (read, parse_request_line(&head)) {
        (Ok(Some(())), Some((method, path))) => {
            let (s, c, b) = state.route(method, path);
            (s, c, b, method == "HEAD")
        }
        _ => (400, "text/plain", "bad request\n".to_string(), false),
    };
    let mut resp = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    if !is_head {
        resp.push_str(&body);
    }
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

pub fn spawn(
    listener: TcpListener,
    state: Arc<HealthState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let t2 = tracker.clone();
    tracker.spawn(async move {
        let l = &listener;
        super::listen::accept_loop(
            &shutdown,
            "http",
            || l.accept(),
            |(sock, _)| {
                t2.spawn(handle(sock, state.clone()));
            },
        )
        .await;
    });
}

/// `node health [--active]`: asks a running node; true = healthy (and active if asked).
pub fn probe(addr: std::net::SocketAddr, active: bool) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(3);
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let path = if active { "/health/active" } else { "/health" };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut resp = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut resp)
        .map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/health"))
        );
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(parse_request_line(b"GET /health\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET / HTTP/2 extra\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"no line end"), None);
    }
}
