//! The running server's admin socket (`<data_dir>/admin.sock`, mode 0600): the CLI's admin
//! commands come here while the server holds the store. One JSON request per line.

use crate::active::VrrpReport;
use crate::admin::{execute, execute_replication, Request, Response, MAX_REQUEST};
use crate::auth::Authenticator;
use crate::backend::NodeBackend;
use crate::sessions::LiveSessions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Binds the socket; refuses when another server answers on it, removes a stale one.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::Context as _;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{}: another node is already running with this data_dir (stop it first, or use another [storage] data_dir)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("{}: cannot remove the stale admin socket", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("{}: cannot create the admin socket", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}: cannot set the admin socket's mode", path.display()))?;
    Ok(listener)
}

/// What the admin socket's requests act on.
pub struct AdminTargets {
    pub store: Arc<storage::Store>,
    pub auth: Arc<Authenticator>,
    pub replication: Option<replication::Handle>,
    /// Raft mode: the coordinator (`node cluster status|transfer-active|add|remove`).
    pub coordinator: Option<replication::coord::Coordinator>,
    /// Where `node notify` (keepalived) transitions are kept.
    pub vrrp: Arc<VrrpReport>,
    /// The sessions' backend: mail commands write through it like IMAP does.
    pub backend: Arc<NodeBackend>,
    /// Logged-in sessions (`node who`, `node kick`).
    pub live: Arc<LiveSessions>,
    /// `node stats`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Blocking work (disk, fsync, file reads) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("internal error: {e}")))
}

/// `node stats`: the Prometheus text as (series, value), comments left out.
pub fn parse_metrics(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((name, value)) = line.rsplit_once(' ') {
            let v = value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(
                    serde_json::Value::String(value.to_string()),
                    serde_json::Value::Number,
                );
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// A request as logged: an import batch's messages are left out (megabytes of base64).
fn log_form(line: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 300;
    if line.len() <= SHOWN {
        return line.into();
    }
    let cut = (0..=SHOWN)
        .rev()
        .find(|&i| line.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", &line[..cut], line.len()).into()
}

async fn dispatch(t: &AdminTargets, req: Request) -> Result<serde_json::Value, String> {
    let null = Ok(serde_json::Value::Null);
    match req {
        Request::VrrpNotify { state } => {
            t.vrrp.set(state);
            null
        }
        req @ (Request::ClusterStatus
        | Request::TransferActive { .. }
        | Request::AddMember { .. }
        | Request::RemoveMember { .. }) => match &t.coordinator {
            Some(c) => crate::admin::execute_cluster(c, t.replication.as_ref(), &req).await,
            None => Err("this node does not run in [cluster] mode = \"raft\"".into()),
        },
        Request::Sync { user, peer, full } => {
            let auth = t.auth.clone();
            let name = user.clone();
            // A typo must not create a store that then replicates everywhere.
            let user = blocking(move || crate::admin::known_user(&auth, &name)).await?;
            let req = Request::Sync { user, peer, full };
            match &t.replication {
                Some(h) => execute_replication(h, &req).await,
                None => execute(&t.store, &t.auth, &req),
            }
        }
        req @ Request::ReplicationStatus => match &t.replication {
            Some(h) => execute_replication(h, &req).await,
            None => execute(&t.store, &t.auth, &req),
        },
        Request::LogReopen => crate::logging::reopen_and_log("node log reopen").map(|()| {
            serde_json::Value::Null
        }),
        Request::AuthCacheFlush => {
            let n = t.auth.flush_cache();
            tracing::info!(target: "auth", "auth: cache flushed by admin ({n} entries)");
            Ok(serde_json::json!({ "flushed": n }))
        }
        Request::Penalty => Ok(serde_json::Value::Array(
            t.auth
                .penalties()
                .into_iter()
                .map(|(ip, failures, locked)| {
                    serde_json::json!({ "ip": ip.to_string(), "failures": failures, "locked": locked })
                })
                .collect(),
        )),
        Request::PenaltyClear { ip } => {
            let n = t.auth.clear_penalty(ip);
            match ip {
                Some(ip) => tracing::info!(target: "auth", "auth: rip={ip}: failed logins cleared by admin"),
                None => tracing::info!(target: "auth", "auth: failed logins of {n} addresses cleared by admin"),
            }
            Ok(serde_json::json!({ "cleared": n }))
        }
        Request::Who { mask } => {
            serde_json::to_value(t.live.who(mask.as_deref())).map_err(|e| e.to_string())
        }
        Request::Kick { mask } => {
            let kicked = t.live.kick(&mask);
            for k in &kicked {
                tracing::info!(target: "admin", "admin: kicked {} ({}, rip={}, session=<{}>)", k.user, k.service, k.rip, k.session);
            }
            serde_json::to_value(kicked).map_err(|e| e.to_string())
        }
        Request::Stats => Ok(serde_json::Value::Object(parse_metrics(&t.metrics.render()))),
        Request::Clock => {
            let clock = t.store.clock();
            let hlc = clock.now();
            Ok(serde_json::json!({
                "wall_ms": clock.wall_ms(),
                "hlc_ms": hlc.wall_ms,
                "backward_steps": clock.backward_steps(),
                "forward_jumps": clock.forward_jumps(),
            }))
        }
        req if req.is_mail() => {
            let ctx = crate::admin::mail::MailCtx {
                backend: t.backend.clone(),
                auth: t.auth.clone(),
            };
            ctx.execute(&req).await
        }
        req => {
            let (store, auth) = (t.store.clone(), t.auth.clone());
            blocking(move || execute(&store, &auth, &req)).await
        }
    }
}

pub fn spawn(
    listener: UnixListener,
    path: PathBuf,
    targets: AdminTargets,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let targets = Arc::new(targets);
    let t2 = tracker.clone();
    tracker.spawn(async move {
        let what = format!("admin socket {}", path.display());
        let l = &listener;
        super::listen::accept_loop(
            &shutdown,
            &what,
            || l.accept(),
            |(sock, _)| {
                let (targets, shutdown) = (targets.clone(), shutdown.clone());
                t2.spawn(async move {
                    let (rd, mut wr) = sock.into_split();
                    let mut lines = BufReader::new(rd);
                    loop {
                        let mut line = String::new();
                        // Bounded: a request line longer than MAX_REQUEST is refused, not buffered.
                        let mut limited = (&mut lines).take(MAX_REQUEST as u64 + 1);
                        let n = tokio::select! {
                            _ = shutdown.cancelled() => break,
                            r = limited.read_line(&mut line) => r,
                        };
                        let resp = match n {
                            Ok(0) | Err(_) => break,
                            Ok(_) if !line.ends_with('\n') => {
                                let r = Response {
                                    ok: false,
                                    error: Some("request too long".into()),
                                    data: serde_json::Value::Null,
                                };
                                let _ = wr
                                    .write_all(
                                        format!(
                                            "{}\n",
                                            serde_json::to_string(&r).unwrap_or_default()
                                        )
                                        .as_bytes(),
                                    )
                                    .await;
                                break;
                            }
                            Ok(_) => {
                                tracing::info!(target: "admin", "admin: {}", log_form(line.trim()));
                                match serde_json::from_str::<Request>(line.trim()) {
                                    Err(e) => {
                                        Response::from_result(Err(format!("bad request: {e}")))
                                    }
                                    Ok(req) => Response::from_result(dispatch(&targets, req).await),
                                }
                            }
                        };
                        let mut out = serde_json::to_string(&resp).unwrap_or_default();
                        out.push('\n');
                        if wr.write_all(out.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            },
        )
        .await;
        let _ = std::fs::remove_file(&path);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_to_map() {
        let m = parse_metrics(
            "# HELP x\n# TYPE node_logins_total counter\nnode_logins_total{service=\"imap\",result=\"ok\"} 3\nup 1.5\n\n",
        );
        assert_eq!(m["node_logins_total{service=\"imap\",result=\"ok\"}"], 3.0);
        assert_eq!(m["up"], 1.5);
        assert_eq!(m.len(), 2);
    }
}
