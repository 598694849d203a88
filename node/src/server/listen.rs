//! Accept loops: one task per listener, one task per connection. Implicit-TLS listeners do the
//! handshake in the connection's own task, so a slow handshake never holds up accepting.

use crate::sessions::LiveSessions;
use crate::tls::Tls;
use protocols::{BoxStream, ConnInfo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A protocol's session entry point with its shared context.
#[derive(Clone)]
pub enum Protocol {
    Imap(Arc<protocols::imap::ImapContext>),
    Pop3(Arc<protocols::pop3::Pop3Context>),
    Lmtp(Arc<protocols::lmtp::LmtpContext>),
    ManageSieve(Arc<protocols::managesieve::ManageSieveContext>),
}

impl Protocol {
    /// The shutdown token sessions of this listener watch.
    fn shutdown(&self) -> &CancellationToken {
        match self {
            Protocol::Imap(ctx) => &ctx.shutdown,
            Protocol::Pop3(ctx) => &ctx.shutdown,
            Protocol::Lmtp(ctx) => &ctx.shutdown,
            Protocol::ManageSieve(ctx) => &ctx.shutdown,
        }
    }

    /// Runs one session whose context watches `token` instead of the listener's shutdown
    /// token (a child of it): cancelling it ends just this session the way a shutdown does
    /// (IMAP `* BYE Server shutting down.`, as Dovecot's kick shows too).
    async fn serve_session(&self, stream: BoxStream, conn: ConnInfo, token: CancellationToken) {
        match self {
            Protocol::Imap(ctx) => {
                let ctx = Arc::new(protocols::imap::ImapContext {
                    backend: ctx.backend.clone(),
                    tls: ctx.tls.clone(),
                    config: ctx.config.clone(),
                    shutdown: token,
                });
                protocols::imap::serve(stream, conn, ctx).await
            }
            Protocol::Pop3(ctx) => {
                let ctx = Arc::new(protocols::pop3::Pop3Context {
                    backend: ctx.backend.clone(),
                    tls: ctx.tls.clone(),
                    config: ctx.config.clone(),
                    shutdown: token,
                });
                protocols::pop3::serve(stream, conn, ctx).await
            }
            // LMTP sessions never log in: nothing to kick.
            Protocol::Lmtp(ctx) => protocols::lmtp::serve(stream, conn, ctx.clone()).await,
            // ManageSieve sessions log in too: kicked like IMAP's.
            Protocol::ManageSieve(ctx) => {
                let ctx = Arc::new(protocols::managesieve::ManageSieveContext {
                    backend: ctx.backend.clone(),
                    tls: ctx.tls.clone(),
                    config: ctx.config.clone(),
                    shutdown: token,
                });
                protocols::managesieve::serve(stream, conn, ctx).await
            }
        }
    }

    /// Serves the connection until it ends. `node kick` cancels its token: the session says
    /// goodbye between commands; one that has not ended within [`KICK_GRACE`] is dropped (its
    /// socket closes).
    async fn serve(
        &self,
        stream: BoxStream,
        conn: ConnInfo,
        name: &'static str,
        sessions: &Arc<LiveSessions>,
    ) {
        let global = self.shutdown().clone();
        let token = global.child_token();
        let _live = sessions.open(&conn.session_id, name, conn.remote, token.clone());
        let (rip, id) = (conn.remote.ip(), conn.session_id.clone());
        let session = self.serve_session(stream, conn, token.clone());
        tokio::pin!(session);
        // The session may notice the cancellation and end before this select does: whether it
        // was kicked is read from the tokens, not from which branch won.
        let ended = tokio::select! {
            _ = &mut session => true,
            _ = token.cancelled() => false,
        };
        if global.is_cancelled() {
            // The node is shutting down: the session finishes as it always did.
            if !ended {
                session.await;
            }
            return;
        }
        if !token.is_cancelled() {
            return;
        }
        let proto = name.trim_end_matches('s');
        tracing::info!("{proto}: Disconnected: Kicked by admin (rip={rip}, session=<{id}>)");
        if !ended
            && tokio::time::timeout(KICK_GRACE, &mut session)
                .await
                .is_err()
        {
            tracing::info!("{proto}: kicked session did not end within {KICK_GRACE:?}; closed (rip={rip}, session=<{id}>)");
        }
    }
}

/// How long a kicked session gets to finish its command and say goodbye.
const KICK_GRACE: Duration = Duration::from_secs(5);

/// Open connections per listener name, for /health and the connections gauge.
#[derive(Default)]
pub struct ConnStats {
    pub by_listener: parking_lot::Mutex<std::collections::BTreeMap<&'static str, Arc<AtomicU64>>>,
}

impl ConnStats {
    fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        self.by_listener.lock().entry(name).or_default().clone()
    }
    pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.by_listener
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect()
    }
}

pub struct TcpSpec {
    /// "imap", "imaps", "pop3", "pop3s", "lmtp" (log and metrics label).
    pub name: &'static str,
    pub addr: SocketAddr,
    pub implicit_tls: Option<Arc<Tls>>,
    pub protocol: Protocol,
}

/// Binds with SO_REUSEADDR so a restarted node does not wait out TIME_WAIT.
#[allow(unsafe_code)]
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        let s = TcpSocket::new_v6()?;
        // IPv6 only, so `listen = "*, ::"` (Dovecot's default) binds both without a conflict.
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        s
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts with `accept` until `shutdown`, handing each connection to `on_conn`. An accept
/// error (EMFILE and friends) is logged as `{what}: accept failed: ...` and backed off for
/// 100 ms instead of spun on.
pub(crate) async fn accept_loop<C, F>(
    shutdown: &CancellationToken,
    what: &str,
    mut accept: impl FnMut() -> F,
    mut on_conn: impl FnMut(C),
) where
    F: std::future::Future<Output = std::io::Result<C>>,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = accept() => r,
        };
        match accepted {
            Ok(conn) => on_conn(conn),
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn session_id() -> String {
    use base64::Engine as _;
    let mut raw = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

pub fn spawn_tcp(
    listener: TcpListener,
    spec: TcpSpec,
    stats: Arc<ConnStats>,
    sessions: Arc<LiveSessions>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let t2 = tracker.clone();
    tracker.spawn(async move {
        let open = stats.counter(spec.name);
        let l = &listener;
        accept_loop(&shutdown, spec.name, || l.accept(), |(socket, remote)| {
            let _ = socket.set_nodelay(true);
            let local = socket.local_addr().unwrap_or(spec.addr);
            let (protocol, tls, name, open, sessions) = (spec.protocol.clone(), spec.implicit_tls.clone(), spec.name, open.clone(), sessions.clone());
            let id = session_id();
            // The protocol's own span carries session, rip and user; this one says which
            // listener (imap or imaps) the connection came in on.
            let span = tracing::info_span!("listener", name);
            t2.spawn(
                async move {
                    let mut stream: BoxStream = Box::new(socket);
                    let mut tls_client_user = None;
                    if let Some(tls) = &tls {
                        stream = match tls.accept_identified(stream).await {
                            Ok((s, user)) => {
                                tls_client_user = user;
                                s
                            }
                            Err(e) => {
                                tracing::info!(
                                    "{}-login: Disconnected: TLS handshaking failed: {e} (rip={}, lip={}, session=<{id}>)",
                                    name.trim_end_matches('s'),
                                    remote.ip(),
                                    local.ip()
                                );
                                return;
                            }
                        };
                    }
                    open.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("node_connections_total", "listener" => name).increment(1);
                    metrics::gauge!("node_connections", "listener" => name).increment(1.0);
                    let conn = ConnInfo { remote, local, tls: tls.is_some(), session_id: id, tls_client_user };
                    protocol.serve(stream, conn, name, &sessions).await;
                    metrics::gauge!("node_connections", "listener" => name).decrement(1.0);
                    open.fetch_sub(1, Ordering::Relaxed);
                }
                .instrument(span),
            );
        })
        .await;
    });
}

pub struct UnixSpec {
    pub name: &'static str,
    pub path: PathBuf,
    pub protocol: Protocol,
}

pub fn spawn_unix(
    listener: UnixListener,
    spec: UnixSpec,
    stats: Arc<ConnStats>,
    sessions: Arc<LiveSessions>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let t2 = tracker.clone();
    tracker.spawn(async move {
        let open = stats.counter(spec.name);
        // A unix socket has no peer address: sessions see a loopback one.
        let synthetic: SocketAddr = ([127, 0, 0, 1], 0).into();
        let what = format!("{} {}", spec.name, spec.path.display());
        let l = &listener;
        accept_loop(
            &shutdown,
            &what,
            || l.accept(),
            |(socket, _)| {
                let (protocol, name, open, sessions) = (
                    spec.protocol.clone(),
                    spec.name,
                    open.clone(),
                    sessions.clone(),
                );
                let id = session_id();
                let span = tracing::info_span!("listener", name, path = %spec.path.display());
                t2.spawn(
                    async move {
                        open.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("node_connections_total", "listener" => name)
                            .increment(1);
                        metrics::gauge!("node_connections", "listener" => name).increment(1.0);
                        let conn = ConnInfo {
                            remote: synthetic,
                            local: synthetic,
                            tls: false,
                            session_id: id,
                            tls_client_user: None,
                        };
                        protocol
                            .serve(Box::new(socket), conn, name, &sessions)
                            .await;
                        metrics::gauge!("node_connections", "listener" => name).decrement(1.0);
                        open.fetch_sub(1, Ordering::Relaxed);
                    }
                    .instrument(span),
                );
            },
        )
        .await;
        let _ = std::fs::remove_file(&spec.path);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ipv4_and_ipv6_wildcards_bind_side_by_side() {
        let v4 = bind_tcp("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = v4.local_addr().unwrap().port();
        // Without IPV6_V6ONLY this would fail with "address in use" on a dual-stack host.
        match bind_tcp(SocketAddr::from(([0u16; 8], port))) {
            Ok(v6) => assert_eq!(v6.local_addr().unwrap().port(), port),
            // A host without IPv6 cannot run this check.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
