//! The server under test: `node serve --config` as a child process with its own ports and
//! tempdir, stopped (and its log shown, if the test is failing) when dropped.

use crate::{free_port, hash_password, make_cert, node_bin, run, Output, User};
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take from spawn to accepting on every port (debug build, busy CI).
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
    Lmtp,
    Http,
    /// ManageSieve.
    Sieve,
}

#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub lmtp: u16,
    pub http: u16,
    pub sieve: u16,
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
            sieve: free_port(),
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
            Proto::Sieve => self.sieve,
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
    sieve: 4190,
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
protocols = ["imap", "pop3", "lmtp", "sieve"]
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

[managesieve]
port = {sieve}
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
        sieve = ports.sieve,
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
    /// embedded default (fixed ports 1143/1993/1110/1995/2424/9143/4190, demo/demo). The
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
        let mut cmd = Command::new(node_bin());
        cmd.arg("serve").current_dir(&root);
        let mut child = spawn_logged(cmd, log)?;
        let ports = EMBEDDED_PORTS;
        let all = [
            Proto::Imap,
            Proto::Imaps,
            Proto::Pop3,
            Proto::Pop3s,
            Proto::Lmtp,
            Proto::Sieve,
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

    /// Runs `node -c CONFIG ARGS...` (an admin command against this server) to completion.
    pub fn admin(&self, args: &[&str]) -> Output {
        self.admin_with_stdin(args, None)
    }

    /// [`Server::admin`] with `stdin` piped in.
    pub fn admin_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(node_bin());
        cmd.arg("-c")
            .arg(&self.paths.config)
            .args(args)
            .current_dir(&self.paths.dir)
            .env_remove("NODE_CONFIG");
        run(&mut cmd, stdin, Duration::from_secs(60)).expect("run node admin command")
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

    /// Sends `sig` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the running node.
    #[allow(unsafe_code)]
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
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
        self.restart_with_env(wait_for, &[])
    }

    /// [`Server::restart`] with more environment variables for the node process (e.g.
    /// libfaketime's `LD_PRELOAD` and `FAKETIME` to set its wall clock back).
    pub fn restart_with_env(&mut self, wait_for: &[Proto], env: &[(&str, &str)]) -> Result<()> {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.paths.log)?;
        let mut cmd = Command::new(node_bin());
        cmd.args(["serve", "--config"])
            .arg(&self.paths.config)
            .current_dir(&self.paths.dir)
            .envs(env.iter().copied());
        let mut child = spawn_logged(cmd, log)?;
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
            // exec: the child we stop must be the server itself, not a shell above it.
            c.arg("-c").arg(format!("exec {reference}"));
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
    cmd.current_dir(&paths.dir);
    spawn_logged(cmd, log)
}

/// Spawns a server child with its stdout and stderr in `log`. The child gets SIGKILL if
/// the thread that started it ends without stopping it (a test killed by its timeout),
/// so no server outlives its test holding ports.
#[allow(unsafe_code)]
fn spawn_logged(mut cmd: Command, log: std::fs::File) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.env(
        "RUST_LOG",
        std::env::var("NODE_LOG").unwrap_or_else(|_| "info".into()),
    )
    .env("NO_COLOR", "1")
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().context("spawn node serve")
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
#[allow(unsafe_code)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_port_and_path() {
        let ports = Ports {
            imap: 1,
            imaps: 2,
            pop3: 3,
            pop3s: 4,
            lmtp: 5,
            http: 6,
            sieve: 7,
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
}
