//! Sieve at delivery with real clients: swaks delivers over LMTP into a user's script that
//! files into a folder it creates (with a flag), rejects, redirects and answers with a
//! vacation reply; the outgoing mail is caught by Python's aiosmtpd standing in for the
//! submission server, and the vacation reply is not repeated within its period.

use std::process::Command;
use std::time::{Duration, Instant};
use tests::smtp_receiver::{python_with_aiosmtpd, start_receiver};
use tests::*;

/// swaks over LMTP: the transcript.
fn swaks(server: &Server, from: &str, to: &str, subject: &str) -> String {
    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args(["--protocol", "LMTP", "--from", from, "--to", to])
            .args(["--header", &format!("Subject: {subject}")])
            .args(["--header", "To: demo@example.org", "--body", "hello"])
            .args(["--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    out.both()
}

/// (messages, flags of message 1) of a mailbox, over IMAP.
fn mailbox_state(server: &Server, mailbox: &str) -> (usize, String) {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c
        .imap("s", &format!("EXAMINE \"{mailbox}\""))
        .expect("examine");
    if !tagged(&r).starts_with("s OK") {
        return (0, String::new());
    }
    let n = r
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or(0);
    let flags = if n > 0 {
        let r = c.imap("f", "FETCH 1 FLAGS").expect("fetch");
        r.iter()
            .find(|l| l.contains("FLAGS"))
            .cloned()
            .unwrap_or_default()
    } else {
        String::new()
    };
    (n, flags)
}

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "imap4flags", "reject", "vacation", "copy"];
if header :contains "subject" "[list]" {
    fileinto :create :flags "\\Seen" "Lists";
    stop;
}
if header :contains "subject" "reject me" {
    reject "Not accepted here.";
    stop;
}
if header :contains "subject" "forward" {
    redirect :copy "friend@elsewhere.example";
}
vacation :days 1 :addresses ["demo@example.org"] :subject "Away" "I am away until Monday.";
"#;

#[test]
fn swaks_into_a_sieve_script() {
    if missing_tool("swaks") {
        return;
    }
    let Some(py) = python_with_aiosmtpd() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let scripts = work.path().join("sieve");
    let outbox = work.path().join("outbox");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(scripts.join("demo.sieve"), SCRIPT).unwrap();
    let receiver = start_receiver(&py, &outbox);
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: format!(
            "[sieve]\nsieve = \"{}/%n.sieve\"\nsubmission_host = \"127.0.0.1:{}\"\n",
            scripts.display(),
            receiver.port
        ),
        ..Default::default()
    })
    .expect("start node");

    // fileinto :create with a flag.
    let t = swaks(
        &server,
        "list@lists.example",
        "demo@example.org",
        "[list] news",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let (n, flags) = mailbox_state(&server, "Lists");
    assert_eq!(n, 1, "{}", server.log_text());
    assert!(flags.contains("\\Seen"), "{flags}");

    // reject: refused in LMTP, nothing stored, nothing sent.
    let t = swaks(
        &server,
        "spammer@bad.example",
        "demo@example.org",
        "reject me",
    );
    assert!(
        t.contains("550 5.7.1") && t.contains("Not accepted here."),
        "{t}"
    );

    // redirect :copy and the vacation reply, both through the submission host.
    let t = swaks(
        &server,
        "friend@far.example",
        "demo@example.org",
        "please forward",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(2);
    assert_eq!(got.len(), 2, "{got:?}\n{}", server.log_text());
    let redirect = got
        .iter()
        .find(|m| m.contains("X-Env-To: <friend@elsewhere.example>"));
    let redirect = redirect.unwrap_or_else(|| panic!("no redirect in {got:?}"));
    assert!(redirect.contains("X-Env-From: <friend@far.example>"));
    assert!(redirect.contains("Subject: please forward"));
    let reply = got
        .iter()
        .find(|m| m.contains("X-Env-To: <friend@far.example>"));
    let reply = reply.unwrap_or_else(|| panic!("no vacation reply in {got:?}"));
    assert!(reply.contains("X-Env-From: <>"), "{reply}");
    assert!(reply.contains("Subject: Away") && reply.contains("I am away until Monday."));
    assert!(reply.contains("Auto-Submitted: auto-replied"));

    // The same sender again within :days: redirected again, no second reply.
    let t = swaks(
        &server,
        "friend@far.example",
        "demo@example.org",
        "forward again",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(3);
    std::thread::sleep(Duration::from_millis(500));
    let got_later = receiver.messages();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got_later.len(),
        3,
        "a second vacation reply went out: {got_later:?}"
    );
    let log = server.log_text();
    assert!(log.contains("already replied"), "{log}");
    // The kept copies are in INBOX.
    assert_eq!(mailbox_state(&server, "INBOX").0, 2);
}

/// A typical five-rule user script (none of the rules matches the test messages, so both runs
/// store into INBOX and only the filtering differs).
const FIVE_RULES: &str = r#"require ["fileinto", "imap4flags", "envelope", "subaddress", "variables"];
if header :contains "list-id" "announce" { fileinto "Lists"; stop; }
if address :domain :is "from" "spam.example" { discard; stop; }
if header :contains "subject" ["[SPAM]", "***SPAM***"] { fileinto "Junk"; stop; }
if envelope :detail "to" "news" { fileinto "News"; stop; }
if header :matches "subject" "*urgent*" { addflag "\\Flagged"; }
"#;

/// Messages per second delivered over one LMTP connection, one recipient each.
fn lmtp_rate(server: &Server, n: usize) -> f64 {
    use std::io::{BufRead, Write};
    let s = std::net::TcpStream::connect(server.addr(Proto::Lmtp)).expect("connect");
    let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    let mut reply = |r: &mut std::io::BufReader<std::net::TcpStream>| loop {
        line.clear();
        r.read_line(&mut line).expect("reply");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.clone();
        }
    };
    reply(&mut r);
    w.write_all(b"LHLO bench\r\n").unwrap();
    reply(&mut r);
    let start = Instant::now();
    for i in 0..n {
        let msg = b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<demo@example.org>\r\nDATA\r\n";
        w.write_all(msg).unwrap();
        for _ in 0..3 {
            let l = reply(&mut r);
            assert!(l.starts_with('2') || l.starts_with('3'), "{l}");
        }
        let body = format!(
            "From: Sender <sender@example.net>\r\nTo: demo@example.org\r\nSubject: report {i}\r\n\
             Message-ID: <bench-{i}@example.net>\r\n\r\n{}\r\n.\r\n",
            "Some text of a typical message body.\r\n".repeat(50)
        );
        w.write_all(body.as_bytes()).unwrap();
        let l = reply(&mut r);
        assert!(l.starts_with("250"), "{l}");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Delivery speed with the five-rule script against none (docs/performance.md). Ignored in
/// the normal run: it measures, it does not check.
#[test]
#[ignore]
fn delivery_speed_with_and_without_a_script() {
    let n: usize = std::env::var("SIEVE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(work.path().join("demo.sieve"), FIVE_RULES).unwrap();
    let spec = |extra: String| ServerSpec {
        wait_for: vec![Proto::Lmtp],
        extra_toml: extra,
        ..Default::default()
    };
    let mut rates = Vec::new();
    // ABBA order, so a drift of the machine (the disk filling, the page cache) over the run
    // hits both alike: with a fixed order the second kind always ran on the slower machine.
    for round in 0..4 {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            let extra = if with {
                format!("[sieve]\nsieve = \"{}/%n.sieve\"\n", work.path().display())
            } else {
                String::new()
            };
            let server = Server::start(spec(extra)).expect("start node");
            let rate = lmtp_rate(&server, n);
            if with {
                let (kept, _) = mailbox_state(&server, "INBOX");
                assert_eq!(kept, n, "every message kept in INBOX");
            }
            println!("round {round} sieve={with}: {rate:.0} msg/s");
            rates.push((with, rate));
        }
    }
    let avg = |w: bool| {
        let v: Vec<f64> = rates
            .iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, r)| *r)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (none, five) = (avg(false), avg(true));
    println!(
        "no script: {none:.0} msg/s; five rules: {five:.0} msg/s; slower by {:.1}%",
        (1.0 - five / none) * 100.0
    );
}

/// (user, password) -> messages in INBOX, over IMAP.
fn inbox_count(server: &Server, user: &str, pass: &str) -> usize {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", &format!("LOGIN {user} {pass}")).expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "EXAMINE INBOX").expect("examine");
    r.iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or(0)
}

/// Scripts that would loop or run away are stopped with an error in the log, and the
/// message is kept in INBOX: an include of itself (demo), more actions than
/// `sieve_max_actions` (alice), and a redirect back to the user of a message that already
/// went through that redirect (bob; the submission host is a closed port, so a redirect that
/// went out would fail the delivery).
#[test]
fn runaway_scripts_are_stopped_and_the_message_kept() {
    if missing_tool("swaks") {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    std::fs::write(
        dir.join("demo.sieve"),
        "require \"include\";\ninclude \"demo\";\n",
    )
    .unwrap();
    let many: String = (0..40)
        .map(|i| format!("fileinto :copy \"box{i}\";\n"))
        .collect();
    std::fs::write(
        dir.join("alice.sieve"),
        format!("require [\"fileinto\", \"copy\"];\n{many}"),
    )
    .unwrap();
    std::fs::write(dir.join("bob.sieve"), "redirect \"bob@example.org\";\n").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: format!(
            "[sieve]\nsieve = \"{d}/%n.sieve\"\nsieve_dir = \"{d}\"\nsubmission_host = \"127.0.0.1:{closed_port}\"\n",
            d = dir.display()
        ),
        ..Default::default()
    })
    .expect("start node");
    let send = |to: &str, extra: &[&str]| {
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args([
                "--protocol",
                "LMTP",
                "--from",
                "someone@far.example",
                "--to",
                to,
            ])
            .args([
                "--header",
                "Subject: hello",
                "--body",
                "hello",
                "--timeout",
                "20",
            ]);
        for h in extra {
            cmd.args(["--add-header", h]);
        }
        run(&mut cmd, None, Duration::from_secs(60))
            .expect("swaks")
            .both()
    };
    for (user, pass) in [("demo", "demo"), ("alice", "alicepw")] {
        let t = send(&format!("{user}@example.org"), &[]);
        assert!(t.contains("250 2.0.0"), "{t}");
        assert_eq!(inbox_count(&server, user, pass), 1, "{user}");
    }
    let t = send(
        "bob@example.org",
        &["X-Sieve-Redirected-From: bob@example.org"],
    );
    assert!(
        t.contains("250 2.0.0"),
        "{t}\n{}",
        tail(&server.log_text(), 20)
    );
    assert_eq!(inbox_count(&server, "bob", "bobpw"), 1);
    let log = server.log_text();
    assert!(log.contains("recursion"), "{}", tail(&log, 30));
    assert!(log.contains("exceeds policy limit"), "{}", tail(&log, 30));
    assert!(log.contains("mail loop"), "{}", tail(&log, 30));
    assert_eq!(
        log.matches("keeping the message in INBOX").count(),
        2,
        "{log}"
    );
}
