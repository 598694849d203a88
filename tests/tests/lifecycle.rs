//! The node's life as an operator sees it: graceful shutdown on SIGTERM, acknowledged mail
//! surviving kill -9 and restart, and start-up refusing bad configuration with errors that
//! say where and what.

use tests::*;

fn login(server: &Server) -> LineConn {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    c
}

#[test]
fn sigterm_says_bye_to_sessions_and_exits_zero() {
    let mut server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    let mut c = login(&server);
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    let status = server.stop().expect("node exit status");
    assert!(status.success(), "node exited with {status} after SIGTERM");
    let mut saw_bye = false;
    while let Ok(l) = c.line() {
        saw_bye |= l.starts_with("* BYE");
    }
    assert!(saw_bye, "an open session was not told * BYE at shutdown");
}

#[test]
fn acknowledged_mail_survives_kill_9_and_restart() {
    let mut server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        ..Default::default()
    })
    .expect("start node");
    for i in 0..20 {
        let r = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "s@example.org",
            &["demo@example.org"],
            &sample_message(&format!("durable {i}"), "acknowledged before the crash"),
        )
        .expect("deliver");
        assert!(r[0].starts_with("250"), "{r:?}");
    }
    let mut c = login(&server);
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(r.iter().any(|l| l == "* 20 EXISTS"), "{r:?}");
    let r = c.imap("st", "STORE 1:5 +FLAGS (\\Flagged)").expect("store");
    assert!(tagged(&r).starts_with("st OK"), "{r:?}");
    let before = c.imap("f", "UID FETCH 1:* (UID FLAGS)").expect("fetch");
    let uidvalidity_before =
        r_uidvalidity(&c.imap("x", "STATUS INBOX (UIDVALIDITY)").expect("status"));
    drop(c);

    server.kill();
    server
        .restart(&[Proto::Imap, Proto::Lmtp])
        .expect("restart after kill -9");

    let mut c = login(&server);
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(
        r.iter().any(|l| l == "* 20 EXISTS"),
        "after kill -9 and restart: {r:?}"
    );
    let after = c.imap("f", "UID FETCH 1:* (UID FLAGS)").expect("fetch");
    let strip = |v: &[String]| -> Vec<String> {
        let mut v: Vec<String> = v.iter().filter(|l| l.starts_with("* ")).cloned().collect();
        v.sort();
        v
    };
    assert_eq!(
        strip(&before),
        strip(&after),
        "UIDs or flags changed across kill -9 and restart"
    );
    let uidvalidity_after =
        r_uidvalidity(&c.imap("x", "STATUS INBOX (UIDVALIDITY)").expect("status"));
    assert_eq!(
        uidvalidity_before, uidvalidity_after,
        "UIDVALIDITY changed across a restart"
    );
}

fn r_uidvalidity(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            let i = l.find("UIDVALIDITY ")?;
            Some(l[i + 12..].trim_end_matches(')').to_string())
        })
        .unwrap_or_else(|| panic!("no UIDVALIDITY in {lines:?}"))
}

#[test]
fn unknown_key_is_refused_naming_key_file_and_line() {
    let out = serve_with_config_text(
        "bad.toml",
        "listen = \"127.0.0.1\"\n# a Dovecot habit:\nmail_location = \"maildir:~/Maildir\"\n",
    )
    .expect("node serve");
    assert!(
        !out.status.success(),
        "a config with an unknown key was accepted:\n{}",
        out.both()
    );
    let err = out.stderr_text();
    assert!(
        err.contains("mail_location") && err.contains("bad.toml") && err.contains("line 3"),
        "the error must name the key, the file and the line:\n{err}"
    );
    assert!(
        err.contains("Dovecot"),
        "mail_location is a Dovecot setting; the error should say so:\n{err}"
    );

    let out = serve_with_config_text(
        "typo.toml",
        "listen = \"127.0.0.1\"\nprotocolz = \"imap\"\n",
    )
    .expect("node serve");
    assert!(
        !out.status.success(),
        "a config with a typo was accepted:\n{}",
        out.both()
    );
    let err = out.stderr_text();
    assert!(err.contains("protocolz") && err.contains("line 2"), "{err}");
}

#[test]
fn unreadable_certificate_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-cert.pem");
    let key = dir.path().join("no-such-key.pem");
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "demo:{PLAIN}demo::::::\n").expect("passwd");
    let text = format!(
        "listen = \"127.0.0.1\"\nssl_cert = \"{}\"\nssl_key = \"{}\"\n\
         [[passdb]]\ndriver = \"passwd-file\"\nargs = \"{}\"\n\
         [storage]\ndata_dir = \"{}\"\n\
         [imap]\nport = {}\nssl_port = {}\n[pop3]\nport = {}\nssl_port = {}\n\
         [lmtp]\nport = {}\n[http]\nport = {}\n",
        missing.display(),
        key.display(),
        passwd.display(),
        dir.path().join("data").display(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let out = serve_with_config_text("node.toml", &text).expect("node serve");
    assert!(
        !out.status.success(),
        "started without its certificate:\n{}",
        out.both()
    );
    assert!(
        out.stderr_text().contains("no-such-cert.pem"),
        "the error must name the certificate file:\n{}",
        out.both()
    );
}
