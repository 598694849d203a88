//! `node doctor` against a healthy node and against each failure it names: a wrong password,
//! a stopped node (service, ports), a certificate about to expire, a malformed passwd-file or
//! configuration, a log file that cannot be written, too little disk space, a peer that is
//! down, a user whose mail directory cannot be opened (INBOX), and a wall clock set back
//! behind the clock the store has already used (libfaketime).

use std::process::Command;
use std::time::Duration;
use tests::cluster::{Cluster, ClusterSpec};
use tests::*;

fn start(extra: &str) -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
        extra_toml: extra.to_string(),
        ..Default::default()
    })
    .expect("start node")
}

/// The doctor's lines as (status, check, detail).
fn doctor(server: &Server, args: &[&str]) -> (i32, Vec<serde_json::Value>, Output) {
    let mut all = vec!["--json", "doctor"];
    all.extend_from_slice(args);
    let out = server.admin(&all);
    let v: Vec<serde_json::Value> =
        serde_json::from_str(&out.stdout_text()).unwrap_or_else(|e| panic!("{e}: {}", out.both()));
    (out.status.code().unwrap_or(-1), v, out)
}

fn status_of<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name:?} check in {checks:?}"))
}

#[test]
fn healthy_node_is_all_ok_and_a_wrong_password_fails_the_login() {
    let server = start("");
    let (code, checks, out) = doctor(&server, &["-u", "demo", "-p", "demo"]);
    assert_eq!(code, 0, "{}", out.both());
    for c in &checks {
        assert_eq!(c["status"], "OK", "{c}\n{}", out.both());
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    for want in [
        "configuration",
        "service",
        "port imap",
        "port imaps",
        "port pop3",
        "port pop3s",
        "port lmtp",
        "port http",
        "certificate",
        "login demo",
        "INBOX",
        "log",
        "disk",
        "peers",
        "clock",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    // The text form: one line per check.
    let text = server
        .admin(&["doctor", "-u", "demo", "-p", "demo"])
        .stdout_text();
    assert!(text.lines().all(|l| l.starts_with("OK   ")), "{text}");

    let (code, checks, out) = doctor(&server, &["-u", "demo", "-p", "wrong"]);
    assert_eq!(code, 1, "{}", out.both());
    let login = status_of(&checks, "login demo");
    assert_eq!(login["status"], "FAIL", "{login}");
    assert!(
        login["fix"].as_str().unwrap().contains("auth test -D"),
        "{login}"
    );
    // Without credentials the login is skipped, and that is not a failure.
    let (code, checks, _) = doctor(&server, &[]);
    assert_eq!(code, 0);
    assert_eq!(status_of(&checks, "login")["status"], "SKIP");
}

#[test]
fn stopped_node_fails_service_and_ports() {
    let mut server = start("");
    server.stop();
    let (code, checks, out) = doctor(&server, &[]);
    assert_eq!(code, 1, "{}", out.both());
    assert_eq!(status_of(&checks, "service")["status"], "FAIL");
    assert_eq!(status_of(&checks, "port imap")["status"], "FAIL");
    assert!(status_of(&checks, "service")["fix"]
        .as_str()
        .unwrap()
        .contains("start it"));
    assert_eq!(status_of(&checks, "clock")["status"], "SKIP");
}

#[test]
fn certificate_near_expiry_fails() {
    let server = start("");
    // Replace the served files with a certificate that expires in three days.
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
            .args(["-nodes", "-days", "3", "-subj", "/CN=localhost", "-keyout"])
            .arg(&server.paths.key)
            .arg("-out")
            .arg(&server.paths.cert),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.both());
    let (code, checks, out) = doctor(&server, &[]);
    assert_eq!(code, 1, "{}", out.both());
    let c = status_of(&checks, "certificate");
    assert_eq!(c["status"], "FAIL", "{c}");
    let d = c["detail"].as_str().unwrap();
    assert!(
        d.contains("expires in 2 days") || d.contains("expires in 3 days"),
        "{c}"
    );
    assert!(c["fix"].as_str().unwrap().contains("HUP"), "{c}");
}

#[test]
fn broken_configuration_fails() {
    let server = start("");
    let mut passwd = std::fs::read_to_string(&server.paths.passwd).unwrap();
    passwd.push_str("not a passwd line\n");
    std::fs::write(&server.paths.passwd, passwd).unwrap();
    let (code, checks, out) = doctor(&server, &[]);
    assert_eq!(code, 1, "{}", out.both());
    let c = status_of(&checks, "configuration");
    assert_eq!(c["status"], "FAIL", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("line 4"), "{c}");

    // A configuration that does not load at all: one FAIL line, the file's own error.
    let mut text = std::fs::read_to_string(&server.paths.config).unwrap();
    text.insert_str(0, "mail_location = \"maildir:~/Maildir\"\n");
    std::fs::write(&server.paths.config, text).unwrap();
    let out = server.admin(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let t = out.stdout_text();
    assert!(
        t.starts_with("FAIL configuration:") && t.contains("mail_location"),
        "{t}"
    );
}

#[test]
fn unwritable_log_and_full_disk_fail() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let server = start(&format!(
        "log_path = {:?}",
        logs.join("mail.log").display().to_string()
    ));
    let (code, _, out) = doctor(&server, &[]);
    assert_eq!(code, 0, "{}", out.both());
    // The log directory is gone and a file sits in its place.
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, "").unwrap();
    // And the free space needed is more than any disk has.
    let text = std::fs::read_to_string(&server.paths.config).unwrap();
    std::fs::write(
        &server.paths.config,
        text.replace("[storage]\n", "[storage]\nmin_free_space = \"900000T\"\n"),
    )
    .unwrap();
    let (code, checks, out) = doctor(&server, &[]);
    assert_eq!(code, 1, "{}", out.both());
    let log = status_of(&checks, "log");
    assert_eq!(log["status"], "FAIL", "{log}");
    let disk = status_of(&checks, "disk");
    assert_eq!(disk["status"], "FAIL", "{disk}");
    assert!(
        disk["detail"].as_str().unwrap().contains("min_free_space"),
        "{disk}"
    );
}

#[test]
fn a_peer_that_is_down_fails() {
    let mut c = Cluster::start(ClusterSpec::default()).expect("cluster");
    let (code, checks, out) = doctor(&c.nodes[0], &[]);
    assert_eq!(code, 0, "{}", out.both());
    assert_eq!(status_of(&checks, "peer 2")["status"], "OK");
    c.nodes[1].stop();
    let (code, checks, out) = doctor(&c.nodes[0], &[]);
    assert_eq!(code, 1, "{}", out.both());
    let p = status_of(&checks, "peer 2");
    assert_eq!(p["status"], "FAIL", "{p}");
    assert!(
        p["fix"].as_str().unwrap().contains("start that node"),
        "{p}"
    );
}

/// The INBOX check: a user who logs in but whose mail directory cannot be made (a file sits
/// where each `users/XX` hash directory would go) fails it, with the commands to look
/// closer.
#[test]
fn a_user_whose_mail_directory_cannot_be_opened_fails_inbox() {
    let server = start("");
    let users = server.paths.data.join("users");
    std::fs::create_dir_all(&users).unwrap();
    for b in 0..=255u8 {
        let p = users.join(format!("{b:02x}"));
        if !p.exists() {
            std::fs::write(&p, "not a directory").unwrap();
        }
    }
    let (code, checks, out) = doctor(&server, &["-u", "bob", "-p", "bobpw"]);
    assert_eq!(code, 1, "{}", out.both());
    let c = status_of(&checks, "INBOX");
    assert_eq!(c["status"], "FAIL", "{c}");
    assert!(c["detail"].as_str().unwrap().starts_with("bob: "), "{c}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("node mailbox list -u bob"),
        "{c}"
    );
}

/// The clock check: a node restarted with its wall clock an hour behind the time its store
/// has already written records at runs on the store's clock (never backwards), and the
/// doctor says the wall clock is behind and to run NTP.
#[test]
fn a_wall_clock_set_back_an_hour_fails_the_clock_check() {
    if missing_tool("faketime") {
        return;
    }
    let lib = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("libfaketime.so.1 (package libfaketime)");
    let mut server = start("");
    let deliver = |server: &Server, id: &str| {
        lmtp_deliver(
            server.addr(Proto::Lmtp),
            "a@example.org",
            &["demo"],
            format!("Message-ID: <{id}@t>\r\nSubject: t\r\n\r\nbody\r\n").as_bytes(),
        )
        .unwrap()
    };
    deliver(&server, "before");
    let (_, checks, _) = doctor(&server, &[]);
    assert_eq!(status_of(&checks, "clock")["status"], "OK");

    server
        .restart_with_env(
            &[Proto::Imap, Proto::Lmtp],
            &[
                ("LD_PRELOAD", lib),
                ("FAKETIME", "-1h"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        )
        .unwrap();
    // The user's store is opened again: its clock takes up the time of its last record.
    deliver(&server, "after");
    let (code, checks, out) = doctor(&server, &[]);
    assert_eq!(code, 1, "{}", out.both());
    let c = status_of(&checks, "clock");
    assert_eq!(c["status"], "FAIL", "{c}");
    let d = c["detail"].as_str().unwrap();
    assert!(d.contains("behind"), "{c}");
    // About an hour: 3600 s, less the test's own seconds.
    let secs: f64 = d
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {d:?}"));
    assert!((3500.0..3700.0).contains(&secs), "{c}");
    assert!(c["fix"].as_str().unwrap().contains("NTP"), "{c}");
}
