//! The rough edges a Dovecot admin hits first (issue 15), each against the real `node`
//! binary: a closed pipe ends a command quietly, SIGUSR1 and `node log reopen` reopen the log
//! after logrotate without dropping clients, passwd-file `nologin`/`allow_nets` hold at login,
//! `node pw` refuses an empty password, `node sync` refuses a user the userdb does not know,
//! admin commands without a configuration say so instead of making ./data, `config check`
//! names a malformed passwd-file line, refused LMTP recipients and lock-outs are logged, and
//! the failed-login limiter has a loopback exemption and a command to clear an address.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tests::*;

fn spec(extra: &str) -> ServerSpec {
    ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
        extra_toml: extra.to_string(),
        ..Default::default()
    }
}

fn imap_login(server: &Server, user: &str, pass: &str) -> (LineConn, String) {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", &format!("LOGIN {user} {pass}")).expect("login");
    let t = tagged(&r).to_string();
    (c, t)
}

fn pop3_pass(server: &Server, user: &str, pass: &str) -> String {
    let mut p = LineConn::connect(server.addr(Proto::Pop3)).expect("connect pop3");
    p.line().expect("greeting");
    p.send(&format!("USER {user}")).expect("user");
    let r = p.line().expect("user reply");
    if r.starts_with("-ERR") {
        return r;
    }
    p.send(&format!("PASS {pass}")).expect("pass");
    p.line().expect("pass reply")
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deliver(server: &Server, to: &str, subject: &str, body: &str) -> Vec<String> {
    lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.org",
        &[to],
        &sample_message(subject, body),
    )
    .expect("lmtp")
}

/// Runs `node -c CONFIG ARGS | READER` in bash; the node's exit code and its stderr.
fn piped(server: &Server, args: &str, reader: &str) -> (i32, String) {
    let script = format!(
        "{node} -c {cfg} {args} 2>{err} | {reader}; echo ${{PIPESTATUS[0]}}",
        node = node_bin().display(),
        cfg = server.paths.config.display(),
        err = server.paths.dir.join("pipe.err").display(),
    );
    let out = run(
        Command::new("bash").arg("-c").arg(&script),
        None,
        Duration::from_secs(60),
    )
    .expect("bash");
    let code: i32 = out
        .stdout_text()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1);
    let err = std::fs::read_to_string(server.paths.dir.join("pipe.err")).unwrap_or_default();
    (code, err)
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    let server = Server::start(spec("")).expect("start node");
    // Enough output that it cannot all be written before the reader is gone.
    let big = "x".repeat(200) + "\r\n";
    for i in 0..5 {
        let r = deliver(
            &server,
            "demo@example.org",
            &format!("m{i}"),
            &big.repeat(500),
        );
        assert!(r[0].starts_with("250"), "{r:?}");
    }
    let (_c, t) = imap_login(&server, "demo", "demo");
    assert!(t.starts_with("l OK"), "{t}");
    let commands = [
        "user list",
        "user demo",
        "config",
        "config -n",
        "auth test demo demo",
        "auth lookup demo",
        "mailbox list -u demo",
        "mailbox status -u demo",
        "search -u demo all",
        "fetch -u demo 'uid text' all",
        "quota get -u demo",
        "who",
        "stats",
        "--json user list",
    ];
    // A reader that closed its end before the node writes: every write fails with EPIPE.
    for args in commands {
        let (code, err) = piped(&server, args, "(exec 0<&-; sleep 2)");
        assert!(
            code == 0 || code == 141,
            "node {args} | closed reader: exit {code}, stderr: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "node {args}: {err}"
        );
    }
    // The habit itself: `| head -1` prints the first line and the node stays quiet.
    let (code, err) = piped(&server, "fetch -u demo text all", "head -1 >/dev/null");
    assert!(code == 0 || code == 141, "exit {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn sigusr1_and_log_reopen_follow_logrotate_without_dropping_clients() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let server = Server::start(spec(&format!("log_path = {:?}", log.display().to_string())))
        .expect("start node");
    let (mut c, t) = imap_login(&server, "demo", "demo");
    assert!(t.starts_with("l OK"), "{t}");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_for(
        "the ready line in log_path",
        Duration::from_secs(10),
        || read(&log).contains("node: ready"),
    );

    for (round, how) in ["SIGUSR1", "node log reopen"].iter().enumerate() {
        let rotated = dir.path().join(format!("mail.log.{round}"));
        std::fs::rename(&log, &rotated).unwrap();
        if *how == "SIGUSR1" {
            server.signal(libc::SIGUSR1);
        } else {
            let out = server.admin(&["log", "reopen"]);
            assert!(out.status.success(), "{}", out.both());
        }
        wait_for(
            &format!("{how}: a new {}", log.display()),
            Duration::from_secs(10),
            || read(&log).contains("reopened"),
        );
        // A new line (a failed login) goes to the new file, not the rotated one.
        let marker = format!("nosuchuser{round}");
        let (_x, t) = imap_login(&server, &marker, "wrong");
        assert!(t.starts_with("l NO"), "{t}");
        wait_for(
            "the failed login in the new log",
            Duration::from_secs(10),
            || read(&log).contains(&marker),
        );
        assert!(
            !read(&rotated).contains(&marker),
            "{how}: still writing the rotated file"
        );
        // The open session was not disturbed.
        let r = c.imap("n", "NOOP").expect("noop after reopen");
        assert!(tagged(&r).starts_with("n OK"), "{how}: {r:?}");
    }
}

#[test]
fn nologin_and_allow_nets_are_enforced_at_login_and_in_auth_test() {
    let server = Server::start(spec("auth_failure_delay = \"0\"")).expect("start node");
    let mut passwd = std::fs::read_to_string(&server.paths.passwd).unwrap();
    passwd.push_str(
        "off:{PLAIN}offpw::::::nologin reason=moved_to_the_new_server\n\
         lan:{PLAIN}lanpw::::::allow_nets=192.0.2.0/24\n\
         lo:{PLAIN}lopw::::::allow_nets=127.0.0.0/8,::1\n",
    );
    std::fs::write(&server.paths.passwd, passwd).unwrap();

    let (_c, t) = imap_login(&server, "off", "offpw");
    assert!(
        t.starts_with("l NO"),
        "nologin user logged in over IMAP: {t}"
    );
    assert!(pop3_pass(&server, "off", "offpw").starts_with("-ERR"));
    let (_c, t) = imap_login(&server, "lan", "lanpw");
    assert!(t.starts_with("l NO"), "allow_nets let 127.0.0.1 in: {t}");
    assert!(pop3_pass(&server, "lan", "lanpw").starts_with("-ERR"));
    let (_c, t) = imap_login(&server, "lo", "lopw");
    assert!(
        t.starts_with("l OK"),
        "allow_nets refused a listed network: {t}"
    );
    assert!(pop3_pass(&server, "lo", "lopw").starts_with("+OK"));
    wait_for("the refusals in the log", Duration::from_secs(10), || {
        let l = server.log_text();
        l.contains("Account is disabled (nologin): moved_to_the_new_server")
            && l.contains("allow_nets check failed: IP 127.0.0.1")
    });

    let out = server.admin(&["auth", "test", "off", "offpw"]);
    assert_eq!(out.status.code(), Some(77), "{}", out.both());
    assert!(out.stderr_text().contains("nologin"), "{}", out.both());
    let out = server.admin(&["auth", "test", "lan", "lanpw"]);
    assert_eq!(out.status.code(), Some(77), "{}", out.both());
    assert!(
        out.stderr_text().contains("'local' missing"),
        "{}",
        out.both()
    );
    let out = server.admin(&["auth", "test", "-x", "rip=192.0.2.9", "lan", "lanpw"]);
    assert!(out.status.success(), "{}", out.both());
    let out = server.admin(&["auth", "test", "-x", "rip=203.0.113.1", "lan", "lanpw"]);
    assert_eq!(out.status.code(), Some(77), "{}", out.both());
    // -D says why, step by step.
    let out = server.admin(&["auth", "test", "-D", "off", "offpw"]);
    let err = out.stderr_text();
    assert!(
        err.contains("found entry") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn pw_refuses_an_empty_password() {
    let node = |args: &[&str], stdin: &[u8]| {
        run(
            Command::new(node_bin()).args(args),
            Some(stdin),
            Duration::from_secs(60),
        )
        .unwrap()
    };
    for (args, stdin) in [
        (vec!["pw", "-s", "SHA512-CRYPT"], &b""[..]),
        (vec!["pw", "-s", "SHA512-CRYPT"], &b"\n"[..]),
        (vec!["pw", "-s", "PLAIN", "-p", ""], &b""[..]),
    ] {
        let out = node(&args, stdin);
        assert!(!out.status.success(), "{args:?}: {}", out.both());
        assert!(
            out.stdout.is_empty(),
            "a hash was printed: {}",
            out.stdout_text()
        );
        assert!(
            out.stderr_text()
                .contains("Empty passwords are not allowed"),
            "{}",
            out.both()
        );
    }
    let out = node(&["pw", "-s", "PLAIN"], b"secret\n");
    assert!(out.status.success(), "{}", out.both());
    assert_eq!(out.stdout_text().trim(), "{PLAIN}secret");
}

#[test]
fn sync_refuses_a_user_the_userdb_does_not_know_and_all_reports_failures() {
    let server = Server::start(spec("")).expect("start node");
    let out = server.admin(&["sync", "-u", "nosuchuser"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    assert!(
        out.stderr_text().contains("doesn't exist in the userdb"),
        "{}",
        out.both()
    );
    // Nothing was created for it.
    let out = server.admin(&["user", "list"]);
    assert!(!out.stdout_text().contains("nosuchuser"), "{}", out.both());
    assert!(!server.paths.data.join("users").join("nosuchuser").exists());
    // -A: every user fails here (no replication configured) and the exit code says so.
    let (_c, t) = imap_login(&server, "demo", "demo");
    assert!(t.starts_with("l OK"), "{t}");
    let out = server.admin(&["sync", "-A"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("users failed"), "{}", out.both());
}

#[test]
fn admin_commands_without_a_configuration_say_so_instead_of_making_data() {
    if Path::new("/etc/node/node.toml").exists() {
        eprintln!("skipped: /etc/node/node.toml exists here and is the default");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["mailbox", "list", "-u", "demo"][..],
        &["user", "list"],
        &["quota", "get", "-u", "demo"],
        &["auth", "test", "demo", "demo"],
    ] {
        let out = run(
            Command::new(node_bin())
                .args(args)
                .current_dir(dir.path())
                .env_remove("NODE_CONFIG"),
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.both());
        assert!(
            out.stderr_text().contains("no configuration: pass -c FILE"),
            "{args:?}: {}",
            out.both()
        );
        assert!(!dir.path().join("data").exists(), "{args:?} made ./data");
    }
    // The embedded default's settings can still be shown: that creates nothing.
    let out = run(
        Command::new(node_bin())
            .args(["config", "ssl"])
            .current_dir(dir.path())
            .env_remove("NODE_CONFIG"),
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.both());
    assert!(!dir.path().join("data").exists());
}

#[test]
fn operations_doc_names_the_embedded_passwd_file_the_code_uses() {
    let doc = std::fs::read_to_string(workspace_root().join("docs/operations.md")).unwrap();
    assert!(
        doc.contains("`./data/passwd`"),
        "docs/operations.md lost the path"
    );
    assert!(
        !doc.contains("./data/users"),
        "docs/operations.md names ./data/users"
    );
    // And the code: the embedded default's passdb, as `node config` prints it.
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(node_bin())
            .args(["config", "passdb"])
            .current_dir(dir.path())
            .env_remove("NODE_CONFIG"),
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(
        out.stdout_text().contains("./data/passwd"),
        "{}",
        out.both()
    );
}

#[test]
fn config_check_names_a_malformed_passwd_file_line() {
    let server = Server::start(spec("")).expect("start node");
    let good = server.admin(&["config", "check"]);
    assert!(good.status.success(), "{}", good.both());
    let mut passwd = std::fs::read_to_string(&server.paths.passwd).unwrap();
    let bad_line = passwd.lines().count() + 1;
    passwd.push_str("$6$pasted-hash-without-a-user\n");
    std::fs::write(&server.paths.passwd, passwd).unwrap();
    let out = server.admin(&["config", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let err = out.stderr_text();
    assert!(err.contains(&format!("line {bad_line}")), "{err}");
    assert!(err.contains("no ':'"), "{err}");
    // The running node refuses logins from the broken file (temporary failure), rather than
    // taking the line for a user.
    let (_c, t) = imap_login(&server, "$6$pasted-hash-without-a-user", "x");
    assert!(t.starts_with("l NO"), "{t}");
}

#[test]
fn refused_lmtp_recipients_are_logged() {
    let server = Server::start(spec("quota_rule = \"*:messages=1\"")).expect("start node");
    let refused = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.org",
        &["nobody@example.org"],
        &sample_message("s", "b"),
    );
    assert!(
        refused.is_err(),
        "an unknown recipient was accepted: {refused:?}"
    );
    let r = deliver(&server, "demo@example.org", "first", "b");
    assert!(r[0].starts_with("250"), "{r:?}");
    let r = deliver(&server, "demo@example.org", "second", "b");
    assert!(r[0].starts_with("552"), "{r:?}");
    wait_for("both refusals in the log", Duration::from_secs(10), || {
        let l = server.log_text();
        l.contains("RCPT TO refused: 550 5.1.1 <nobody@example.org>")
            && l.contains("Quota exceeded")
    });
}

#[test]
fn lockouts_are_logged_listed_and_cleared_and_loopback_can_be_exempt() {
    let server = Server::start(spec("auth_failure_limit = 3\nauth_failure_delay = \"0\""))
        .expect("start node");
    for _ in 0..3 {
        let (_c, t) = imap_login(&server, "demo", "wrong");
        assert!(t.starts_with("l NO"), "{t}");
    }
    let (_c, t) = imap_login(&server, "demo", "demo");
    assert!(t.starts_with("l NO"), "locked-out address logged in: {t}");
    wait_for("the lock-out line", Duration::from_secs(10), || {
        server
            .log_text()
            .contains("rip=127.0.0.1 locked out: 3 failed logins")
    });
    let out = server.admin(&["--json", "penalty"]);
    assert!(out.status.success(), "{}", out.both());
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    assert_eq!(v[0]["ip"], "127.0.0.1", "{v}");
    assert_eq!(v[0]["locked"], true, "{v}");
    let out = server.admin(&["penalty", "clear", "127.0.0.1"]);
    assert!(out.status.success(), "{}", out.both());
    let (_c, t) = imap_login(&server, "demo", "demo");
    assert!(
        t.starts_with("l OK"),
        "still locked out after penalty clear: {t}"
    );
    drop(server);

    let server = Server::start(spec(
        "auth_failure_limit = 3\nauth_failure_delay = \"0\"\nauth_failure_limit_exempt_nets = [\"127.0.0.0/8\", \"::1\"]",
    ))
    .expect("start node");
    for _ in 0..6 {
        let (_c, t) = imap_login(&server, "demo", "wrong");
        assert!(t.starts_with("l NO"), "{t}");
    }
    let (_c, t) = imap_login(&server, "demo", "demo");
    assert!(
        t.starts_with("l OK"),
        "an exempt network was locked out: {t}"
    );
    assert!(!server.log_text().contains("locked out"));
}

#[test]
fn certificate_mismatch_between_nodes_says_what_to_do() {
    let mut c =
        tests::cluster::Cluster::start(tests::cluster::ClusterSpec::default()).expect("cluster");
    let out = c.nodes[0].admin(&["config", "-H", "cluster.certs_dir"]);
    assert!(out.status.success(), "{}", out.both());
    let certs_dir = std::path::PathBuf::from(out.stdout_text().trim());
    // Node 1 now trusts another CA than the one node 2's certificate comes from.
    let other = tempfile::tempdir().unwrap();
    let cfg = other.path().join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "[cluster]\ncerts_dir = {:?}\n",
            other.path().display().to_string()
        ),
    )
    .unwrap();
    let out = run(
        Command::new(node_bin())
            .arg("-c")
            .arg(&cfg)
            .args(["cluster", "init"]),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.both());
    c.nodes[0].stop();
    std::fs::copy(other.path().join("ca.pem"), certs_dir.join("ca.pem")).unwrap();
    c.nodes[0]
        .restart(&[Proto::Imap, Proto::Lmtp])
        .expect("restart node 1");
    let r = deliver(&c.nodes[0], "alice@example.org", "after the CA change", "b");
    assert!(r[0].starts_with("250"), "{r:?}");
    let t0 = Instant::now();
    loop {
        let out = c.nodes[0].admin(&["replication", "status"]);
        let text = out.stdout_text();
        if text.contains("what to do:") {
            assert!(text.contains("same cluster CA"), "{text}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no hint in: {}",
            out.both()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = c.nodes[0].admin(&["sync", "-u", "alice"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("node cluster cert"),
        "{}",
        out.both()
    );
    // node doctor names it too.
    let out = c.nodes[0].admin(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let text = out.stdout_text();
    assert!(
        text.contains("FAIL peer 2") && text.contains("same cluster CA"),
        "{text}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    let server = Server::start(spec(&format!(
        "log_path = {:?}\nlog_format = \"json\"",
        log.display().to_string()
    )))
    .expect("start node");
    let (_c, t) = imap_login(&server, "demo", "wrong");
    assert!(t.starts_with("l NO"), "{t}");
    wait_for(
        "the failed login in the JSON log",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("Password mismatch")
        },
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut saw = false;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        saw |= v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Password mismatch"))
            && v["fields"]["rip"] == "127.0.0.1";
    }
    assert!(saw, "{text}");
}

/// `node --json replication status` on node `i`: alice's lag at its one peer, if any.
fn alice_lag(c: &tests::cluster::Cluster, i: usize) -> Option<serde_json::Value> {
    let out = c.nodes[i].admin(&["--json", "replication", "status"]);
    assert!(out.status.success(), "{}", out.both());
    let v: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    v["peers"][0]["behind"]
        .as_array()
        .and_then(|b| b.iter().find(|u| u["user"] == "alice").cloned())
}

#[test]
fn replication_status_measures_a_backlog_and_says_when_it_is_an_upper_bound() {
    let mut c =
        tests::cluster::Cluster::start(tests::cluster::ClusterSpec::default()).expect("cluster");
    let r = deliver(&c.nodes[0], "alice@example.org", "warm-up", "b");
    assert!(r[0].starts_with("250"), "{r:?}");
    wait_for("alice in sync", Duration::from_secs(30), || {
        alice_lag(&c, 0).is_none()
    });
    c.nodes[1].stop();
    let body = "y".repeat(100) + "\r\n";
    for i in 0..3 {
        let r = deliver(
            &c.nodes[0],
            "alice@example.org",
            &format!("b{i}"),
            &body.repeat(100),
        );
        assert!(r[0].starts_with("250"), "{r:?}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let lag = alice_lag(&c, 0).expect("alice is behind while node 2 is down");
    assert!(lag["records"].as_u64().unwrap() >= 3, "{lag}");
    assert!(lag["bytes"].as_u64().unwrap() >= 30_000, "{lag}");
    assert!(lag["seconds"].as_f64().unwrap() >= 1.0, "{lag}");
    assert_eq!(lag["peer_state_known"], true, "{lag}");

    // Restarted while the peer is still down: what the peer has is not known any more, and
    // the status says its count is an upper bound instead of passing it off as exact.
    c.nodes[0]
        .restart(&[Proto::Imap, Proto::Lmtp])
        .expect("restart node 1");
    let lag = alice_lag(&c, 0).expect("alice is behind");
    assert_eq!(lag["peer_state_known"], false, "{lag}");
    assert!(lag["bytes"].as_u64().unwrap() >= 30_000, "{lag}");
    let text = c.nodes[0].admin(&["replication", "status"]).stdout_text();
    assert!(text.contains("alice records<="), "{text}");
    assert!(text.contains("upper bound"), "{text}");

    c.nodes[1]
        .restart(&[Proto::Imap, Proto::Lmtp])
        .expect("restart node 2");
    wait_for("the backlog shipped", Duration::from_secs(30), || {
        alice_lag(&c, 0).is_none()
    });
}
