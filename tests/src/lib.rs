//! Whole-server test harness: starts the real `node` binary on loopback with its own
//! ports, data dir, TLS certificate and passwd-file, and drives it with real clients
//! (Python's stdlib clients, mbsync, fetchmail, swaks, openssl) and raw sockets.
//!
//! Every server gets fresh ports and a fresh tempdir, so tests run in parallel.
//! The child is stopped when its [`Server`] drops; if the test is failing, the tail of
//! the node's log is printed so the failure explains itself.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long a node may take from spawn to accepting on every port (debug build, busy CI).
const START_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Locating and building the node binary
// ---------------------------------------------------------------------------------------

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The newest modification time of any source file the node binary is built from.
fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            newest_source(&path, newest);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "toml")
        ) {
            if let Ok(m) = meta.modified() {
                if m > *newest {
                    *newest = m;
                }
            }
        }
    }
}

/// Path of `target/debug/node` (or `$NODE_BIN`). `env!("CARGO_BIN_EXE_node")` only works
/// inside the `node` crate, so the binary is found by path and built once per test process
/// when it is missing or older than its sources (`scripts/test.sh` builds it first, so in
/// CI this is only a check).
pub fn node_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NODE_BIN") {
            return PathBuf::from(p);
        }
        let bin = target_dir().join("debug").join("node");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let mut newest = SystemTime::UNIX_EPOCH;
        for krate in ["node", "protocols", "storage", "replication"] {
            newest_source(&workspace_root().join(krate), &mut newest);
        }
        if built.map_or(true, |b| b < newest) {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "node", "--bin", "node"])
                .current_dir(workspace_root())
                .status();
            match status {
                Ok(s) if s.success() => {}
                // Sources mid-edit in a shared tree: test the binary that exists, and say so.
                _ if bin.exists() => eprintln!(
                    "warning: cargo build -p node failed; testing the existing {}",
                    bin.display()
                ),
                _ => panic!(
                    "cargo build -p node failed and there is no {}",
                    bin.display()
                ),
            }
        }
        assert!(bin.exists(), "node binary not found at {}", bin.display());
        bin
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// Ports, users, certificates
// ---------------------------------------------------------------------------------------

/// A loopback port that was free a moment ago. Ports handed out in this process are never
/// handed out again, so two servers of one test binary do not collide.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
        let port = l.local_addr().expect("local addr").port();
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Plain,
    Argon2id,
    /// A `{SCHEME}hash` made elsewhere (e.g. by Dovecot's `doveadm pw`), used verbatim.
    Precomputed(&'static str),
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Plain => "PLAIN",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Precomputed(h) => h,
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
    pub scheme: Scheme,
}

impl User {
    pub fn plain(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: password.into(),
            scheme: Scheme::Plain,
        }
    }
    pub fn argon2id(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: password.into(),
            scheme: Scheme::Argon2id,
        }
    }
}

/// `node pw -s SCHEME -p PASS`, as an operator makes a passwd-file entry (like doveadm pw).
pub fn hash_password(scheme: Scheme, password: &str) -> Result<String> {
    match scheme {
        Scheme::Plain => return Ok(format!("{{PLAIN}}{password}")),
        Scheme::Precomputed(hash) => return Ok(hash.to_string()),
        Scheme::Argon2id => {}
    }
    let out = run(
        Command::new(node_bin()).args(["pw", "-s", scheme.name(), "-p", password]),
        None,
        Duration::from_secs(60),
    )?;
    if !out.status.success() {
        bail!("node pw -s {} failed: {}", scheme.name(), out.stderr_text());
    }
    let hash = out.stdout_text().trim().to_string();
    if !hash.starts_with(&format!("{{{}}}", scheme.name())) {
        bail!(
            "node pw printed {hash:?}, expected a {{{}}} hash",
            scheme.name()
        );
    }
    Ok(hash)
}

/// A self-signed certificate for `localhost` / 127.0.0.1, made with the openssl CLI so the
/// clients' trust path (CertificateFile, --cafile) is the one an operator would use.
pub fn make_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        None,
        Duration::from_secs(30),
    )?;
    if !out.status.success() {
        bail!("openssl req failed: {}", out.stderr_text());
    }
    Ok((cert, key))
}

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    Lmtp,
    Http,
}

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub lmtp: u16,
    pub http: u16,
}

impl Ports {
    fn fresh() -> Ports {
        Ports {
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
            lmtp: free_port(),
            http: free_port(),
        }
    }
    pub fn get(&self, p: Proto) -> u16 {
        match p {
            Proto::Imap => self.imap,
            Proto::Imaps => self.imaps,
            Proto::Pop3 => self.pop3,
            Proto::Pop3s => self.pop3s,
            Proto::Lmtp => self.lmtp,
            Proto::Http => self.http,
        }
    }
}

/// The embedded default's fixed ports (design.md, "The embedded default").
pub const EMBEDDED_PORTS: Ports = Ports {
    imap: 1143,
    imaps: 1993,
    pop3: 1110,
    pop3s: 1995,
    lmtp: 2424,
    http: 9143,
};

/// What a test needs from its server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub users: Vec<User>,
    /// Listeners the test uses: start-up waits until each accepts connections.
    pub wait_for: Vec<Proto>,
    /// Extra top-level TOML lines (settings the test depends on), appended verbatim.
    pub extra_toml: String,
    /// `ssl = yes | required | no`.
    pub ssl: &'static str,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            users: vec![
                User::plain("demo", "demo"),
                User::plain("alice", "alicepw"),
                User::plain("bob", "bobpw"),
            ],
            wait_for: vec![
                Proto::Imap,
                Proto::Imaps,
                Proto::Pop3,
                Proto::Pop3s,
                Proto::Lmtp,
            ],
            extra_toml: String::new(),
            ssl: "yes",
        }
    }
}

/// File locations of one server instance.
pub struct Paths {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub passwd: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// The node's configuration for a test server. This is the one place that knows the
/// config keys (node/src/config), so a renamed key is one edit here.
pub fn write_config(spec: &ServerSpec, ports: &Ports, paths: &Paths) -> String {
    let q = |p: &Path| toml_str(&p.display().to_string());
    format!(
        r#"# written by tests/src/lib.rs for one test server
protocols = ["imap", "pop3", "lmtp"]
listen = "127.0.0.1"
ssl = {ssl}
ssl_cert = {cert}
ssl_key = {key}
# passwd-file lists "demo"; LMTP recipients are demo@example.org
auth_default_realm = "example.org"
{extra}

[[passdb]]
driver = "passwd-file"
args = {passwd}

[[userdb]]
driver = "passwd-file"
args = {passwd}

[storage]
data_dir = {data}

[imap]
port = {imap}
ssl_port = {imaps}

[pop3]
port = {pop3}
ssl_port = {pop3s}

[lmtp]
port = {lmtp}

[http]
port = {http}
"#,
        ssl = toml_str(spec.ssl),
        cert = q(&paths.cert),
        key = q(&paths.key),
        passwd = q(&paths.passwd),
        data = q(&paths.data),
        extra = spec.extra_toml,
        imap = ports.imap,
        imaps = ports.imaps,
        pop3 = ports.pop3,
        pop3s = ports.pop3s,
        lmtp = ports.lmtp,
        http = ports.http,
    )
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A running `node serve --config` child with its own tempdir; stopped on drop.
pub struct Server {
    child: Option<Child>,
    pub ports: Ports,
    pub paths: Paths,
    pub users: Vec<User>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The default server: users demo/demo, alice/alicepw, bob/bobpw (PLAIN), all listeners.
    pub fn start_default() -> Server {
        Server::start(ServerSpec::default()).expect("start node")
    }

    pub fn start(spec: ServerSpec) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("node-test-").tempdir()?;
        let root = dir.path().to_path_buf();
        let (cert, key) = make_cert(&root)?;
        let paths = Paths {
            data: root.join("data"),
            passwd: root.join("passwd"),
            config: root.join("node.toml"),
            log: root.join("node.log"),
            dir: root.clone(),
            cert,
            key,
        };
        std::fs::create_dir_all(&paths.data)?;
        // Hashing (ARGON2ID) is slow in a debug build: one thread per user.
        let hashes: Vec<Result<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = spec
                .users
                .iter()
                .map(|u| scope.spawn(move || hash_password(u.scheme, &u.password)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("hash thread panicked")))
                })
                .collect()
        });
        let mut passwd = String::new();
        for (u, hash) in spec.users.iter().zip(hashes) {
            passwd.push_str(&format!("{}:{}::::::\n", u.name, hash?));
        }
        std::fs::write(&paths.passwd, passwd)?;

        // A port found free may be taken by someone else before the node binds it: retry
        // with fresh ports when the node says so.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = Ports::fresh();
            std::fs::write(&paths.config, write_config(&spec, &ports, &paths))?;
            let mut child = spawn_node(&paths, &ports)?;
            match wait_ready(&mut child, &ports, &spec.wait_for) {
                Ok(()) => {
                    return Ok(Server {
                        child: Some(child),
                        ports,
                        paths,
                        users: spec.users.clone(),
                        _dir: dir,
                    })
                }
                Err(e) => {
                    stop_child(child);
                    let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
                    let port_taken = log.contains("in use") || log.contains("AddrInUse");
                    if !port_taken || attempt == 3 {
                        bail!("{e:#}\n--- node log ---\n{}", tail(&log, 60));
                    }
                }
            }
        }
    }

    /// `node serve` with no configuration in a fresh temporary working directory: the
    /// embedded default (fixed ports 1143/1993/1110/1995/2424/9143, demo/demo). The
    /// caller makes sure those ports are free and runs such tests one at a time.
    pub fn start_embedded_default() -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("node-embedded-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        let paths = Paths {
            data: root.join("data"),
            passwd: root.join("data").join("passwd"),
            config: root.join("none"),
            log: root.join("node.log"),
            cert: root.join("data").join("tls"),
            key: root.join("data").join("tls"),
            dir: root.clone(),
        };
        let log = std::fs::File::create(&paths.log)?;
        let mut child = Command::new(node_bin())
            .arg("serve")
            .current_dir(&root)
            .env(
                "RUST_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn node serve")?;
        let ports = EMBEDDED_PORTS;
        let all = [
            Proto::Imap,
            Proto::Imaps,
            Proto::Pop3,
            Proto::Pop3s,
            Proto::Lmtp,
        ];
        if let Err(e) = wait_ready(&mut child, &ports, &all) {
            stop_child(child);
            let log = std::fs::read_to_string(&paths.log).unwrap_or_default();
            bail!("{e:#}\n--- node log ---\n{}", tail(&log, 60));
        }
        Ok(Server {
            child: Some(child),
            ports,
            paths,
            users: vec![User::plain("demo", "demo")],
            _dir: dir,
        })
    }

    pub fn addr(&self, p: Proto) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.get(p)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.paths.log).unwrap_or_default()
    }

    /// Whether the node process is still running (not crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Environment for client scripts: ports, cert path and the first user's credentials.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("IMAP_PORT".to_string(), self.ports.imap.to_string()),
            ("IMAPS_PORT".to_string(), self.ports.imaps.to_string()),
            ("POP3_PORT".to_string(), self.ports.pop3.to_string()),
            ("POP3S_PORT".to_string(), self.ports.pop3s.to_string()),
            ("LMTP_PORT".to_string(), self.ports.lmtp.to_string()),
            ("CERT".to_string(), self.paths.cert.display().to_string()),
        ];
        if let Some(u) = self.users.first() {
            env.push(("USER".into(), u.name.clone()));
            env.push(("PASS".into(), u.password.clone()));
        }
        env
    }

    /// Runs a Python snippet with [`Server::client_env`] set; fails the test with the
    /// script's output and the node's log if it exits non-zero.
    pub fn python(&self, script: &str, timeout: Duration) -> Output {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script).current_dir(&self.paths.dir);
        for (k, v) in self.client_env() {
            cmd.env(k, v);
        }
        let out = run(&mut cmd, None, timeout).expect("run python3");
        if !out.status.success() {
            panic!(
                "python script failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
                out.status,
                out.stdout_text(),
                out.stderr_text()
            );
        }
        out
    }

    /// Stops the node: SIGTERM (graceful shutdown), then SIGKILL after 5 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.take().and_then(stop_child)
    }

    /// Kills the node with SIGKILL (a crash: nothing gets flushed on the way out).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again on the same configuration, ports and data (after
    /// [`Server::stop`] or [`Server::kill`]); the log is appended to.
    pub fn restart(&mut self, wait_for: &[Proto]) -> Result<()> {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.paths.log)?;
        let mut child = Command::new(node_bin())
            .args(["serve", "--config"])
            .arg(&self.paths.config)
            .current_dir(&self.paths.dir)
            .env(
                "RUST_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn node serve")?;
        if let Err(e) = wait_ready(&mut child, &self.ports, wait_for) {
            stop_child(child);
            bail!("{e:#}\n--- node log ---\n{}", tail(&self.log_text(), 60));
        }
        self.child = Some(child);
        Ok(())
    }
}

/// Runs `node serve --config FILE` with the given configuration text in a fresh
/// directory, for configurations that must be refused: returns when the node exits (or
/// fails after 20 s if it keeps running).
pub fn serve_with_config_text(name: &str, text: &str) -> Result<Output> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, text)?;
    run(
        Command::new(node_bin())
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .env("NO_COLOR", "1"),
        None,
        Duration::from_secs(20),
    )
}

fn spawn_node(paths: &Paths, ports: &Ports) -> Result<Child> {
    let log = std::fs::File::create(&paths.log)?;
    // A reference server (scripts/reference-dovecot.sh) instead of node, to check the
    // tests themselves against Dovecot: it gets the ports and paths in its environment.
    let mut cmd = match std::env::var("NODE_TEST_SERVER_CMD") {
        Ok(reference) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(reference);
            for (k, v) in [
                ("IMAP_PORT", ports.imap),
                ("IMAPS_PORT", ports.imaps),
                ("POP3_PORT", ports.pop3),
                ("POP3S_PORT", ports.pop3s),
                ("LMTP_PORT", ports.lmtp),
            ] {
                c.env(k, v.to_string());
            }
            c.env("PASSWD", &paths.passwd)
                .env("CERT", &paths.cert)
                .env("KEY", &paths.key)
                .env("DATA_DIR", &paths.data);
            c
        }
        Err(_) => {
            let mut c = Command::new(node_bin());
            c.args(["serve", "--config"]).arg(&paths.config);
            c
        }
    };
    cmd.current_dir(&paths.dir)
        .env(
            "RUST_LOG",
            std::env::var("NODE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("spawn node serve")
}

/// Waits until every listed listener accepts a TCP connection, or the child exits.
fn wait_ready(child: &mut Child, ports: &Ports, wait_for: &[Proto]) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut pending: Vec<Proto> = wait_for.to_vec();
    while !pending.is_empty() {
        if let Some(status) = child.try_wait()? {
            bail!("node serve exited during start-up with {status}");
        }
        if Instant::now() > deadline {
            bail!("node serve did not accept on {pending:?} within {START_TIMEOUT:?}");
        }
        pending.retain(|p| {
            let addr = SocketAddr::from(([127, 0, 0, 1], ports.get(*p)));
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// SIGTERM (graceful shutdown), then SIGKILL after 5 s.
fn stop_child(mut child: Child) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- node log ({}) ---\n{}",
                self.paths.log.display(),
                tail(&self.log_text(), 80)
            );
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Running external clients with a timeout
// ---------------------------------------------------------------------------------------

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// stdout and stderr, for assertion messages.
    pub fn both(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout_text(),
            self.stderr_text()
        )
    }
}

/// Runs a command with optional stdin, capturing output; kills it and errors after `timeout`.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let mut out_pipe = child.stdout.take().context("stdout pipe")?;
    let mut err_pipe = child.stderr.take().context("stderr pipe")?;
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = start + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_t.join().unwrap_or_default();
            let stderr = err_t.join().unwrap_or_default();
            bail!(
                "{cmd:?} timed out after {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// Skips (returns true and says why) when an external client is not installed, so a
/// developer without `scripts/install-test-deps.sh` sees a clear message. In CI
/// (`CI=true`) a missing client is a failure instead: the test command installs them.
pub fn missing_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return false;
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{tool} is not installed: scripts/install-test-deps.sh installs it");
    }
    eprintln!("SKIPPED: {tool} is not installed (run scripts/install-test-deps.sh)");
    true
}

// ---------------------------------------------------------------------------------------
// Raw line-protocol client (IMAP, POP3, LMTP) over a plain socket
// ---------------------------------------------------------------------------------------

/// A blocking line client with a read timeout: every read either returns a line or fails
/// the test, so a hung server shows up as a clear error instead of a stuck test.
pub struct LineConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineConn {
    pub fn connect(addr: SocketAddr) -> Result<LineConn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(LineConn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    pub fn set_timeout(&mut self, d: Duration) -> Result<()> {
        self.writer.set_read_timeout(Some(d))?;
        Ok(())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Sends `line` followed by CRLF.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let mut b = line.as_bytes().to_vec();
        b.extend_from_slice(b"\r\n");
        self.send_raw(&b)
    }

    /// One line without its CRLF; an error at EOF or timeout.
    pub fn line(&mut self) -> Result<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            bail!("connection closed by server");
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.reader.read_exact(&mut b)?;
        Ok(b)
    }

    /// IMAP: reads lines up to and including the one tagged `tag`, following literals
    /// (`{N}` at a line's end) so literal data is never mistaken for a response line.
    /// Returns all lines (literal bytes inlined) and the tagged line last.
    pub fn imap_until(&mut self, tag: &str) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let mut l = self.line()?;
            while let Some(n) = literal_len(&l) {
                let data = self.bytes(n)?;
                l.push_str("\r\n");
                l.push_str(&String::from_utf8_lossy(&data));
                l.push_str(&self.line()?);
            }
            let done = l.starts_with(&prefix);
            lines.push(l);
            if done {
                return Ok(lines);
            }
        }
    }

    /// IMAP: sends `tag command` and returns the response lines through the tagged one.
    pub fn imap(&mut self, tag: &str, command: &str) -> Result<Vec<String>> {
        self.send(&format!("{tag} {command}"))?;
        self.imap_until(tag)
    }
}

impl LineConn {
    /// IMAP: sends `tag command` and returns the bytes of the first literal in the
    /// response, exactly (8-bit safe), after reading through the tagged line.
    pub fn imap_literal(&mut self, tag: &str, command: &str) -> Result<Vec<u8>> {
        self.send(&format!("{tag} {command}"))?;
        let prefix = format!("{tag} ");
        let mut first: Option<Vec<u8>> = None;
        loop {
            let l = self.line()?;
            if l.starts_with(&prefix) {
                if !l.starts_with(&format!("{tag} OK")) {
                    bail!("{command}: {l}");
                }
                return first.with_context(|| format!("{command}: no literal in the response"));
            }
            let mut cur = l;
            while let Some(n) = literal_len(&cur) {
                let data = self.bytes(n)?;
                first.get_or_insert(data);
                cur = self.line()?;
            }
        }
    }

    /// POP3: reads a multi-line response body after its `+OK` line, up to the
    /// terminating `.` line. Returns the bytes as sent on the wire (still dot-stuffed).
    pub fn pop3_multiline(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            if self.reader.read_until(b'\n', &mut buf)? == 0 {
                bail!("connection closed inside a multi-line response");
            }
            if buf == b".\r\n" {
                return Ok(out);
            }
            out.extend_from_slice(&buf);
        }
    }
}

/// Undoes POP3/SMTP dot-stuffing: a line starting with ".." loses one dot.
pub fn dot_unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut at_line_start = true;
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        if at_line_start && b == b'.' && wire.get(i + 1) == Some(&b'.') {
            i += 1;
        }
        out.push(wire[i]);
        at_line_start = wire[i] == b'\n';
        i += 1;
    }
    out
}

/// Logs in over POP3 (USER/PASS) on a plain socket.
pub fn pop3_login(addr: SocketAddr, user: &str, pass: &str) -> Result<LineConn> {
    let mut c = LineConn::connect(addr)?;
    let g = c.line()?;
    if !g.starts_with("+OK") {
        bail!("POP3 greeting: {g}");
    }
    for cmd in [format!("USER {user}"), format!("PASS {pass}")] {
        c.send(&cmd)?;
        let r = c.line()?;
        if !r.starts_with("+OK") {
            bail!("{cmd}: {r}");
        }
    }
    Ok(c)
}

/// `{N}` or `{N+}` at the end of a response line announces an N-byte literal.
fn literal_len(line: &str) -> Option<usize> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].trim_end_matches('+').parse().ok()
}

/// The tagged status line of an IMAP response (its last line).
pub fn tagged(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

/// Delivers one message over LMTP from Rust (for tests that need mail to be there):
/// returns the reply lines after DATA, one per accepted recipient.
pub fn lmtp_deliver(
    addr: SocketAddr,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Vec<String>> {
    lmtp_deliver_with(addr, from, "", rcpts, message)
}

/// [`lmtp_deliver`] with MAIL FROM parameters (e.g. `BODY=8BITMIME`). The message is
/// dot-stuffed here and otherwise sent as given (bare LFs stay bare).
pub fn lmtp_deliver_with(
    addr: SocketAddr,
    from: &str,
    mail_params: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Vec<String>> {
    let mut c = LineConn::connect(addr)?;
    let greeting = c.line()?;
    if !greeting.starts_with("220") {
        bail!("LMTP greeting: {greeting}");
    }
    c.send("LHLO tests.local")?;
    smtp_reply(&mut c, "250")?;
    if mail_params.is_empty() {
        c.send(&format!("MAIL FROM:<{from}>"))?;
    } else {
        c.send(&format!("MAIL FROM:<{from}> {mail_params}"))?;
    }
    smtp_reply(&mut c, "250")?;
    let mut accepted = 0;
    for r in rcpts {
        c.send(&format!("RCPT TO:<{r}>"))?;
        if smtp_reply(&mut c, "")?.starts_with("250") {
            accepted += 1;
        }
    }
    if accepted == 0 {
        bail!("no recipient accepted");
    }
    c.send("DATA")?;
    smtp_reply(&mut c, "354")?;
    c.send_raw(&dot_stuff(message))?;
    c.send_raw(b".\r\n")?;
    let mut replies = Vec::new();
    for _ in 0..accepted {
        replies.push(smtp_reply(&mut c, "")?);
    }
    c.send("QUIT")?;
    Ok(replies)
}

/// Reads one (possibly multi-line) SMTP/LMTP reply and returns its last line; when
/// `expect` is non-empty the code must match.
pub fn smtp_reply(c: &mut LineConn, expect: &str) -> Result<String> {
    loop {
        let l = c.line()?;
        if l.len() >= 4 && l.as_bytes()[3] == b'-' {
            continue;
        }
        if !expect.is_empty() && !l.starts_with(expect) {
            bail!("expected {expect}, got {l:?}");
        }
        return Ok(l);
    }
}

/// Message text for DATA: lines starting with '.' doubled, ending in CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A small RFC 5322 message with a unique Message-ID.
pub fn sample_message(subject: &str, body: &str) -> Vec<u8> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "From: Sender <sender@example.org>\r\nTo: demo@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{n}.{pid}.{subject_id}@tests.local>\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n",
        pid = std::process::id(),
        subject_id = subject.len(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements_are_recognised() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_len("a APPEND INBOX {7+}"), Some(7));
        assert_eq!(literal_len("* OK done"), None);
        assert_eq!(literal_len("* OK {x}"), None);
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_in_crlf() {
        assert_eq!(
            dot_stuff(b".a\r\nb\r\n..c"),
            b"..a\r\nb\r\n...c\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n".to_vec());
    }

    #[test]
    fn config_names_every_port_and_path() {
        let ports = Ports {
            imap: 1,
            imaps: 2,
            pop3: 3,
            pop3s: 4,
            lmtp: 5,
            http: 6,
        };
        let p = |s: &str| PathBuf::from(format!("/t/{s}"));
        let paths = Paths {
            dir: p("d"),
            data: p("data"),
            passwd: p("passwd"),
            cert: p("cert.pem"),
            key: p("key.pem"),
            config: p("node.toml"),
            log: p("log"),
        };
        let cfg = write_config(&ServerSpec::default(), &ports, &paths);
        for needle in [
            "\"/t/data\"",
            "\"/t/passwd\"",
            "\"/t/cert.pem\"",
            "\"/t/key.pem\"",
            "= 5\n",
        ] {
            assert!(cfg.contains(needle), "{needle} missing from\n{cfg}");
        }
    }

    #[test]
    fn dot_unstuffing_reverses_stuffing() {
        let msg = b"..a\r\nb\r\n...c\r\n.\r\n";
        assert_eq!(dot_unstuff(msg), b".a\r\nb\r\n..c\r\n.\r\n".to_vec());
        let orig = b".x\r\n.\r\ny\r\n";
        assert_eq!(dot_unstuff(&dot_stuff(orig)), orig.to_vec());
    }

    #[test]
    fn free_ports_are_not_handed_out_twice() {
        let a: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(a.len(), 50);
    }
}
