//! ManageSieve driven by a real client: Debian's sieve-connect uploads a script over STARTTLS
//! (AUTHENTICATE PLAIN against the passwd-file), activates and lists it; the next delivery over
//! LMTP (swaks) runs it.

use std::process::Command;
use std::time::Duration;
use tests::*;

/// sieve-connect with the password on stdin (`--passwordfd 0`): its output.
fn sieve_connect(server: &Server, args: &[&str]) -> String {
    let out = run(
        Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.sieve.to_string())
            .args(["--user", "demo", "--passwordfd", "0", "--notlsverify"])
            .args(["--authmech", "PLAIN"])
            .args(args),
        Some(b"demo\n"),
        Duration::from_secs(60),
    )
    .expect("sieve-connect");
    assert!(
        out.status.success(),
        "sieve-connect {args:?} failed:\n{}\n--- node log ---\n{}",
        out.both(),
        tail(&server.log_text(), 30)
    );
    out.both()
}

const SCRIPT: &str = "require [\"fileinto\", \"mailbox\"];\r\nif header :contains \"subject\" \"report\" {\r\n  fileinto :create \"Reports\";\r\n}\r\n";

#[test]
fn sieve_connect_uploads_and_activates_and_delivery_uses_it() {
    if missing_tool("sieve-connect") || missing_tool("swaks") {
        return;
    }
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp, Proto::Sieve],
        ..Default::default()
    })
    .expect("start node");
    let work = tempfile::tempdir().expect("tempdir");
    let local = work.path().join("filters.sieve");
    std::fs::write(&local, SCRIPT).unwrap();
    let local = local.display().to_string();

    sieve_connect(
        &server,
        &[
            "--upload",
            "--localsieve",
            &local,
            "--remotesieve",
            "filters",
        ],
    );
    sieve_connect(&server, &["--activate", "--remotesieve", "filters"]);
    let list = sieve_connect(&server, &["--list"]);
    assert!(
        list.contains("filters") && list.contains("ACTIVE"),
        "{list}"
    );

    // The admin command sees the same scripts (through the running node's admin socket).
    let admin = |args: &[&str]| {
        let out = run(
            Command::new(node_bin())
                .arg("-c")
                .arg(&server.paths.config)
                .args(args),
            None,
            Duration::from_secs(30),
        )
        .expect("node sieve");
        assert!(out.status.success(), "node {args:?}: {}", out.both());
        out.stdout_text()
    };
    assert_eq!(admin(&["sieve", "list", "-u", "demo"]), "filters ACTIVE\n");
    assert_eq!(
        admin(&["sieve", "get", "-u", "demo", "filters"]).replace("\r\n", "\n"),
        SCRIPT.replace("\r\n", "\n")
    );

    // A script that does not compile is refused with the error.
    let bad = work.path().join("bad.sieve");
    std::fs::write(&bad, "frobnicate;\r\n").unwrap();
    let out = run(
        Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.sieve.to_string())
            .args([
                "--user",
                "demo",
                "--passwordfd",
                "0",
                "--notlsverify",
                "--authmech",
                "PLAIN",
            ])
            .args(["--upload", "--localsieve"])
            .arg(&bad)
            .args(["--remotesieve", "bad"]),
        Some(b"demo\n"),
        Duration::from_secs(60),
    )
    .expect("sieve-connect");
    assert!(!out.status.success(), "{}", out.both());
    assert!(out.both().contains("frobnicate"), "{}", out.both());

    let downloaded = work.path().join("down.sieve");
    sieve_connect(
        &server,
        &[
            "--download",
            "--remotesieve",
            "filters",
            "--localsieve",
            &downloaded.display().to_string(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&downloaded)
            .unwrap()
            .replace("\r\n", "\n"),
        SCRIPT.replace("\r\n", "\n")
    );

    // Delivery runs the active script.
    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args([
                "--protocol",
                "LMTP",
                "--from",
                "a@example.net",
                "--to",
                "demo@example.org",
            ])
            .args(["--header", "Subject: weekly report", "--body", "numbers"])
            .args(["--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    assert!(out.both().contains("250 2.0.0"), "{}", out.both());
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "EXAMINE Reports").expect("examine");
    assert!(
        tagged(&r).starts_with("s OK"),
        "{r:?}\n{}",
        server.log_text()
    );
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
}

/// A script with a compile warning (an addheader value with a BELL character) is accepted:
/// ManageSieve answers OK (WARNINGS), and delivery runs it and logs the warning.
#[test]
fn script_with_warnings_is_stored_and_delivery_logs_them() {
    if missing_tool("sieve-connect") || missing_tool("swaks") {
        return;
    }
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp, Proto::Sieve],
        ..Default::default()
    })
    .expect("start node");
    let work = tempfile::tempdir().expect("tempdir");
    let local = work.path().join("bell.sieve");
    std::fs::write(
        &local,
        "require \"editheader\";\r\naddheader \"X-Bell\" \"ding\u{7}dong\";\r\n",
    )
    .unwrap();
    let local = local.display().to_string();
    sieve_connect(
        &server,
        &["--upload", "--localsieve", &local, "--remotesieve", "bell"],
    );
    sieve_connect(&server, &["--activate", "--remotesieve", "bell"]);

    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args(["--protocol", "LMTP", "--from", "a@example.net"])
            .args(["--to", "demo@example.org", "--header", "Subject: bell"])
            .args(["--body", "x", "--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    assert!(out.both().contains("250 2.0.0"), "{}", out.both());
    let log = server.log_text();
    assert!(
        log.contains("addheader: value 'ding\\u{7}dong' contains control characters"),
        "{}",
        tail(&log, 30)
    );
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
    let r = c
        .imap("f", "FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Bell)]")
        .expect("fetch");
    assert!(
        r.iter().any(|l| l.contains("X-Bell: ding\u{7}dong\r\n")),
        "{r:?}"
    );
}
