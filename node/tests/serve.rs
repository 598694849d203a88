//! The `node` binary end to end on loopback: start-up (ready line, refusals that name what is
//! wrong), the health endpoint, admin commands through the running server's socket and
//! directly on the store, the auth log line, SIGHUP certificate reload and graceful SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_node");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Ports {
    imap: u16,
    imaps: u16,
    lmtp: u16,
    http: u16,
}

fn write_config(dir: &Path, ports: &Ports, extra: &str) -> PathBuf {
    std::fs::write(dir.join("passwd"), "demo:{PLAIN}demo::::::\nalice:{SHA512-CRYPT}$6$6iAmjMcGLy6zuEcP$KzmIT1hqD1Wn3dikLPwA1eiwOQahSDgacOGSYd4P13vZKckC7tBl4z.zq84qaLWiSwKokdmoiIXU5f.lKJ/Kc1::::::userdb_quota_rule=*:storage=1M\n").unwrap();
    let text = format!(
        r#"protocols = "imap lmtp"
listen = "127.0.0.1"
auth_failure_delay = "100 ms"
shutdown_timeout = "3 secs"
{extra}
[[passdb]]
driver = "passwd-file"
args = "{dir}/passwd"
[storage]
data_dir = "{dir}/data"
[imap]
port = {imap}
ssl_port = {imaps}
[pop3]
port = 0
ssl_port = 0
[lmtp]
port = {lmtp}
[http]
port = {http}
"#,
        dir = dir.display(),
        imap = ports.imap,
        imaps = ports.imaps,
        lmtp = ports.lmtp,
        http = ports.http,
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `node serve`; killed on drop if a test failed before stopping it.
struct Server {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(config: &Path) -> Result<Server, String> {
        let mut child = Command::new(NODE)
            .args(["serve", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if log.lock().unwrap().contains("node: ready") {
                return Ok(Server { child, log });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("exited {status}: {}", log.lock().unwrap()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("no ready line: {}", log.lock().unwrap()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[allow(unsafe_code)]
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// SIGTERM; the exit status within `limit`.
    fn stop(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(config: &Path, args: &[&str]) -> Output {
    Command::new(NODE)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        resp.split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string(),
    )
}

fn ports() -> Ports {
    Ports {
        imap: free_port(),
        imaps: free_port(),
        lmtp: free_port(),
        http: free_port(),
    }
}

fn start(dir: &Path, extra: &str) -> (Server, Ports, PathBuf) {
    // A port found free may be taken before the node binds it: retry with fresh ones.
    for _ in 0..3 {
        let p = ports();
        let cfg = write_config(dir, &p, extra);
        match Server::start(&cfg) {
            Ok(s) => return (s, p, cfg),
            Err(e) if e.contains("in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free ports");
}

#[test]
fn serves_answers_admin_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (server, p, cfg) = start(dir.path(), "");
    let ready = server.log();
    assert!(
        ready.contains(&format!("imap=127.0.0.1:{}", p.imap)),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("imaps=127.0.0.1:{}", p.imaps)),
        "{ready}"
    );
    assert!(
        ready.contains(&format!("lmtp=127.0.0.1:{}", p.lmtp)),
        "{ready}"
    );

    // A second server on the same data_dir is refused before it touches the store.
    let err = Server::start(&cfg)
        .err()
        .expect("second server must not start");
    assert!(err.contains("another node is already running"), "{err}");

    let (status, body) = http_get(p.http, "/health");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(http_get(p.http, "/health/active").0, 200);
    assert_eq!(http_get(p.http, "/nope").0, 404);
    let (status, metrics) = http_get(p.http, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("node_store_fsyncs_total"), "{metrics}");
    let out = node(&cfg, &["health", "--active"]);
    assert!(out.status.success(), "{out:?}");

    // Admin commands go through the running server's socket (sled is single-process).
    let out = node(&cfg, &["user", "list"]);
    assert!(out.status.success(), "{out:?}");
    let users = String::from_utf8_lossy(&out.stdout);
    assert!(
        users.lines().any(|l| l == "demo") && users.lines().any(|l| l == "alice"),
        "{users}"
    );
    let out = node(&cfg, &["mailbox", "list", "-u", "alice"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "INBOX"));
    let out = node(&cfg, &["quota", "get", "-u", "alice"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STORAGE") && text.contains("1024"), "{text}");
    let out = node(&cfg, &["mailbox", "status", "-u", "nobody"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("doesn't exist"),
        "{out:?}"
    );
    assert!(node(&cfg, &["force-resync", "-u", "alice"])
        .status
        .success());

    // A failed login is delayed and logged the Dovecot way, with rip=.
    let mut imap = TcpStream::connect(("127.0.0.1", p.imap)).unwrap();
    imap.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(imap.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    imap.write_all(b"a LOGIN demo wrong\r\n").unwrap();
    let mut answer = String::new();
    r.read_line(&mut answer).unwrap();
    assert!(answer.starts_with("a NO"), "{answer}");
    assert!(
        server.wait_log("passwd-file(demo,127.0.0.1,"),
        "{}",
        server.log()
    );
    assert!(server.log().contains("Password mismatch"));
    drop(r);
    drop(imap);

    let status = server
        .stop(Duration::from_secs(10))
        .expect("stops after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!dir.path().join("data/admin.sock").exists());

    // Server gone: the same command opens the store directly.
    let out = node(&cfg, &["mailbox", "list", "-u", "alice"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == "INBOX"));
}

#[test]
fn refuses_to_start_with_a_port_in_use_or_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut p = ports();
    p.imap = busy.local_addr().unwrap().port();
    let cfg = write_config(dir.path(), &p, "");
    let err = Server::start(&cfg).err().expect("must not start");
    assert!(
        err.contains(&format!("imap: cannot listen on 127.0.0.1:{}", p.imap)),
        "{err}"
    );
    drop(busy);

    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &ports(),
        &format!(
            "ssl_cert = \"{}\"\nssl_key = \"{}\"\n",
            cert.display(),
            cert.display()
        ),
    );
    let err = Server::start(&cfg).err().expect("must not start");
    assert!(
        err.contains(&format!("ssl_cert {}", cert.display())),
        "{err}"
    );
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn config_check_reports_unknown_keys_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "ssl = \"yes\"\ndisable_plaintext_auth = true\n").unwrap();
    let out = node(&cfg, &["config", "check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{} line 2", cfg.display())), "{err}");
    assert!(
        err.contains("disable_plaintext_auth") && err.contains("auth_allow_cleartext"),
        "{err}"
    );
}

#[test]
fn pw_and_auth_test_like_doveadm() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(NODE)
        .args(["pw", "-s", "SHA512-CRYPT", "-p", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"), "{hash}");
    let cfg = write_config(dir.path(), &ports(), "");
    std::fs::write(
        dir.path().join("passwd"),
        format!("bob:{hash}::::::userdb_quota_rule=*:messages=5\n"),
    )
    .unwrap();
    let out = node(&cfg, &["auth", "test", "bob", "s3cret"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("passdb: bob auth succeeded"), "{text}");
    assert!(
        text.contains("quota_rule") && text.contains("messages=5"),
        "{text}"
    );
    let out = node(&cfg, &["auth", "test", "bob", "wrong"]);
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("auth failed"));
}

/// The certificate an implicit-TLS listener presents.
fn presented_cert(port: u16) -> Vec<u8> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct Capture(Mutex<Vec<u8>>);
    impl ServerCertVerifier for Capture {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = end_entity.to_vec();
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let capture = Arc::new(Capture(Mutex::new(Vec::new())));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut line = [0u8; 4];
    tls.read_exact(&mut line).unwrap(); // "* OK": the handshake is done
    let der = capture.0.lock().unwrap().clone();
    der
}

#[test]
fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (
            c.cert.pem(),
            c.signing_key.serialize_pem(),
            c.cert.der().to_vec(),
        )
    };
    let (cert_a, key_a, der_a) = make("a.example");
    let (cert_b, key_b, der_b) = make("b.example");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, cert_a).unwrap();
    std::fs::write(&key, key_a).unwrap();
    let extra = format!(
        "ssl_cert = \"{}\"\nssl_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (server, p, _) = start(dir.path(), &extra);
    assert_eq!(presented_cert(p.imaps), der_a);
    std::fs::write(&cert, cert_b).unwrap();
    std::fs::write(&key, key_b).unwrap();
    server.signal(libc::SIGHUP);
    assert!(server.wait_log("certificate reloaded"), "{}", server.log());
    assert_eq!(presented_cert(p.imaps), der_b);
    // A broken file on reload keeps the old certificate and says why.
    std::fs::write(&cert, "garbage").unwrap();
    server.signal(libc::SIGHUP);
    assert!(server.wait_log("reload failed"), "{}", server.log());
    assert_eq!(presented_cert(p.imaps), der_b);
    assert!(server
        .stop(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

#[test]
fn lmtp_delivers_over_tcp_and_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("lmtp.sock");
    let extra = format!(
        "[lmtp_unix_socket]\npath = \"{}\"\nmode = \"0600\"\n",
        sock.display()
    );
    // `extra` lands after the top-level keys and before [[passdb]]: a table is fine there.
    let (server, p, cfg) = start(dir.path(), &extra);
    assert!(
        server
            .log()
            .contains(&format!("lmtp_unix={}", sock.display())),
        "{}",
        server.log()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Different Message-IDs: the same message twice would be (rightly) stored once.
    fn deliver(stream: impl Read + Write, rcpt: &str, id: u32) -> Vec<String> {
        let mut stream = stream;
        let script = format!(
            "LHLO test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\nMessage-ID: <{id}@test>\r\nSubject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n"
        );
        stream.write_all(script.as_bytes()).unwrap();
        let mut all = String::new();
        let _ = stream.read_to_string(&mut all);
        all.lines().map(str::to_string).collect()
    }
    let tcp = TcpStream::connect(("127.0.0.1", p.lmtp)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let lines = deliver(tcp, "alice", 1);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("250 2.0.0") || l.starts_with("250 2.1.5")),
        "{lines:?}"
    );
    let unix = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let lines = deliver(unix, "alice", 2);
    assert!(lines.iter().any(|l| l.starts_with("250")), "{lines:?}");
    let tcp = TcpStream::connect(("127.0.0.1", p.lmtp)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let lines = deliver(tcp, "nobody", 3);
    assert!(
        lines.iter().any(|l| l.starts_with("550 5.1.1")),
        "{lines:?}"
    );

    // Each recipient's outcome is counted on /metrics.
    let (status, metrics) = http_get(p.http, "/metrics");
    assert_eq!(status, 200);
    for line in [
        "node_deliveries_total{result=\"ok\"} 2",
        "node_deliveries_total{result=\"unknown_user\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in {metrics}"
        );
    }

    let out = node(&cfg, &["mailbox", "status", "-u", "alice", "INBOX"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("messages=2"), "{text} {out:?}");
    assert!(server
        .stop(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert!(!sock.exists(), "the unix socket is removed at shutdown");
}

#[test]
fn two_nodes_replicate_a_delivery_in_replicated_durability() {
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let (a_repl, b_repl) = (free_port(), free_port());
    let cluster = |me: u32, port: u16, peer: u32, peer_port: u16, d: &Path| {
        format!(
            "[cluster]\nnode_id = {me}\nlisten = \"127.0.0.1:{port}\"\ndurability = \"replicated\"\n\
             certs_dir = \"{}\"\npeers = [{{ node_id = {peer}, address = \"127.0.0.1:{peer_port}\" }}]\n",
            d.join("cluster").display()
        )
    };
    let a_cfg = write_config(&a_dir, &ports(), &cluster(1, a_repl, 2, b_repl, &a_dir));
    // Certificates the way an operator makes them: CA and both node certs on A, copied to B.
    for args in [
        vec!["cluster", "init"],
        vec!["cluster", "cert", "1", "--hostname", "127.0.0.1"],
        vec!["cluster", "cert", "2", "--hostname", "127.0.0.1"],
    ] {
        let out = node(&a_cfg, &args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let b_certs = b_dir.join("cluster");
    std::fs::create_dir_all(&b_certs).unwrap();
    for (from, to) in [
        (a_dir.join("cluster/ca.pem"), b_certs.join("ca.pem")),
        (
            a_dir.join("cluster/node-2/node.pem"),
            b_certs.join("node.pem"),
        ),
        (
            a_dir.join("cluster/node-2/node.key"),
            b_certs.join("node.key"),
        ),
    ] {
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    // With fresh client ports if one was taken meanwhile (the files stay where they are).
    let (a, _, a_cfg) = start(&a_dir, &cluster(1, a_repl, 2, b_repl, &a_dir));
    let (b, _, b_cfg) = start(&b_dir, &cluster(2, b_repl, 1, a_repl, &b_dir));
    assert!(
        a.log().contains(&format!("replication=127.0.0.1:{a_repl}")),
        "{}",
        a.log()
    );

    // Delivered on A: LMTP's 250 waits for B's durable ack (replicated durability).
    let lmtp_port: u16 = a
        .log()
        .split("lmtp=127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", lmtp_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"LHLO t\r\nMAIL FROM:<x@example.com>\r\nRCPT TO:<alice>\r\nDATA\r\nMessage-ID: <r1@t>\r\n\r\nreplicate me\r\n.\r\nQUIT\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.lines().filter(|l| l.starts_with("250")).count() >= 3,
        "{answer}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = node(&b_cfg, &["mailbox", "status", "-u", "alice", "INBOX"]);
        if String::from_utf8_lossy(&out.stdout).contains("messages=1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not replicated to B: {out:?}\nA: {}\nB: {}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = node(&a_cfg, &["replication", "status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["peers"][0]["id"], 2, "{st}");
    assert_eq!(st["degraded"], false, "{st}");
    let out = node(&b_cfg, &["sync", "-u", "alice"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("with node 1"),
        "{out:?}"
    );
    assert!(a.stop(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(b.stop(Duration::from_secs(10)).is_some_and(|s| s.success()));
}
