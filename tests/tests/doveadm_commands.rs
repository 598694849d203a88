//! The doveadm-style admin commands (issue 15) against a running node, each checked through
//! an IMAP client as well, with their failure paths: unknown user, missing mailbox, bad search
//! key or fetch field, bad config key, an admin socket the caller may not open. And in a
//! two-node cluster with `replicated` durability, an admin's change reaches the peer like a
//! client's (the commands write through the sessions' write path).

use std::process::Command;
use std::time::{Duration, Instant};
use tests::cluster::{Cluster, ClusterSpec};
use tests::*;

fn start() -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: "auth_failure_delay = \"0\"".into(),
        ..Default::default()
    })
    .expect("start node")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", out.both());
    out.stdout_text()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("{e}: {}", out.both()))
}

fn login(server: &Server, user: &str, pass: &str) -> LineConn {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", &format!("LOGIN {user} {pass}")).expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    c
}

fn deliver(server: &Server, subject: &str) {
    let r = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "s@example.org",
        &["demo@example.org"],
        &sample_message(subject, "body text"),
    )
    .expect("lmtp");
    assert!(r[0].starts_with("250"), "{r:?}");
}

fn imap_ok(c: &mut LineConn, cmd: &str) -> Vec<String> {
    let r = c.imap("t", cmd).expect(cmd);
    assert!(tagged(&r).starts_with("t OK"), "{cmd}: {r:?}");
    r
}

#[test]
fn user_and_auth_lookups() {
    let server = start();
    let out = server.admin(&["user", "demo"]);
    let text = ok(&out);
    assert!(
        text.starts_with("field\tvalue\n") && text.contains("user\tdemo"),
        "{text}"
    );
    let v = json(&server.admin(&["--json", "user", "alice"]));
    assert_eq!(v[0]["user"], "alice", "{v}");
    let out = server.admin(&["user", "nosuchuser"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    assert!(
        out.stderr_text().contains("doesn't exist"),
        "{}",
        out.both()
    );
    let text = ok(&server.admin(&["user", "*o*"]));
    let names: Vec<&str> = text.lines().collect();
    assert_eq!(names, vec!["bob", "demo"], "{text}");

    let text = ok(&server.admin(&["auth", "lookup", "bob"]));
    assert!(text.contains("password    : {PLAIN}bobpw"), "{text}");
    let out = server.admin(&["auth", "lookup", "nosuchuser"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    let v = json(&server.admin(&["--json", "auth", "test", "demo", "demo"]));
    assert_eq!(v["passdb"], "ok", "{v}");
    let out = server.admin(&["auth", "test", "demo", "wrong"]);
    assert_eq!(out.status.code(), Some(77), "{}", out.both());

    // A cached login is forgotten by `auth cache flush`.
    drop(login(&server, "demo", "demo"));
    let v = json(&server.admin(&["--json", "auth", "cache", "flush"]));
    assert!(v["flushed"].as_u64().unwrap_or(0) >= 1, "{v}");
    let v = json(&server.admin(&["--json", "auth", "cache", "flush"]));
    assert_eq!(v["flushed"], 0, "{v}");
}

#[test]
fn mailbox_commands_are_what_imap_sees() {
    let server = start();
    let mut c = login(&server, "demo", "demo");
    ok(&server.admin(&[
        "mailbox",
        "create",
        "-u",
        "demo",
        "-s",
        "Projects",
        "Work/2024",
    ]));
    let r = imap_ok(&mut c, "LIST \"\" \"*\"").join("\n");
    assert!(r.contains("\"Projects\"") || r.contains(" Projects"), "{r}");
    assert!(r.contains("Work/2024"), "{r}");
    let r = imap_ok(&mut c, "LSUB \"\" \"*\"").join("\n");
    assert!(r.contains("Projects"), "{r}");
    ok(&server.admin(&["mailbox", "unsubscribe", "-u", "demo", "Projects"]));
    let r = imap_ok(&mut c, "LSUB \"\" \"*\"").join("\n");
    assert!(!r.contains("Projects"), "{r}");
    ok(&server.admin(&["mailbox", "subscribe", "-u", "demo", "Projects"]));
    // doveadm's shape: 'FIELDS' MAILBOX_MASK, and -f json.
    let text = ok(&server.admin(&["mailbox", "status", "-u", "demo", "messages vsize", "INBOX"]));
    assert_eq!(text, "messages=0 vsize=0\n");
    let text = ok(&server.admin(&["mailbox", "status", "-u", "demo", "all", "Work*"]));
    assert!(
        text.starts_with("Work/2024 messages=0 unseen=0 uidnext=1"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    let v = json(&server.admin(&["-f", "json", "mailbox", "status", "-u", "demo", "guid", "%"]));
    assert!(v[0]["result"].as_array().unwrap().len() >= 5, "{v}");
    let out = server.admin(&["mailbox", "status", "-u", "demo", "colour", "INBOX"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("unknown status field"),
        "{}",
        out.both()
    );
    ok(&server.admin(&["mailbox", "rename", "-u", "demo", "Work/2024", "Work/2025"]));
    let list = ok(&server.admin(&["mailbox", "list", "-u", "demo"]));
    assert!(
        list.contains("Work/2025") && !list.contains("Work/2024"),
        "{list}"
    );
    ok(&server.admin(&["mailbox", "delete", "-u", "demo", "Work/2025"]));
    let r = imap_ok(&mut c, "LIST \"\" \"*\"").join("\n");
    assert!(!r.contains("Work/2025"), "{r}");
    let v = json(&server.admin(&["--json", "mailbox", "status", "-u", "demo", "Projects"]));
    assert_eq!(v[0]["result"][0]["messages"], 0, "{v}");

    // Failure paths: a missing mailbox, an unknown user (nothing created for it).
    let out = server.admin(&["mailbox", "delete", "-u", "demo", "NoSuchBox"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("NoSuchBox"), "{}", out.both());
    let out = server.admin(&["mailbox", "rename", "-u", "demo", "NoSuchBox", "Other"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let out = server.admin(&["mailbox", "create", "-u", "nosuchuser", "X"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    let out = server.admin(&["user", "list"]);
    assert!(!ok(&out).contains("nosuchuser"));
}

#[test]
fn search_fetch_flags_copy_move_expunge() {
    let server = start();
    for s in ["first", "second", "third"] {
        deliver(&server, s);
    }
    let mut c = login(&server, "demo", "demo");
    let v = json(&server.admin(&[
        "--json", "search", "-u", "demo", "mailbox", "INBOX", "subject", "second",
    ]));
    let hits = v[0]["result"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["uid"], 2, "{v}");
    let text = ok(&server.admin(&["search", "-u", "demo", "all"]));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.split(' ').count() == 2), "{text}");

    let text = ok(&server.admin(&["fetch", "-u", "demo", "uid hdr.subject flags", "uid", "3"]));
    assert!(
        text.contains("uid: 3") && text.contains("hdr.subject: third"),
        "{text}"
    );
    let text = ok(&server.admin(&["fetch", "-u", "demo", "body", "subject", "first"]));
    assert!(text.contains("body text"), "{text}");

    ok(&server.admin(&[
        "flags",
        "add",
        "-u",
        "demo",
        "\\Flagged $Work",
        "uid",
        "1:2",
    ]));
    imap_ok(&mut c, "SELECT INBOX");
    let r = imap_ok(&mut c, "UID FETCH 1:* (FLAGS)");
    let flags_of = |uid: u32| {
        r.iter()
            .find(|l| l.contains(&format!("UID {uid} ")) || l.contains(&format!("UID {uid})")))
            .cloned()
            .unwrap_or_default()
    };
    for uid in [1, 2] {
        let l = flags_of(uid);
        assert!(
            l.contains("\\Flagged") && l.contains("$Work"),
            "uid {uid}: {r:?}"
        );
    }
    assert!(!flags_of(3).contains("\\Flagged"), "{r:?}");
    let v = json(&server.admin(&["--json", "search", "-u", "demo", "flagged"]));
    assert_eq!(v[0]["result"].as_array().unwrap().len(), 2, "{v}");
    ok(&server.admin(&["flags", "remove", "-u", "demo", "\\Flagged", "uid", "1"]));
    ok(&server.admin(&["flags", "replace", "-u", "demo", "\\Seen", "uid", "3"]));
    let v = json(&server.admin(&["--json", "fetch", "-u", "demo", "uid flags", "all"]));
    let rows = v[0]["result"].as_array().unwrap();
    assert_eq!(rows[0]["flags"], "$Work", "{v}");
    assert!(
        rows[1]["flags"].as_str().unwrap().contains("\\Flagged"),
        "{v}"
    );
    assert_eq!(rows[2]["flags"], "\\Seen", "{v}");

    // copy/move need the destination; the error says how to make it.
    let out = server.admin(&["copy", "-u", "demo", "Projects", "all"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("mailbox create"),
        "{}",
        out.both()
    );
    ok(&server.admin(&["mailbox", "create", "-u", "demo", "Projects"]));
    ok(&server.admin(&[
        "copy", "-u", "demo", "Projects", "mailbox", "INBOX", "uid", "1",
    ]));
    ok(&server.admin(&[
        "move", "-u", "demo", "Projects", "mailbox", "INBOX", "uid", "2",
    ]));
    let status = imap_ok(&mut c, "STATUS Projects (MESSAGES)").join("\n");
    assert!(status.contains("MESSAGES 2"), "{status}");
    let noop = imap_ok(&mut c, "NOOP").join("\n");
    // The open session is told (after STATUS or NOOP, as the server chooses).
    assert!(
        status.contains("* 2 EXPUNGE") || noop.contains("* 2 EXPUNGE"),
        "the move did not reach the open session: {status}\n{noop}"
    );
    ok(&server.admin(&["expunge", "-u", "demo", "mailbox", "Projects", "all"]));
    let r = imap_ok(&mut c, "STATUS Projects (MESSAGES)").join("\n");
    assert!(r.contains("MESSAGES 0"), "{r}");

    // Bad queries and fields are errors that say what is wrong.
    let out = server.admin(&["fetch", "-u", "demo", "uid", "mailbox", "NoSuchBox", "all"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text()
            .contains("Mailbox NoSuchBox doesn't exist"),
        "{}",
        out.both()
    );
    let out = server.admin(&["search", "-u", "demo", "frobnicate"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("unknown search key"),
        "{}",
        out.both()
    );
    let out = server.admin(&["fetch", "-u", "demo", "uid nosuchfield", "all"]);
    assert!(
        out.stderr_text().contains("unknown fetch field"),
        "{}",
        out.both()
    );
    let out = server.admin(&["flags", "add", "-u", "demo", "\\Bogus", "all"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let out = server.admin(&["search", "-u", "nosuchuser", "all"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    // -A and masks: users with mail here.
    let text = ok(&server.admin(&["search", "-A", "all"]));
    assert!(text.lines().all(|l| l.starts_with("demo ")), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let masked = ok(&server.admin(&["search", "-u", "d*", "all"]));
    assert_eq!(masked, text);
    let out = server.admin(&["search", "-u", "x*", "all"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
}

#[test]
fn quota_who_kick_force_resync_stats() {
    let server = start();
    deliver(&server, "one");
    let v = json(&server.admin(&["--json", "quota", "get", "-u", "demo"]));
    assert_eq!(v[0]["result"]["messages"], 1, "{v}");
    ok(&server.admin(&["quota", "recalc", "-u", "demo"]));
    let text = ok(&server.admin(&["quota", "get", "-u", "demo"]));
    assert!(
        text.contains("MESSAGE") && text.contains("User quota"),
        "{text}"
    );
    ok(&server.admin(&["force-resync", "-u", "demo", "INBOX"]));

    let mut c = login(&server, "demo", "demo");
    let _other = login(&server, "alice", "alicepw");
    let v = json(&server.admin(&["--json", "who"]));
    let users: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["user"].as_str())
        .collect();
    assert!(users.contains(&"demo") && users.contains(&"alice"), "{v}");
    let text = ok(&server.admin(&["who", "demo"]));
    assert!(
        text.contains("demo") && text.contains("imap") && !text.contains("alice"),
        "{text}"
    );
    let text = ok(&server.admin(&["kick", "demo"]));
    assert!(text.contains("demo"), "{text}");
    // The kicked session is told (as Dovecot's kick shows it) and closed.
    c.set_timeout(Duration::from_secs(10)).unwrap();
    let t0 = Instant::now();
    let mut said = Vec::new();
    let closed = loop {
        match c.line() {
            Err(_) => break true,
            Ok(_) if t0.elapsed() > Duration::from_secs(10) => break false,
            Ok(l) => said.push(l),
        }
    };
    assert!(closed, "the kicked session stayed open: {said:?}");
    assert!(
        said.iter().any(|l| l.starts_with("* BYE")),
        "no BYE before the close: {said:?}"
    );
    let v = json(&server.admin(&["--json", "who", "demo"]));
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
    let out = server.admin(&["kick", "nobody*"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    wait_log(&server, "Kicked by admin");

    let v = json(&server.admin(&["--json", "stats"]));
    let logins: f64 = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("node_logins_total") && k.contains("result=\"ok\""))
        .filter_map(|(_, v)| v.as_f64())
        .sum();
    assert!(logins >= 2.0, "{v}");
}

fn wait_log(server: &Server, what: &str) {
    let t0 = Instant::now();
    while !server.log_text().contains(what) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {what:?} in the log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn config_keys_and_all_settings() {
    let server = start();
    let text = ok(&server.admin(&["config", "ssl", "auth_failure_delay", "imap.port"]));
    let port = server.ports.imap;
    assert_eq!(
        text,
        format!("ssl = \"yes\"\nauth_failure_delay = \"0\"\nimap.port = {port}\n"),
        "{text}"
    );
    let text = ok(&server.admin(&["config", "-H", "imap.port"]));
    assert_eq!(text.trim(), port.to_string());
    let text = ok(&server.admin(&["config", "imap"]));
    assert!(text.starts_with("[imap]\n"), "{text}");
    let all = ok(&server.admin(&["config", "-a"]));
    assert!(
        all.contains("mail_max_userip_connections = 10"),
        "defaults missing from -a: {all}"
    );
    let changed = ok(&server.admin(&["config", "-n"]));
    assert!(
        !changed.contains("mail_max_userip_connections"),
        "{changed}"
    );
    let v = json(&server.admin(&["--json", "config", "storage.data_dir"]));
    assert!(
        v["storage.data_dir"].as_str().unwrap().ends_with("data"),
        "{v}"
    );
    let out = server.admin(&["config", "no_such_key"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text()
            .contains("unknown setting \"no_such_key\""),
        "{}",
        out.both()
    );
    let out = server.admin(&["config", "mail_location"]);
    assert!(
        out.stderr_text().contains("Dovecot setting"),
        "{}",
        out.both()
    );
}

#[test]
fn server_only_commands_without_a_server_and_a_socket_without_permission() {
    let mut server = start();
    // Root may open any socket: the permission check needs another user.
    let shared = tempfile::Builder::new()
        .prefix("node-perm-")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = shared.path().join("node.toml");
    std::fs::copy(&server.paths.config, &cfg).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let is_root = run(Command::new("id").arg("-u"), None, Duration::from_secs(5))
        .map(|o| o.stdout_text().trim() == "0")
        .unwrap_or(false);
    if is_root && !missing_tool("setpriv") {
        let out = run(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(node_bin())
                .arg("-c")
                .arg(&cfg)
                .args(["mailbox", "list", "-u", "demo"])
                .current_dir(shared.path()),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", out.both());
        assert!(
            out.stderr_text().contains("permission denied"),
            "{}",
            out.both()
        );
    } else {
        eprintln!("permission check skipped: needs root and setpriv");
    }

    server.stop();
    for args in [
        &["who"][..],
        &["kick", "demo"],
        &["stats"],
        &["log", "reopen"],
        &["penalty"],
        &["auth", "cache", "flush"],
    ] {
        let out = server.admin(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.both());
        assert!(
            out.stderr_text().contains("no running node answers"),
            "{args:?}: {}",
            out.both()
        );
    }
    // Mail commands work on the store directly while the node is stopped.
    ok(&server.admin(&["mailbox", "create", "-u", "demo", "Offline"]));
    let list = ok(&server.admin(&["mailbox", "list", "-u", "demo"]));
    assert!(list.contains("Offline"), "{list}");
}

#[test]
fn admin_writes_replicate_like_client_writes() {
    let cluster = Cluster::start(ClusterSpec {
        durability: "replicated",
        ..Default::default()
    })
    .expect("cluster");
    let user = tests::cluster::USER;
    let out = cluster
        .admin(0, &["mailbox", "create", "-u", user, "FromAdmin"])
        .unwrap();
    assert!(out.status.success(), "{}", out.both());
    let t0 = Instant::now();
    loop {
        let out = cluster.admin(1, &["mailbox", "list", "-u", user]).unwrap();
        if out.stdout_text().lines().any(|l| l == "FromAdmin") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the admin's mailbox never reached node 2: {}",
            out.both()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_parse_with_prometheus_own_parser_and_match_node_stats() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Http],
        ..Default::default()
    })
    .expect("start node");
    drop(login(&server, "demo", "demo"));
    // Debian's python3 (scripts/install-test-deps.sh installs python3-prometheus-client there).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen('http://127.0.0.1:%s/metrics' % sys.argv[1]).read().decode()
ok = 0
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        if s.name == 'node_logins_total' and s.labels.get('result') == 'ok':
            ok += s.value
print(int(ok))
"#;
    let out = run(
        Command::new(python)
            .args(["-c", script])
            .arg(server.ports.http.to_string()),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.both());
    let parsed: f64 = out.stdout_text().trim().parse().unwrap();
    assert!(parsed >= 1.0, "{}", out.both());
    let v = json(&server.admin(&["--json", "stats"]));
    let ours: f64 = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("node_logins_total{") && k.contains("result=\"ok\""))
        .filter_map(|(_, v)| v.as_f64())
        .sum();
    assert_eq!(ours, parsed, "node stats and /metrics disagree: {v}");
}

#[test]
fn quota_set_writes_the_passwd_file_and_the_node_enforces_it() {
    let server = start();
    let out = server.admin(&["quota", "set", "-u", "demo", "storage=1M", "messages=2"]);
    let text = ok(&out);
    assert!(text.contains("bytes=1048576 messages=2"), "{text}");
    let passwd = std::fs::read_to_string(&server.paths.passwd).unwrap();
    let line = passwd.lines().find(|l| l.starts_with("demo:")).unwrap();
    assert!(
        line.starts_with("demo:{PLAIN}demo:"),
        "the password field changed: {line}"
    );
    assert!(
        line.ends_with("userdb_quota_rule=*:storage=1M:messages=2"),
        "{line}"
    );
    let text = ok(&server.admin(&["user", "demo"]));
    assert!(text.contains("quota\tbytes=1048576 messages=2"), "{text}");
    // The running node re-read the file: the third message is over quota.
    deliver(&server, "one");
    deliver(&server, "two");
    let r = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "s@example.org",
        &["demo@example.org"],
        &sample_message("three", "x"),
    )
    .expect("lmtp");
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    // Set again: the rule is replaced, not added to.
    ok(&server.admin(&["quota", "set", "-u", "demo", "messages=0"]));
    let passwd = std::fs::read_to_string(&server.paths.passwd).unwrap();
    assert_eq!(passwd.matches("quota_rule").count(), 1, "{passwd}");
    deliver(&server, "three");

    let out = server.admin(&["quota", "set", "-u", "nosuchuser", "storage=1M"]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    let out = server.admin(&["quota", "set", "-u", "demo", "storage=lots"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let out = server.admin(&["quota", "set", "-u", "demo", "files=3"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
}
