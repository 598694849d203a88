//! The running server's admin socket (`<data_dir>/admin.sock`, mode 0600): the CLI's admin
//! commands come here while the server holds the store. One JSON request per line.

use crate::active::VrrpReport;
use crate::admin::{execute, execute_replication, Request, Response, MAX_REQUEST};
use crate::auth::Authenticator;
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
}

pub fn spawn(
    listener: UnixListener,
    path: PathBuf,
    targets: AdminTargets,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let AdminTargets {
        store,
        auth,
        replication,
        coordinator,
        vrrp,
    } = targets;
    let t2 = tracker.clone();
    tracker.spawn(async move {
        let what = format!("admin socket {}", path.display());
        let l = &listener;
        super::listen::accept_loop(
            &shutdown,
            &what,
            || l.accept(),
            |(sock, _)| {
                let (store, auth, shutdown, replication, vrrp, coordinator) = (
                    store.clone(),
                    auth.clone(),
                    shutdown.clone(),
                    replication.clone(),
                    vrrp.clone(),
                    coordinator.clone(),
                );
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
                                tracing::info!(target: "admin", "admin: {}", line.trim());
                                match serde_json::from_str::<Request>(line.trim()) {
                                    Err(e) => {
                                        Response::from_result(Err(format!("bad request: {e}")))
                                    }
                                    Ok(Request::VrrpNotify { state }) => {
                                        vrrp.set(state);
                                        Response::from_result(Ok(serde_json::Value::Null))
                                    }
                                    Ok(
                                        req @ (Request::ClusterStatus
                                        | Request::TransferActive { .. }
                                        | Request::AddMember { .. }
                                        | Request::RemoveMember { .. }),
                                    ) => match &coordinator {
                                        Some(c) => Response::from_result(
                                            crate::admin::execute_cluster(
                                                c,
                                                replication.as_ref(),
                                                &req,
                                            )
                                            .await,
                                        ),
                                        None => Response::from_result(Err(
                                            "this node does not run in [cluster] mode = \"raft\""
                                                .into(),
                                        )),
                                    },
                                    Ok(
                                        req @ (Request::ReplicationStatus | Request::Sync { .. }),
                                    ) => match &replication {
                                        Some(h) => Response::from_result(
                                            execute_replication(h, &req).await,
                                        ),
                                        None => Response::from_result(execute(&store, &auth, &req)),
                                    },
                                    Ok(req) => {
                                        let (store, auth) = (store.clone(), auth.clone());
                                        // Store work blocks (disk, fsync): off the async threads.
                                        tokio::task::spawn_blocking(move || {
                                            execute(&store, &auth, &req)
                                        })
                                        .await
                                        .map(Response::from_result)
                                        .unwrap_or_else(
                                            |e| {
                                                Response::from_result(Err(format!(
                                                    "internal error: {e}"
                                                )))
                                            },
                                        )
                                    }
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
