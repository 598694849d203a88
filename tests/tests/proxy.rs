//! Dovecot-style proxying across three `node` processes on loopback: two backends (A and
//! B, each a plain node with a passwd-file) and one proxy whose users live in an SQLite
//! table with `host` and per-service port columns, routing alice to A and bob to B. IMAP,
//! POP3 and LMTP through the proxy land on the right backend (checked by logging in to
//! the backends directly); a wrong password, and a password the backend refuses, get the
//! normal auth failure; a backend that is down gives a temporary failure.
//!
//! `managesieve_through_the_proxy`: a real ManageSieve client (Debian's sieve-connect)
//! uploads and activates a script through the proxy; the script is then on the user's
//! backend and not on the other one. STARTTLS towards the backend, a wrong password, and a
//! backend that is down (`NO (TRYLATER)`) over a raw connection.
//!
//! `proxy_latency_and_throughput` (ignored: a measurement, not a check) runs the same IMAP
//! workload direct to a backend and through the proxy and prints p50/p99 per command and
//! ops/s (docs/performance.md, "Proxy (issue 16)").

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tests::*;

fn backend() -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp, Proto::Sieve],
        // The proxy is on loopback: its ID/XCLIENT about the client is believed.
        extra_toml: "auth_failure_delay = \"0 secs\"\nlogin_trusted_networks = [\"127.0.0.1\"]\n"
            .into(),
        ..Default::default()
    })
    .expect("start backend")
}

/// The proxy's user table: (user, password, backend). The port column a service uses is
/// chosen by the query with `%s`, as a Dovecot operator writes it. demo goes to its backend
/// over STARTTLS (`starttls=any-cert`: the backends' certificates are self-signed).
fn users_sql(rows: &[(&str, &str, &Server)]) -> String {
    let mut sql = String::from(
        "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT NOT NULL, host TEXT NOT NULL, \
         imap_port INTEGER, pop3_port INTEGER, lmtp_port INTEGER, sieve_port INTEGER, \
         starttls TEXT);\n",
    );
    for (user, pw, server) in rows {
        let tls = if user.starts_with("demo@") {
            "'any-cert'"
        } else {
            "NULL"
        };
        sql.push_str(&format!(
            "INSERT INTO users VALUES ('{user}', '{pw}', '127.0.0.1', {}, {}, {}, {}, {tls});\n",
            server.ports.imap, server.ports.pop3, server.ports.lmtp, server.ports.sieve
        ));
    }
    sql
}

fn proxy_node(dir: &Path, rows: &[(&str, &str, &Server)]) -> Server {
    let db = dir.join("users.sqlite");
    let out = run(
        Command::new("sqlite3").arg(&db).arg(users_sql(rows)),
        None,
        Duration::from_secs(30),
    )
    .expect("sqlite3");
    assert!(out.status.success(), "{}", out.stderr_text());
    let conf = dir.join("dovecot-sql.conf.ext");
    std::fs::write(
        &conf,
        format!(
            "driver = sqlite\n\
             connect = {}\n\
             default_pass_scheme = PLAIN\n\
             password_query = SELECT username AS user, password, 'y' AS proxy, host, \\\n  \
               CASE '%s' WHEN 'pop3' THEN pop3_port WHEN 'lmtp' THEN lmtp_port \\\n  \
               WHEN 'sieve' THEN sieve_port ELSE imap_port END AS port, \\\n  \
               starttls FROM users WHERE username = '%u'\n",
            db.display()
        ),
    )
    .unwrap();
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp, Proto::Sieve],
        extra_toml: format!(
            "auth_failure_delay = \"0 secs\"\nlmtp_proxy = true\n\n\
             [[passdb]]\ndriver = \"sql\"\nargs = \"{}\"\n",
            conf.display()
        ),
        // The proxy's own passwd-file knows nobody that the table routes.
        users: vec![User::plain("demo", "demo")],
        ..Default::default()
    })
    .expect("start proxy")
}

fn imap_login(addr: std::net::SocketAddr, user: &str, pw: &str) -> (LineConn, String) {
    let mut c = LineConn::connect(addr).expect("connect imap");
    c.line().expect("greeting");
    let r = c
        .imap("a", &format!("LOGIN \"{user}\" \"{pw}\""))
        .expect("login");
    let t = tagged(&r).to_string();
    (c, t)
}

/// The subjects in a user's INBOX, read over IMAP at `addr`.
fn subjects(addr: std::net::SocketAddr, user: &str, pw: &str) -> Vec<String> {
    let (mut c, t) = imap_login(addr, user, pw);
    assert!(t.starts_with("a OK"), "{user} at {addr}: {t}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    let exists = r
        .iter()
        .find_map(|l| {
            l.strip_prefix("* ")?
                .strip_suffix(" EXISTS")?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    let mut out = Vec::new();
    if exists > 0 {
        let r = c
            .imap("f", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .expect("fetch");
        for l in r.iter().flat_map(|l| l.split("\r\n")) {
            if let Some(s) = l.strip_prefix("Subject: ") {
                out.push(s.trim().to_string());
            }
        }
    }
    c.imap("z", "LOGOUT").ok();
    out
}

fn rcpt_then_data(addr: std::net::SocketAddr, rcpts: &[&str], message: &[u8]) -> Vec<String> {
    let mut c = LineConn::connect(addr).expect("connect lmtp");
    c.line().expect("greeting");
    c.send("LHLO tests.local").unwrap();
    smtp_reply(&mut c, "250").unwrap();
    c.send("MAIL FROM:<sender@example.net>").unwrap();
    smtp_reply(&mut c, "250").unwrap();
    let mut out = Vec::new();
    let mut accepted = 0;
    for r in rcpts {
        c.send(&format!("RCPT TO:<{r}>")).unwrap();
        let reply = smtp_reply(&mut c, "").unwrap();
        if reply.starts_with("250") {
            accepted += 1;
        }
        out.push(reply);
    }
    if accepted > 0 {
        c.send("DATA").unwrap();
        smtp_reply(&mut c, "354").unwrap();
        c.send_raw(&dot_stuff(message)).unwrap();
        c.send_raw(b".\r\n").unwrap();
        for _ in 0..accepted {
            out.push(smtp_reply(&mut c, "").unwrap());
        }
    }
    c.send("QUIT").ok();
    out
}

#[test]
fn three_nodes_route_imap_pop3_and_lmtp_by_the_sql_host_column() {
    if missing_tool("sqlite3") {
        return;
    }
    let a = backend();
    let mut b = backend();
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_node(
        dir.path(),
        &[
            ("alice@example.org", "alicepw", &a),
            ("bob@example.org", "bobpw", &b),
            // The proxy lets dave through; backend A does not know him.
            ("dave@example.org", "davepw", &a),
            ("demo@example.org", "demo", &b),
        ],
    );
    let p_imap = proxy.addr(Proto::Imap);

    // LMTP through the proxy: one transaction, two backends, a reply per recipient.
    let replies = rcpt_then_data(
        proxy.addr(Proto::Lmtp),
        &["alice@example.org", "bob@example.org"],
        &sample_message("for alice and bob", "routed by the proxy"),
    );
    assert_eq!(replies.len(), 4, "{replies:?}");
    assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    rcpt_then_data(
        proxy.addr(Proto::Lmtp),
        &["alice@example.org"],
        &sample_message("only alice", "x"),
    );
    // Landed where the table says: on A for alice, on B for bob, and nowhere else.
    assert_eq!(
        subjects(a.addr(Proto::Imap), "alice", "alicepw"),
        vec!["for alice and bob", "only alice"]
    );
    assert_eq!(
        subjects(b.addr(Proto::Imap), "bob", "bobpw"),
        vec!["for alice and bob"]
    );
    assert!(subjects(b.addr(Proto::Imap), "alice", "alicepw").is_empty());
    assert!(subjects(a.addr(Proto::Imap), "bob", "bobpw").is_empty());

    // IMAP through the proxy: the backend's reply (with its CAPABILITY code) under the
    // client's tag, then the backend's mailbox.
    let (mut c, t) = imap_login(p_imap, "alice", "alicepw");
    assert!(t.starts_with("a OK [CAPABILITY "), "{t}");
    let r = c.imap("s", "SELECT INBOX").unwrap();
    assert!(r.iter().any(|l| l == "* 2 EXISTS"), "{r:?}");
    let r = c
        .imap("f", "FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .unwrap();
    assert!(r.iter().any(|l| l.contains("only alice")), "{r:?}");
    let r = c.imap("z", "LOGOUT").unwrap();
    assert!(tagged(&r).starts_with("z OK"), "{r:?}");
    assert_eq!(subjects(p_imap, "bob", "bobpw"), vec!["for alice and bob"]);
    // The backend was told where the client came from (login_trusted_networks).
    assert!(
        a.log_text()
            .contains("imap-login: proxied connection from 127.0.0.1:"),
        "{}",
        tail(&a.log_text(), 30)
    );

    // POP3 through the proxy.
    let mut c = pop3_login(proxy.addr(Proto::Pop3), "bob", "bobpw").expect("pop3 via proxy");
    c.send("STAT").unwrap();
    let stat = c.line().unwrap();
    assert!(stat.starts_with("+OK 1 "), "{stat}");
    c.send("RETR 1").unwrap();
    let msg = String::from_utf8_lossy(&c.pop3_multiline().unwrap()).to_string();
    assert!(msg.contains("Subject: for alice and bob"), "{msg}");
    c.send("QUIT").unwrap();
    assert!(c.line().unwrap().starts_with("+OK"));
    assert!(b.log_text().contains("pop3-login: proxied connection from"));

    // STARTTLS towards the backend (starttls=any-cert), IMAP and POP3.
    let (mut c, t) = imap_login(p_imap, "demo", "demo");
    assert!(t.starts_with("a OK"), "{t}");
    let r = c.imap("s", "SELECT INBOX").unwrap();
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.imap("z", "LOGOUT").ok();
    let mut c = pop3_login(proxy.addr(Proto::Pop3), "demo", "demo").expect("pop3 demo");
    c.send("QUIT").unwrap();
    c.line().ok();
    let b_log = b.log_text();
    assert!(
        b_log.contains("imap-login: Login: user=<demo>") && b_log.contains("TLS, session="),
        "{}",
        tail(&b_log, 30)
    );
    assert!(
        b_log.contains(
            "pop3-login: Login: user=<demo>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS"
        ),
        "{}",
        tail(&b_log, 30)
    );

    // A wrong password: refused by the proxy's passdb. A password the backend refuses:
    // the same failure.
    let (_, t) = imap_login(p_imap, "alice", "wrong");
    assert!(t.starts_with("a NO [AUTHENTICATIONFAILED]"), "{t}");
    let (_, t) = imap_login(p_imap, "dave", "davepw");
    assert!(t.starts_with("a NO [AUTHENTICATIONFAILED]"), "{t}");
    let err = pop3_login(proxy.addr(Proto::Pop3), "alice", "wrong")
        .err()
        .unwrap();
    assert!(err.to_string().contains("-ERR [AUTH]"), "{err}");

    // Backend B goes down: bob gets temporary failures, alice is unaffected.
    b.stop();
    let (_, t) = imap_login(p_imap, "bob", "bobpw");
    assert!(t.starts_with("a NO [UNAVAILABLE]"), "{t}");
    let err = pop3_login(proxy.addr(Proto::Pop3), "bob", "bobpw")
        .err()
        .unwrap();
    assert!(err.to_string().contains("-ERR [SYS/TEMP]"), "{err}");
    let replies = rcpt_then_data(
        proxy.addr(Proto::Lmtp),
        &["alice@example.org", "bob@example.org"],
        &sample_message("while B is down", "x"),
    );
    assert!(replies[2].starts_with("250"), "{replies:?}");
    assert!(replies[3].starts_with("451 4.4.0"), "{replies:?}");
    let (_, t) = imap_login(p_imap, "alice", "alicepw");
    assert!(t.starts_with("a OK"), "{t}");
    let log = proxy.log_text();
    let b_at = format!("127.0.0.1:{}", b.ports.imap);
    assert!(
        log.contains(&format!("proxy(bob@example.org): Login failed to {b_at}")),
        "{}",
        tail(&log, 30)
    );
    // The counters.
    let metrics = http_get(proxy.addr(Proto::Http), "/metrics");
    assert!(metrics.contains("node_proxy_sessions_total"), "{metrics}");
    assert!(
        metrics.contains("node_proxy_backend_failures_total"),
        "{metrics}"
    );
}

/// sieve-connect through `addr` as `user` (password on stdin; STARTTLS to the proxy,
/// whose certificate is self-signed): its output, and whether it succeeded.
fn sieve_connect(
    addr: std::net::SocketAddr,
    user: &str,
    pw: &str,
    args: &[&str],
) -> (bool, String) {
    let out = run(
        Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .args(["--user", user, "--passwordfd", "0", "--notlsverify"])
            .args(["--authmech", "PLAIN"])
            .args(args),
        Some(format!("{pw}\n").as_bytes()),
        Duration::from_secs(60),
    )
    .expect("sieve-connect");
    (out.status.success(), out.both())
}

/// A raw ManageSieve login (plaintext: loopback allows it): the greeting's lines, then the
/// reply to `AUTHENTICATE "PLAIN"`. The connection, to go on with.
fn sieve_login(addr: std::net::SocketAddr, user: &str, pw: &str) -> (LineConn, String) {
    use base64::Engine;
    let mut c = LineConn::connect(addr).expect("connect sieve");
    loop {
        let l = c.line().expect("greeting");
        if l.starts_with("OK") {
            break;
        }
    }
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"));
    c.send(&format!("AUTHENTICATE \"PLAIN\" \"{plain}\""))
        .unwrap();
    let reply = c.line().expect("authenticate reply");
    (c, reply)
}

#[test]
fn managesieve_through_the_proxy() {
    if missing_tool("sqlite3") || missing_tool("sieve-connect") {
        return;
    }
    let a = backend();
    let mut b = backend();
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_node(
        dir.path(),
        &[
            ("alice@example.org", "alicepw", &a),
            ("bob@example.org", "bobpw", &b),
            ("dave@example.org", "davepw", &a),
            ("demo@example.org", "demo", &b),
        ],
    );
    let p_sieve = proxy.addr(Proto::Sieve);
    let script = dir.path().join("routed.sieve");
    std::fs::write(
        &script,
        "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\r\n",
    )
    .unwrap();
    let script = script.display().to_string();

    // A real client through the proxy: upload, activate, list.
    for args in [
        &[
            "--upload",
            "--localsieve",
            &script,
            "--remotesieve",
            "routed",
        ][..],
        &["--activate", "--remotesieve", "routed"],
    ] {
        let (ok, out) = sieve_connect(p_sieve, "alice", "alicepw", args);
        assert!(
            ok,
            "{args:?}: {out}\n--- proxy ---\n{}",
            tail(&proxy.log_text(), 30)
        );
    }
    let (ok, list) = sieve_connect(p_sieve, "alice", "alicepw", &["--list"]);
    assert!(
        ok && list.contains("routed") && list.contains("ACTIVE"),
        "{list}"
    );
    // The script is on alice's backend, A, and not on B.
    let listed = |server: &Server, user: &str| {
        let out = server.admin(&["sieve", "list", "-u", user]);
        assert!(out.status.success(), "{}", out.both());
        out.stdout_text()
    };
    assert_eq!(listed(&a, "alice"), "routed ACTIVE\n");
    // Backend A trusts the proxy: XCLIENT told it where the client came from.
    assert!(
        a.log_text()
            .contains("managesieve-login: proxied connection from 127.0.0.1:"),
        "{}",
        tail(&a.log_text(), 30)
    );
    assert_eq!(listed(&b, "alice"), "");
    let log = proxy.log_text();
    assert!(
        log.contains(&format!(
            "managesieve-login: proxy(alice@example.org): started proxying to 127.0.0.1:{}",
            a.ports.sieve
        )),
        "{}",
        tail(&log, 30)
    );

    // Raw: bob lands on B (empty), and the backend's own OK goes to the client.
    let (mut c, r) = sieve_login(p_sieve, "bob", "bobpw");
    assert!(r.starts_with("OK"), "{r}");
    c.send("LISTSCRIPTS").unwrap();
    assert!(c.line().unwrap().starts_with("OK"));
    c.send("PUTSCRIPT \"bobs\" {5+}\r\nkeep;").unwrap();
    let r = c.line().unwrap();
    assert!(r.starts_with("OK"), "{r}");
    c.send("LOGOUT").unwrap();
    assert!(c.line().unwrap().starts_with("OK"));
    assert_eq!(listed(&b, "bob"), "bobs\n");
    assert_eq!(listed(&a, "bob"), "");

    // STARTTLS towards the backend (starttls=any-cert).
    let (mut c, r) = sieve_login(p_sieve, "demo", "demo");
    assert!(r.starts_with("OK"), "{r}");
    c.send("LOGOUT").unwrap();
    c.line().ok();
    let b_log = b.log_text();
    assert!(
        b_log.contains("managesieve-login: Login: user=<demo>, method=PLAIN")
            && b_log.contains("TLS, session="),
        "{}",
        tail(&b_log, 30)
    );

    // A wrong password (the proxy's passdb) and a password the backend refuses (dave):
    // the normal failure, not a temporary one.
    let (_, r) = sieve_login(p_sieve, "alice", "wrong");
    assert_eq!(r, "NO \"Authentication failed.\"");
    let (_, r) = sieve_login(p_sieve, "dave", "davepw");
    assert_eq!(r, "NO \"Authentication failed.\"");

    // B goes down: bob gets a temporary failure; alice is unaffected.
    b.stop();
    let (_, r) = sieve_login(p_sieve, "bob", "bobpw");
    assert!(r.starts_with("NO (TRYLATER)"), "{r}");
    let (ok, out) = sieve_connect(p_sieve, "bob", "bobpw", &["--list"]);
    assert!(!ok, "{out}");
    let (mut c, r) = sieve_login(p_sieve, "alice", "alicepw");
    assert!(r.starts_with("OK"), "{r}");
    c.send("LISTSCRIPTS").unwrap();
    assert_eq!(c.line().unwrap(), "\"routed\" ACTIVE");
    let log = proxy.log_text();
    assert!(
        log.contains(&format!(
            "managesieve-login: proxy(bob@example.org): Login failed to 127.0.0.1:{}",
            b.ports.sieve
        )),
        "{}",
        tail(&log, 30)
    );
    let metrics = http_get(proxy.addr(Proto::Http), "/metrics");
    for want in [
        "node_proxy_sessions_total{service=\"managesieve\"}",
        "node_proxy_backend_failures_total{service=\"managesieve\"",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("http connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).ok();
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One client's run: log in, select, then `rounds` of NOOP, FETCH of a body, STATUS;
/// the time of each command by name.
fn imap_workload(
    addr: std::net::SocketAddr,
    rounds: usize,
) -> std::collections::BTreeMap<&'static str, Vec<Duration>> {
    let mut times: std::collections::BTreeMap<&'static str, Vec<Duration>> = Default::default();
    let t0 = Instant::now();
    let (mut c, t) = imap_login(addr, "alice", "alicepw");
    assert!(t.starts_with("a OK"), "{t}");
    times.entry("LOGIN").or_default().push(t0.elapsed());
    let r = c.imap("s", "SELECT INBOX").unwrap();
    assert!(tagged(&r).starts_with("s OK"));
    for i in 0..rounds {
        for (name, cmd) in [
            ("NOOP", "NOOP".to_string()),
            ("FETCH", format!("FETCH {} (BODY.PEEK[])", i % 20 + 1)),
            ("STATUS", "STATUS INBOX (MESSAGES UNSEEN)".to_string()),
        ] {
            let t = Instant::now();
            let r = c.imap("c", &cmd).unwrap();
            assert!(tagged(&r).starts_with("c OK"), "{cmd}: {r:?}");
            times.entry(name).or_default().push(t.elapsed());
        }
    }
    c.imap("z", "LOGOUT").ok();
    times
}

#[test]
#[ignore = "a measurement: prints figures for docs/performance.md"]
fn proxy_latency_and_throughput() {
    if missing_tool("sqlite3") {
        return;
    }
    let a = backend();
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_node(dir.path(), &[("alice@example.org", "alicepw", &a)]);
    for i in 0..20 {
        let body = "x".repeat(4000);
        lmtp_deliver(
            a.addr(Proto::Lmtp),
            "s@example.net",
            &["alice@example.org"],
            &sample_message(&format!("m{i}"), &body),
        )
        .unwrap();
    }
    let rounds: usize = std::env::var("PROXY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let clients: usize = std::env::var("PROXY_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for (label, addr) in [
        ("direct", a.addr(Proto::Imap)),
        ("proxied", proxy.addr(Proto::Imap)),
    ] {
        // Warm-up (caches, first connections).
        imap_workload(addr, 20);
        let mut lat = imap_workload(addr, rounds);
        // Logins on their own: connect, greeting, LOGIN (at the proxy: its passdb lookup,
        // the backend connection and the backend's login), LOGOUT.
        let logins = lat.entry("LOGIN").or_default();
        logins.clear();
        for _ in 0..50 {
            let t = Instant::now();
            let (mut c, r) = imap_login(addr, "alice", "alicepw");
            assert!(r.starts_with("a OK"), "{r}");
            logins.push(t.elapsed());
            c.imap("z", "LOGOUT").ok();
        }
        let t = Instant::now();
        let all: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..clients)
                .map(|_| s.spawn(move || imap_workload(addr, rounds)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let secs = t.elapsed().as_secs_f64();
        let ops: usize = all
            .iter()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| **k != "LOGIN")
                    .map(|(_, v)| v.len())
                    .sum::<usize>()
            })
            .sum();
        for (name, mut v) in lat {
            v.sort();
            println!(
                "proxy-bench {label:8} {name:6} n={:5} p50={:7.3} ms p99={:7.3} ms",
                v.len(),
                percentile(&v, 0.5).as_secs_f64() * 1e3,
                percentile(&v, 0.99).as_secs_f64() * 1e3
            );
        }
        println!(
            "proxy-bench {label:8} throughput: {clients} clients x {rounds} rounds x 3 commands: {ops} ops in {secs:.2} s = {:.0} ops/s",
            ops as f64 / secs
        );
    }
}
