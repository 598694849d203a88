//! `node serve`: opens the store, binds every listener (all before saying ready, so a port in
//! use stops start-up with a clear error), serves until SIGTERM/SIGINT, reloads TLS on SIGHUP,
//! and shuts down gracefully.

mod admin_socket;
pub mod http;
mod listen;
pub(crate) mod protocol_settings;
mod restart;

use crate::active::{TrackFile, VrrpReport};
use crate::auth::{AuthSettings, Authenticator};
use crate::backend::{BackendSettings, ClusterHooks, NodeBackend, Standalone};
use crate::config::{Config, SslMode, DEMO_PASSWORD, DEMO_USER};
use crate::tls::{ensure_self_signed, Tls, TlsFiles};
use anyhow::Context as _;
use listen::{ConnStats, Protocol, TcpSpec, UnixSpec};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where the configuration came from: the embedded default makes its demo user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    File,
}

pub fn hostname(config: &Config) -> String {
    if !config.hostname.is_empty() {
        return config.hostname.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The embedded default's passwd-file with the demo user, made once.
fn ensure_demo_passdb(config: &Config) -> anyhow::Result<()> {
    let Some(db) = config.passdb.first().filter(|d| d.is_passwd_file()) else {
        return Ok(());
    };
    if db.args.exists() {
        return Ok(());
    }
    let hash = crate::auth::schemes::hash(crate::auth::schemes::Scheme::Sha512Crypt, DEMO_PASSWORD)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Password hashes: readable by the node's user only.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&db.args)
        .and_then(|mut f| f.write_all(format!("{DEMO_USER}:{hash}::::::\n").as_bytes()))
        .with_context(|| format!("cannot write {}", db.args.display()))?;
    Ok(())
}

pub fn backend_settings(config: &Config) -> BackendSettings {
    BackendSettings {
        ssl: config.ssl,
        auth_allow_cleartext: config.auth_allow_cleartext,
        max_userip_connections: config.mail_max_userip_connections,
        proxy: crate::backend::ProxySettings {
            connector: crate::proxy::Connector::new(config.ssl_client_ca_file.as_deref())
                .map(Arc::new)
                .map_err(|e| tracing::error!("proxy: {e}; TLS towards backends is off"))
                .ok(),
            // Checked when the config was loaded.
            trusted_networks: crate::auth::nets::parse_list(
                config.login_trusted_networks.0.iter().map(String::as_str),
            )
            .unwrap_or_default(),
            lmtp_proxy: config.lmtp_proxy,
            hostname: hostname(config),
            lmtp_listeners: config
                .listen_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|ip| SocketAddr::new(ip, config.lmtp.port))
                .collect(),
        },
        // Checked when the config was loaded; a failure here leaves tokens refused.
        oauth2: crate::auth::oauth2::Introspector::from_settings(&config.oauth2).unwrap_or_else(
            |e| {
                tracing::error!("{e}");
                None
            },
        ),
    }
}

pub fn store_config(config: &Config, default_quota: storage::QuotaLimits) -> storage::StoreConfig {
    storage::StoreConfig {
        root: config.storage.data_dir.clone(),
        node_id: config.cluster.node_id,
        max_message_size: config.storage.max_message_size.0,
        max_clock_drift_ms: config.storage.max_clock_drift.0.as_millis() as u64,
        default_quota,
        delivery_dedupe_window_secs: config.storage.delivery_dedupe_window.0.as_secs(),
        // Only shippers read them: a node without peers keeps none.
        recent_objects_bytes: if config.cluster.peers.is_empty() {
            0
        } else {
            storage::store::RECENT_OBJECTS_TOTAL
        },
        min_free_bytes: config.storage.min_free_space.0,
        // `replicated` durability: clients see this node's writes once a peer holds them, so
        // none can read a write the cluster loses with this node (invariants 2 and 3).
        hide_unconfirmed_writes: crate::cluster::enabled(config)
            && !config.cluster.peers.is_empty()
            && config.cluster.durability == crate::config::Durability::Replicated,
    }
}

fn tls_setup(config: &Config) -> anyhow::Result<Option<Arc<Tls>>> {
    if config.ssl == SslMode::No {
        return Ok(None);
    }
    let files = match (&config.ssl_cert, &config.ssl_key) {
        (Some(cert), Some(key)) => TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let names = vec![
                hostname(config),
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ];
            let files = ensure_self_signed(&config.self_signed_dir(), &names)?;
            tracing::warn!(
                "ssl_cert/ssl_key not set: using the self-signed certificate {} (clients will warn; set ssl_cert and ssl_key for production)",
                files.cert.display()
            );
            files
        }
    };
    let client = match (&config.ssl_ca, config.ssl_verify_client_cert) {
        (Some(ca), true) => Some(crate::tls::ClientCerts {
            ca: ca.clone(),
            username_field: config.ssl_cert_username_field.clone(),
        }),
        _ => None,
    };
    Ok(Some(Tls::load(files, config.ssl_min_protocol, client)?))
}

fn bind(name: &str, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    listen::bind_tcp(addr).with_context(|| format!("{name}: cannot listen on {addr}"))
}

fn unix_lmtp_socket(
    sock: &crate::config::UnixSocketConfig,
) -> anyhow::Result<tokio::net::UnixListener> {
    let path = &sock.path;
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("lmtp_unix_socket: cannot remove old {}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("lmtp_unix_socket: cannot create {}", dir.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("lmtp_unix_socket: cannot listen on {}", path.display()))?;
    let mode = u32::from_str_radix(sock.mode.trim_start_matches("0o"), 8).unwrap_or(0o660);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("lmtp_unix_socket: cannot chmod {}", path.display()))?;
    if !sock.owner.is_empty() || !sock.group.is_empty() {
        chown(path, &sock.owner, &sock.group)?;
    }
    Ok(listener)
}

/// chown by names, for Postfix's `lmtp:unix:` (owner postfix, say).
#[allow(unsafe_code)]
fn chown(path: &Path, owner: &str, group: &str) -> anyhow::Result<()> {
    use std::ffi::CString;
    let uid = if owner.is_empty() {
        None
    } else {
        let c = CString::new(owner).context("lmtp_unix_socket.owner")?;
        // SAFETY: getpwnam with a valid C string; the result is read at once, before any
        // other getpw* call on this thread.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        anyhow::ensure!(
            !pw.is_null(),
            "lmtp_unix_socket.owner: no such user {owner:?}"
        );
        // SAFETY: pw is non-null (checked above) and points to getpwnam's static result.
        Some(unsafe { (*pw).pw_uid })
    };
    let gid = if group.is_empty() {
        None
    } else {
        let c = CString::new(group).context("lmtp_unix_socket.group")?;
        // SAFETY: as above, for getgrnam.
        let gr = unsafe { libc::getgrnam(c.as_ptr()) };
        anyhow::ensure!(
            !gr.is_null(),
            "lmtp_unix_socket.group: no such group {group:?}"
        );
        // SAFETY: gr is non-null (checked above) and points to getgrnam's static result.
        Some(unsafe { (*gr).gr_gid })
    };
    std::os::unix::fs::chown(path, uid, gid)
        .with_context(|| format!("lmtp_unix_socket: cannot chown {}", path.display()))
}

pub async fn run(config: Config, origin: Origin) -> anyhow::Result<()> {
    // Installed first: their default action ends the process, and logrotate's SIGUSR1 may come
    // while a big store is still opening. They are acted on once the node serves. SIGTERM
    // keeps its default until then, so a start-up can still be stopped at once.
    let early = EarlySignals::install()?;
    let data = config.storage.data_dir.clone();
    if !data.exists() {
        // Mail is private: a data_dir made here is readable by the node's user only (an
        // existing one keeps the mode the operator gave it).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data)
            .with_context(|| format!("[storage] data_dir {}: cannot create", data.display()))?;
    }
    if origin == Origin::Embedded {
        ensure_demo_passdb(&config)?;
    }
    let tls = tls_setup(&config)?;
    let auth_settings = AuthSettings::from_config(&config).map_err(|e| anyhow::anyhow!(e))?;
    let default_quota = auth_settings.default_quota;
    let auth = Authenticator::new(auth_settings, &config);

    let admin_path = config.admin_socket_path();
    // Bind the admin socket before opening the store: it also tells a second server with the
    // same data_dir to stop, before it touches sled.
    let admin_listener = admin_socket::bind(&admin_path)?;

    let sc = store_config(&config, default_quota);
    let store = tokio::task::spawn_blocking(move || storage::Store::open(sc))
        .await
        .context("store open panicked")?
        .with_context(|| format!("cannot open the store in {}", data.display()))?;

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;

    // Replication binds its peer listener here too: before "ready".
    let vrrp = Arc::new(VrrpReport::default());
    let replicated = crate::cluster::start(&config, store.clone(), vrrp.clone()).await?;
    if let Some(r) = &replicated {
        catch_up_before_serving(&r.handle, config.cluster.startup_catch_up_timeout.0).await;
    }
    let hooks: Arc<dyn ClusterHooks> = match &replicated {
        Some(r) => r.clone(),
        None => Arc::new(Standalone),
    };
    let live = Arc::new(crate::sessions::LiveSessions::default());
    let backend = NodeBackend::new(
        store.clone(),
        auth.clone(),
        hooks.clone(),
        backend_settings(&config),
        live.clone(),
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let stats = Arc::new(ConnStats::default());
    let host = hostname(&config);

    let tls_upgrade: Option<Arc<dyn protocols::TlsUpgrade>> =
        tls.clone().map(|t| t as Arc<dyn protocols::TlsUpgrade>);
    let imap = Protocol::Imap(Arc::new(protocols::imap::ImapContext {
        backend: backend.clone(),
        tls: tls_upgrade.clone(),
        config: protocol_settings::imap(&config),
        shutdown: shutdown.clone(),
    }));
    let pop3 = Protocol::Pop3(Arc::new(protocols::pop3::Pop3Context {
        backend: backend.clone(),
        tls: tls_upgrade.clone(),
        config: protocol_settings::pop3(&config),
        shutdown: shutdown.clone(),
    }));
    let lmtp = Protocol::Lmtp(Arc::new(protocols::lmtp::LmtpContext {
        backend: backend.clone(),
        config: protocol_settings::lmtp(&config, &host),
        shutdown: shutdown.clone(),
    }));

    let managesieve = Protocol::ManageSieve(Arc::new(protocols::managesieve::ManageSieveContext {
        backend: backend.clone(),
        tls: tls_upgrade.clone(),
        config: protocol_settings::managesieve(&config),
        shutdown: shutdown.clone(),
    }));

    // Bind everything first: a port in use stops start-up before anything is served.
    let mut tcp = Vec::new();
    let mut ready = Vec::new();
    for ip in config.listen_addrs().map_err(|e| anyhow::anyhow!(e))? {
        let mut add = |name: &'static str,
                       port: u16,
                       tls: Option<Arc<Tls>>,
                       protocol: &Protocol|
         -> anyhow::Result<()> {
            if port == 0 {
                return Ok(());
            }
            let addr = SocketAddr::new(ip, port);
            let listener = bind(name, addr)?;
            ready.push(format!("{name}={addr}"));
            tcp.push((
                listener,
                TcpSpec {
                    name,
                    addr,
                    implicit_tls: tls,
                    protocol: protocol.clone(),
                },
            ));
            Ok(())
        };
        if config.protocol_enabled("imap") {
            add("imap", config.imap.port, None, &imap)?;
            if let Some(t) = &tls {
                add("imaps", config.imap.ssl_port, Some(t.clone()), &imap)?;
            }
        }
        if config.protocol_enabled("pop3") {
            add("pop3", config.pop3.port, None, &pop3)?;
            if let Some(t) = &tls {
                add("pop3s", config.pop3.ssl_port, Some(t.clone()), &pop3)?;
            }
        }
        if config.protocol_enabled("lmtp") {
            add("lmtp", config.lmtp.port, None, &lmtp)?;
        }
        if config.protocol_enabled("sieve") {
            add("sieve", config.managesieve.port, None, &managesieve)?;
        }
    }
    let http_listener = if config.http.port != 0 {
        let addr = config.http_addr().map_err(|e| anyhow::anyhow!(e))?;
        let l = bind("http", addr)?;
        ready.push(format!("http={addr}"));
        Some(l)
    } else {
        None
    };
    let unix_lmtp = match (&config.lmtp_unix_socket, config.protocol_enabled("lmtp")) {
        (Some(sock), true) => {
            let l = unix_lmtp_socket(sock)?;
            ready.push(format!("lmtp_unix={}", sock.path.display()));
            Some((l, sock.path.clone()))
        }
        _ => None,
    };

    for (listener, spec) in tcp {
        listen::spawn_tcp(
            listener,
            spec,
            stats.clone(),
            live.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
    }
    if let Some((l, path)) = unix_lmtp {
        listen::spawn_unix(
            l,
            UnixSpec {
                name: "lmtp",
                path,
                protocol: lmtp.clone(),
            },
            stats.clone(),
            live.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
    }
    if let Some(l) = http_listener {
        let state = Arc::new(http::HealthState {
            node_id: config.cluster.node_id,
            durability: match config.cluster.durability {
                crate::config::Durability::Local => "local",
                crate::config::Durability::Replicated => "replicated",
            },
            started: Instant::now(),
            hooks: hooks.clone(),
            stats: stats.clone(),
            metrics: prometheus.clone(),
            store: store.clone(),
            vrrp: vrrp.clone(),
        });
        http::spawn(l, state, shutdown.clone(), tracker.clone());
    }
    admin_socket::spawn(
        admin_listener,
        admin_path.clone(),
        admin_socket::AdminTargets {
            store: store.clone(),
            auth: auth.clone(),
            replication: hooks.replication(),
            coordinator: hooks.coordinator(),
            vrrp,
            backend: backend.clone(),
            live: live.clone(),
            metrics: prometheus,
        },
        shutdown.clone(),
        tracker.clone(),
    );
    ready.push(format!("admin={}", admin_path.display()));
    if let Some(r) = &replicated {
        ready.push(format!("replication={}", r.handle.local_addr()));
        if let Some(g) = &r.raft {
            ready.push(match g.coordinator().local_addr() {
                Some(a) => format!("raft={a}"),
                None => format!("raft={}", r.handle.local_addr()),
            });
        }
    }

    if origin == Origin::Embedded {
        // The operator's first look: say how to log in.
        eprintln!("node: embedded default configuration; demo user: {DEMO_USER} password: {DEMO_PASSWORD}");
    }
    let ready_line = format!("node: ready {}", ready.join(" "));
    tracing::info!("{ready_line}");
    // Test harnesses and init scripts wait for this line.
    eprintln!("{ready_line}");
    // Serving now: keepalived may give this node the address.
    let track_file = TrackFile::new(config.cluster.vrrp_track_file.clone()).map(Arc::new);
    match (
        &track_file,
        replicated.as_ref().and_then(|r| r.raft.clone()),
    ) {
        // Raft mode: the file follows the coordinator, written at every change of role.
        (Some(t), Some(gate)) => {
            let t = t.clone();
            gate.watch(move |am_active| t.write(am_active));
        }
        (Some(t), None) => t.write(hooks.is_active()),
        (None, _) => {}
    }
    tokio::spawn(give_up_role_on_index_failure(
        store.clone(),
        track_file.clone(),
        replicated.as_ref().and_then(|r| r.raft.clone()),
        shutdown.clone(),
    ));

    wait_for_signals(early, tls.clone()).await?;

    // First of all, so keepalived moves the address while sessions still get their BYE.
    if let Some(t) = &track_file {
        t.write(false);
    }
    tracing::info!("node: shutting down");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout.0, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "node: sessions still open after {:?}; exiting anyway",
            config.shutdown_timeout.0
        );
    }
    if let Some(gate) = replicated.as_ref().and_then(|r| r.raft.as_ref()) {
        // No longer active at once (the file says 1 already); the others elect a successor.
        gate.coordinator().shutdown().await;
    }
    if let Some(r) = &replicated {
        // Peer links close; what peers lack is sent when they reconnect (version vectors).
        if tokio::time::timeout(config.shutdown_timeout.0, r.handle.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("replication: did not stop within shutdown_timeout");
        }
    }
    // Not needed for durability (the logs are the truth), but a clean index spares the next
    // start-up its catch-up from the last checkpoint.
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.flush_index()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("node: index flush at shutdown failed: {e}"),
        Err(e) => tracing::warn!("node: index flush at shutdown failed: {e}"),
    }
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("node: stopped");
    Ok(())
}

/// SIGHUP and SIGUSR1 (Dovecot's `log reopen` signal: logrotate's postrotate sends it),
/// caught from the start of `run`.
struct EarlySignals {
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl EarlySignals {
    fn install() -> anyhow::Result<EarlySignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(EarlySignals {
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
            usr1: signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?,
        })
    }
}

/// Returns on SIGTERM or SIGINT; reloads TLS on SIGHUP; reopens the log file on SIGUSR1.
async fn wait_for_signals(early: EarlySignals, tls: Option<Arc<Tls>>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let EarlySignals { mut hup, mut usr1 } = early;
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                let _ = crate::logging::reopen_and_log("SIGUSR1");
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                if let Some(tls) = &tls {
                    let tls = tls.clone();
                    // Reading files blocks: off the async threads.
                    match tokio::task::spawn_blocking(move || tls.reload()).await {
                        Ok(Ok(())) => tracing::info!("ssl: SIGHUP: certificate reloaded"),
                        Ok(Err(e)) => tracing::error!("ssl: SIGHUP: reload failed, keeping the old certificate: {e}"),
                        Err(e) => tracing::error!("ssl: SIGHUP: reload failed: {e}"),
                    }
                } else {
                    tracing::info!("SIGHUP: nothing to reload (ssl = no)");
                }
            }
        }
    }
}

/// A node whose index can no longer be written (sled after an I/O error of its own: a disk
/// filled by another process) takes no writes until restarted: it gives up the service
/// address (track file) and, in raft mode, its place in the group, so another node becomes
/// active. Checked once a second; `/health` reports it too.
async fn give_up_role_on_index_failure(
    store: Arc<storage::Store>,
    track_file: Option<Arc<TrackFile>>,
    raft: Option<Arc<crate::raft::RaftGate>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        let Some(why) = store.index_failure() else {
            continue;
        };
        tracing::error!(error = %why, "node: the index failed; giving up the active role \
            (the node restarts itself once the disk has room: the restart replays the log)");
        if let Some(t) = &track_file {
            t.write(false);
        }
        if let Some(gate) = &raft {
            gate.coordinator().shutdown().await;
        }
        restart::once_the_disk_has_room(&store, &shutdown).await;
        return;
    }
}

/// A node that was down (crashed, stopped, cut off) first pulls what its peers took meanwhile,
/// then serves: otherwise its clients would read, until replication catches up, UIDs that the
/// survivors have since given to other messages, or messages expunged there (invariant 2).
/// Bounded per peer; an unreachable peer (the whole cluster starting) is skipped.
async fn catch_up_before_serving(handle: &replication::Handle, budget: std::time::Duration) {
    if budget.is_zero() {
        return;
    }
    let report = handle.catch_up(budget).await;
    tracing::info!(
        records = report.records(),
        "replication: caught up with the peers before serving: {report}"
    );
    // And the other way: what this node wrote but no peer holds (a tail it committed just
    // before it went down) goes out first, so the active node will not give its UIDs away.
    let shipped = handle.wait_own_records_shipped(budget).await;
    if shipped.unshipped.is_empty() {
        tracing::info!(
            users = shipped.users,
            seconds = shipped.seconds,
            "replication: every record this node wrote is on a peer"
        );
    } else {
        tracing::warn!(
            users = shipped.users,
            seconds = shipped.seconds,
            unshipped = ?shipped.unshipped,
            "replication: serving although no peer acknowledged all of these users' records yet (peers unreachable?)"
        );
    }
}
