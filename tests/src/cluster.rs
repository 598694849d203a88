//! Clusters of separate `node serve` processes on loopback: certificates made the way an
//! operator makes them (`node cluster init`, `node cluster cert N`), a `[cluster]` section
//! per node, optionally every peer link through a [`LinkProxy`] the test can cut and heal,
//! and IMAP/POP3 state dumps to compare nodes with.

use crate::{free_port, node_bin, pop3_login, run, tagged, LineConn, Proto, Server, ServerSpec};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The user every cluster test works with (in each node's passwd-file).
pub const USER: &str = "alice";
pub const PASS: &str = "alicepw";

/// How a cluster is wired.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub nodes: u32,
    /// `local` or `replicated`.
    pub durability: &'static str,
    /// `[cluster] replication_sync_timeout`, e.g. "30s".
    pub sync_timeout: &'static str,
    /// Every peer address points at a [`LinkProxy`] in front of the peer's listener.
    pub proxied: bool,
    /// `[cluster] mode = "raft"`: every node also runs the coordinator on its own port.
    pub raft: bool,
    /// More `[cluster]` lines for every node (e.g. `startup_catch_up_timeout = "0 secs"`).
    pub cluster_lines: &'static str,
    /// More tables for every node's configuration (e.g. a `[sieve]` table).
    pub tables: String,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: 2,
            durability: "local",
            sync_timeout: "2s",
            proxied: false,
            raft: false,
            cluster_lines: "",
            tables: String::new(),
        }
    }
}

/// Running nodes (ids 1..=n, `nodes[i]` is node i+1) and the proxies of their links.
pub struct Cluster {
    pub nodes: Vec<Server>,
    /// One per node: the proxy in front of that node's replication listener, which every
    /// other node dials (when [`ClusterSpec::proxied`]).
    pub proxies: Vec<LinkProxy>,
    /// Certificates; removed when the cluster drops (after the nodes stop).
    _certs: tempfile::TempDir,
}

impl Cluster {
    pub fn start(spec: ClusterSpec) -> Result<Cluster> {
        let certs = tempfile::Builder::new()
            .prefix("cluster-certs-")
            .tempdir()?;
        let n = spec.nodes;
        let node_dirs = make_certs(certs.path(), n)?;
        let listen: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let raft_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut proxies = Vec::new();
        if spec.proxied {
            for port in &listen {
                proxies.push(LinkProxy::start(SocketAddr::from(([127, 0, 0, 1], *port)))?);
            }
        }
        // Nodes start one at a time: each start waits for its client listeners only; the
        // peer links come up by themselves (dialers retry with back-off).
        let mut nodes = Vec::new();
        for i in 0..n as usize {
            let peers: Vec<String> = (0..n as usize)
                .filter(|j| *j != i)
                .map(|j| {
                    let port = if spec.proxied {
                        proxies[j].port()
                    } else {
                        listen[j]
                    };
                    let raft = if spec.raft {
                        format!(", raft_address = \"127.0.0.1:{}\"", raft_ports[j])
                    } else {
                        String::new()
                    };
                    format!(
                        "{{ node_id = {}, address = \"127.0.0.1:{port}\"{raft} }}",
                        j + 1
                    )
                })
                .collect();
            let raft = if spec.raft {
                format!(
                    "mode = \"raft\"\nraft_listen = \"127.0.0.1:{}\"\n",
                    raft_ports[i]
                )
            } else {
                String::new()
            };
            // The [cluster] table goes where ServerSpec's extra lines go (before the
            // other tables), which is valid TOML: the next table header ends it.
            let extra = format!(
                "\n[cluster]\nnode_id = {id}\nlisten = \"127.0.0.1:{port}\"\ndurability = \"{dur}\"\n\
                 replication_sync_timeout = \"{timeout}\"\ncerts_dir = \"{dir}\"\n{raft}{lines}peers = [{peers}]\n",
                id = i + 1,
                port = listen[i],
                dur = spec.durability,
                timeout = spec.sync_timeout,
                dir = node_dirs[i].display(),
                peers = peers.join(", "),
                lines = spec.cluster_lines,
            ) + &spec.tables;
            let server = Server::start(ServerSpec {
                wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
                extra_toml: extra,
                ..ServerSpec::default()
            })
            .with_context(|| format!("start node {}", i + 1))?;
            nodes.push(server);
        }
        Ok(Cluster {
            nodes,
            proxies,
            _certs: certs,
        })
    }

    /// `node -c CONFIG ARGS` against node `i` (0-based) and its admin socket.
    pub fn admin(&self, i: usize, args: &[&str]) -> Result<crate::Output> {
        run(
            Command::new(node_bin())
                .arg("-c")
                .arg(&self.nodes[i].paths.config)
                .args(args),
            None,
            Duration::from_secs(30),
        )
    }

    /// Full state of [`USER`] on node `i` (see [`dump`]).
    pub fn dump(&self, i: usize) -> Result<Dump> {
        dump(self, i)
    }

    /// Polls until the dumps of `nodes` are all equal and returns it; on the deadline,
    /// fails with two differing dumps.
    pub fn wait_converged(&self, nodes: &[usize], within: Duration) -> Result<Dump> {
        self.wait_converged_by(nodes, within, |d| d)
    }

    /// [`Cluster::wait_converged`] comparing `view(dump)` (e.g. [`Dump::without_modseqs`]).
    pub fn wait_converged_by(
        &self,
        nodes: &[usize],
        within: Duration,
        view: impl Fn(Dump) -> Dump,
    ) -> Result<Dump> {
        let deadline = Instant::now() + within;
        loop {
            let first = view(self.dump(nodes[0])?);
            let mut differing = None;
            for &i in &nodes[1..] {
                let d = view(self.dump(i)?);
                if d != first {
                    differing = Some((i, d));
                    break;
                }
            }
            match differing {
                None => return Ok(first),
                Some((i, d)) if Instant::now() > deadline => bail!(
                    "node {} and node {} did not converge within {within:?}\n--- node {} ---\n{first}\n--- node {} ---\n{d}",
                    nodes[0] + 1,
                    i + 1,
                    nodes[0] + 1,
                    i + 1
                ),
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// CA and one certificate per node (SAN 127.0.0.1), made with the node's own commands;
/// returns each node's certs_dir (ca.pem, node.pem, node.key).
fn make_certs(root: &Path, n: u32) -> Result<Vec<PathBuf>> {
    let ca_dir = root.join("ca");
    let cfg = root.join("ca.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[cluster]\nnode_id = 1\ncerts_dir = \"{}\"\n",
            root.join("unused-data").display(),
            ca_dir.display()
        ),
    )?;
    let node = |args: &[&str]| -> Result<()> {
        let out = run(
            Command::new(node_bin()).arg("-c").arg(&cfg).args(args),
            None,
            Duration::from_secs(30),
        )?;
        if !out.status.success() {
            bail!("node {args:?}: {}", out.both());
        }
        Ok(())
    };
    node(&["cluster", "init"])?;
    let mut dirs = Vec::new();
    for id in 1..=n {
        let dir = root.join(format!("node-{id}"));
        let id_s = id.to_string();
        let out = dir.display().to_string();
        node(&[
            "cluster",
            "cert",
            &id_s,
            "--hostname",
            "127.0.0.1",
            "--out",
            &out,
        ])?;
        std::fs::copy(ca_dir.join("ca.pem"), dir.join("ca.pem"))?;
        dirs.push(dir);
    }
    Ok(dirs)
}

/// A TCP forwarder in front of one node's replication listener. `cut` closes every
/// forwarded connection and refuses new ones (accepted, then closed at once) until `heal`.
pub struct LinkProxy {
    port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl LinkProxy {
    pub fn start(target: SocketAddr) -> Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (open, stop, conns) = (open.clone(), stop.clone(), conns.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            if !open.load(Ordering::SeqCst) {
                                drop(client);
                                continue;
                            }
                            let _ = client.set_nonblocking(false);
                            let Ok(server) =
                                TcpStream::connect_timeout(&target, Duration::from_secs(2))
                            else {
                                continue;
                            };
                            forward(client, server, &conns);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(LinkProxy {
            port,
            open,
            stop,
            conns,
            acceptor: Some(acceptor),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops the link: every forwarded connection is shut down both ways, new ones refused.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for c in conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Two copier threads (one per direction); both sockets are registered so `cut` can end
/// them. A copier ends at EOF or error and shuts its peer socket down.
fn forward(client: TcpStream, server: TcpStream, conns: &Arc<Mutex<Vec<TcpStream>>>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    {
        let mut l = conns.lock().unwrap_or_else(|e| e.into_inner());
        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
            l.push(a);
            l.push(b);
        }
    }
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    };
    copy(client, s2);
    copy(server, c2);
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

/// One message as IMAP shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub uid: u32,
    /// Sorted flag and keyword names.
    pub flags: Vec<String>,
    pub modseq: u64,
    pub body: String,
}

/// One mailbox: UIDVALIDITY, the mailbox GUID (`node mailbox status`) and its messages
/// by UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxDump {
    pub uidvalidity: u32,
    pub guid: String,
    pub messages: BTreeMap<u32, Msg>,
}

/// A user's whole visible state on one node; INBOX's POP3 UIDLs stand for the message
/// GUIDs (UIDL is derived from the GUID, the same on every node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    pub mailboxes: BTreeMap<String, MailboxDump>,
    pub inbox_uidls: Vec<String>,
}

impl Dump {
    /// The dump with every modseq set to 0, to compare what is not about modseqs.
    pub fn without_modseqs(mut self) -> Dump {
        for m in self.mailboxes.values_mut() {
            for msg in m.messages.values_mut() {
                msg.modseq = 0;
            }
        }
        self
    }
}

impl std::fmt::Display for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, m) in &self.mailboxes {
            writeln!(f, "{name} uidvalidity={} guid={}", m.uidvalidity, m.guid)?;
            for msg in m.messages.values() {
                let first = msg
                    .body
                    .lines()
                    .find(|l| l.starts_with("Message-ID"))
                    .unwrap_or("");
                writeln!(
                    f,
                    "  uid={} modseq={} flags={:?} bytes={} {first}",
                    msg.uid,
                    msg.modseq,
                    msg.flags,
                    msg.body.len()
                )?;
            }
        }
        writeln!(f, "INBOX UIDLs: {:?}", self.inbox_uidls)
    }
}

/// Logs [`USER`] in over IMAP on node `server` and enables CONDSTORE.
pub fn imap_login(server: &Server) -> Result<LineConn> {
    let mut c = LineConn::connect(server.addr(Proto::Imap))?;
    let g = c.line()?;
    if !g.starts_with("* OK") {
        bail!("IMAP greeting: {g}");
    }
    for (tag, cmd) in [
        ("l", format!("LOGIN {USER} {PASS}")),
        ("e", "ENABLE CONDSTORE".to_string()),
    ] {
        let r = c.imap(tag, &cmd)?;
        if !tagged(&r).starts_with(&format!("{tag} OK")) {
            bail!("{cmd}: {r:?}");
        }
    }
    Ok(c)
}

/// Runs a command that must answer OK; the response lines.
pub fn imap_ok(c: &mut LineConn, tag: &str, cmd: &str) -> Result<Vec<String>> {
    let r = c.imap(tag, cmd)?;
    if !tagged(&r).starts_with(&format!("{tag} OK")) {
        bail!("{cmd}: {r:?}");
    }
    Ok(r)
}

/// SELECTs `mailbox`: (UIDVALIDITY, EXISTS).
pub fn select(c: &mut LineConn, mailbox: &str) -> Result<(u32, u32)> {
    let r = imap_ok(c, "s", &format!("SELECT {}", quote(mailbox)))?;
    let mut uidvalidity = None;
    let mut exists = None;
    for l in &r {
        if let Some(rest) = l.strip_prefix("* OK [UIDVALIDITY ") {
            uidvalidity = rest.split(']').next().and_then(|n| n.parse().ok());
        }
        if let Some(n) = l.strip_prefix("* ").and_then(|x| x.strip_suffix(" EXISTS")) {
            exists = n.parse().ok();
        }
    }
    Ok((
        uidvalidity.with_context(|| format!("no UIDVALIDITY in {r:?}"))?,
        exists.with_context(|| format!("no EXISTS in {r:?}"))?,
    ))
}

/// `UID FETCH 1:* (UID FLAGS MODSEQ BODY.PEEK[])` on the selected mailbox.
pub fn fetch_all(c: &mut LineConn) -> Result<BTreeMap<u32, Msg>> {
    let r = imap_ok(c, "f", "UID FETCH 1:* (UID FLAGS MODSEQ BODY.PEEK[])")?;
    let mut out = BTreeMap::new();
    for l in &r[..r.len().saturating_sub(1)] {
        if !l.starts_with("* ") || !l.contains(" FETCH (") {
            continue;
        }
        let m = parse_fetch(l).with_context(|| format!("unparsable FETCH: {l:?}"))?;
        out.insert(m.uid, m);
    }
    Ok(out)
}

/// Parses one FETCH line as [`LineConn::imap_until`] returns it (the BODY[] literal
/// inlined after `{N}\r\n`). The items are read outside the literal only, so message
/// text never looks like an item.
pub fn parse_fetch(line: &str) -> Option<Msg> {
    let (items, body) = match line.find("BODY[] {") {
        Some(at) => {
            let after = &line[at + "BODY[] {".len()..];
            let close = after.find('}')?;
            let n: usize = after[..close].parse().ok()?;
            let data_at = at + "BODY[] {".len() + close + 1 + 2;
            let body = line.get(data_at..data_at + n)?.to_string();
            let rest = line.get(data_at + n..)?;
            (format!("{} {rest}", &line[..at]), body)
        }
        None => (line.to_string(), String::new()),
    };
    let number_after = |key: &str| -> Option<u64> {
        let at = items.find(key)? + key.len();
        let digits: String = items[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    let uid = u32::try_from(number_after("UID ")?).ok()?;
    let modseq = number_after("MODSEQ (")?;
    let flags_at = items.find("FLAGS (")? + "FLAGS (".len();
    let flags_end = flags_at + items[flags_at..].find(')')?;
    let mut flags: Vec<String> = items[flags_at..flags_end]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    flags.sort();
    Some(Msg {
        uid,
        flags,
        modseq,
        body,
    })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Mailbox names from `LIST "" "*"` (selectable ones).
pub fn list_mailboxes(c: &mut LineConn) -> Result<Vec<String>> {
    let r = imap_ok(c, "L", "LIST \"\" \"*\"")?;
    let mut names = Vec::new();
    for l in &r {
        let Some(rest) = l.strip_prefix("* LIST (") else {
            continue;
        };
        if rest.split(')').next().unwrap_or("").contains("\\Noselect") {
            continue;
        }
        // `* LIST (attrs) "/" name`: the name follows the delimiter.
        let name = rest
            .split_once(") ")
            .and_then(|(_, x)| x.split_once(' '))
            .map(|(_, n)| n);
        let Some(name) = name else { continue };
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .map(|n| n.replace("\\\"", "\"").replace("\\\\", "\\"))
            .unwrap_or_else(|| name.to_string());
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Mailbox GUIDs by name from `node mailbox status -u USER` on node `i`.
fn mailbox_guids(cluster: &Cluster, i: usize) -> Result<BTreeMap<String, String>> {
    let out = cluster.admin(i, &["mailbox", "status", "-u", USER])?;
    if !out.status.success() {
        bail!("node mailbox status on node {}: {}", i + 1, out.both());
    }
    let mut guids = BTreeMap::new();
    for l in out.stdout_text().lines() {
        // "NAME messages=.. ... guid=HEX"; NAME may hold spaces: cut at " messages=".
        let (Some(name_end), Some(g)) = (l.find(" messages="), l.rsplit("guid=").next()) else {
            continue;
        };
        guids.insert(l[..name_end].to_string(), g.trim().to_string());
    }
    Ok(guids)
}

/// The full state of [`USER`] on node `i`: every mailbox's UIDVALIDITY and GUID, every
/// message's UID, flags, modseq and text, and INBOX's UIDLs.
pub fn dump(cluster: &Cluster, i: usize) -> Result<Dump> {
    let server = &cluster.nodes[i];
    let mut c = imap_login(server)?;
    let guids = mailbox_guids(cluster, i)?;
    let mut mailboxes = BTreeMap::new();
    for name in list_mailboxes(&mut c)? {
        let (uidvalidity, exists) = select(&mut c, &name)?;
        let messages = if exists == 0 {
            BTreeMap::new()
        } else {
            fetch_all(&mut c)?
        };
        let guid = guids.get(&name).cloned().unwrap_or_default();
        mailboxes.insert(
            name,
            MailboxDump {
                uidvalidity,
                guid,
                messages,
            },
        );
    }
    let _ = c.imap("z", "LOGOUT");
    let mut p = pop3_login(server.addr(Proto::Pop3), USER, PASS)?;
    p.send("UIDL")?;
    let first = p.line()?;
    if !first.starts_with("+OK") {
        bail!("UIDL: {first}");
    }
    let listing = p.pop3_multiline()?;
    p.send("QUIT")?;
    let inbox_uidls = String::from_utf8_lossy(&listing)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    Ok(Dump {
        mailboxes,
        inbox_uidls,
    })
}

/// A message with a unique Message-ID, CRLF line ends.
pub fn message(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: tests <t@example.com>\r\nTo: {USER}@example.org\r\nSubject: {id}\r\nMessage-ID: <{id}@cluster.test>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_lines_parse_outside_the_literal() {
        let body = "Subject: x\r\nUID 99 FLAGS (\\Bogus) MODSEQ (7)\r\n";
        let line = format!(
            "* 1 FETCH (UID 4 FLAGS (\\Seen $Junk) MODSEQ (12) BODY[] {{{}}}\r\n{body})",
            body.len()
        );
        let m = parse_fetch(&line).unwrap();
        assert_eq!(m.uid, 4);
        assert_eq!(m.modseq, 12);
        assert_eq!(m.flags, vec!["$Junk".to_string(), "\\Seen".to_string()]);
        assert_eq!(m.body, body);
        // Items after the literal count too.
        let line = format!(
            "* 2 FETCH (BODY[] {{{}}}\r\n{body} UID 9 MODSEQ (3) FLAGS ())",
            body.len()
        );
        let m = parse_fetch(&line).unwrap();
        assert_eq!((m.uid, m.modseq, m.flags.len()), (9, 3, 0));
        assert!(parse_fetch("* 3 FETCH (FLAGS ())").is_none());
    }

    #[test]
    fn proxy_forwards_then_cuts_and_heals() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in echo.incoming().take(4) {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut b = [0u8; 16];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let p = LinkProxy::start(target).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], p.port()));
        let roundtrip = |s: &mut TcpStream| -> bool {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 2];
            s.write_all(b"hi").is_ok() && s.read_exact(&mut b).is_ok() && &b == b"hi"
        };
        let mut s = TcpStream::connect(addr).unwrap();
        assert!(roundtrip(&mut s));
        p.cut();
        assert!(!roundtrip(&mut s), "a cut link still carried data");
        let mut s2 = TcpStream::connect(addr).unwrap();
        assert!(
            !roundtrip(&mut s2),
            "a new connection got through a cut link"
        );
        p.heal();
        let mut s3 = TcpStream::connect(addr).unwrap();
        assert!(roundtrip(&mut s3));
    }
}
