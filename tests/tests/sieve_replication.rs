//! Sieve scripts and the vacation reply tracking replicate with the user's mail (issue 17):
//! a script uploaded with a real ManageSieve client (sieve-connect) on node A files mail
//! delivered over LMTP (swaks) on node B, and a vacation reply sent once by A is not sent
//! again by B for the same sender within `:days`, as after a fail-over.

use std::process::Command;
use std::time::{Duration, Instant};
use tests::cluster::{imap_login, imap_ok, Cluster, ClusterSpec, PASS, USER};
use tests::smtp_receiver::{python_with_aiosmtpd, start_receiver};
use tests::*;

fn sieve_connect(server: &Server, args: &[&str]) -> String {
    let out = run(
        Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.sieve.to_string())
            .args(["--user", USER, "--passwordfd", "0", "--notlsverify"])
            .args(["--authmech", "PLAIN"])
            .args(args),
        Some(format!("{PASS}\n").as_bytes()),
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

fn swaks(server: &Server, from: &str, subject: &str) -> String {
    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args(["--protocol", "LMTP", "--from", from])
            .args(["--to", &format!("{USER}@example.org")])
            .args(["--header", &format!("Subject: {subject}")])
            .args(["--header", &format!("To: {USER}@example.org")])
            .args(["--body", "hello", "--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    out.both()
}

/// Messages in `mailbox` on a node, over IMAP (0 when it does not exist).
fn count(server: &Server, mailbox: &str) -> usize {
    let mut c = imap_login(server).expect("login");
    let r = c
        .imap("s", &format!("EXAMINE \"{mailbox}\""))
        .expect("examine");
    if !tagged(&r).starts_with("s OK") {
        return 0;
    }
    r.iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or(0)
}

const SCRIPT: &str = "require [\"fileinto\", \"mailbox\", \"vacation\"];\r\n\
if header :contains \"subject\" \"[list]\" {\r\n  fileinto :create \"Lists\";\r\n  stop;\r\n}\r\n\
vacation :days 3 :addresses [\"alice@example.org\"] :subject \"Away\" \"Back on Monday.\";\r\n";

#[test]
fn script_uploaded_on_a_acts_on_b_and_vacation_is_not_repeated_after_failover() {
    if missing_tool("sieve-connect") || missing_tool("swaks") {
        return;
    }
    let Some(py) = python_with_aiosmtpd() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let outbox = work.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let receiver = start_receiver(&py, &outbox);
    // `sieve` names the file fallback; the attributes (none yet) win once ManageSieve writes.
    let c = Cluster::start(ClusterSpec {
        durability: "replicated",
        sync_timeout: "30s",
        tables: format!(
            "\n[sieve]\nsieve = \"~/.dovecot.sieve\"\nsubmission_host = \"127.0.0.1:{}\"\n",
            receiver.port
        ),
        ..ClusterSpec::default()
    })
    .expect("cluster");
    let (a, b) = (&c.nodes[0], &c.nodes[1]);

    // Upload and activate on A (replicated durability: each OK comes after B holds it).
    let local = work.path().join("rules.sieve");
    std::fs::write(&local, SCRIPT).unwrap();
    let local = local.display().to_string();
    sieve_connect(
        a,
        &["--upload", "--localsieve", &local, "--remotesieve", "rules"],
    );
    sieve_connect(a, &["--activate", "--remotesieve", "rules"]);
    // B lists it as active, through its own ManageSieve.
    let list = sieve_connect(b, &["--list"]);
    assert!(list.contains("rules") && list.contains("ACTIVE"), "{list}");
    // Delivered on B: the script uploaded on A files it.
    let t = swaks(b, "news@lists.example", "[list] weekly");
    assert!(t.contains("250 2.0.0"), "{t}\n{}", tail(&b.log_text(), 30));
    assert_eq!(count(b, "Lists"), 1, "{}", tail(&b.log_text(), 30));
    assert_eq!(count(b, "INBOX"), 0);

    // A vacation reply from A.
    let t = swaks(a, "friend@far.example", "are you there?");
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(1);
    assert_eq!(got.len(), 1, "{got:?}\n{}", tail(&a.log_text(), 30));
    assert!(
        got[0].contains("X-Env-To: <friend@far.example>"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("Subject: Away"), "{}", got[0]);

    // The same sender writes again and the mail lands on B (as after a fail-over): the
    // tracking came with the first message, so B does not answer again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(b, "INBOX") < 1 {
        assert!(Instant::now() < deadline, "first message not on B");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = swaks(b, "friend@far.example", "still there?");
    assert!(t.contains("250 2.0.0"), "{t}");
    assert_eq!(count(b, "INBOX"), 2);
    std::thread::sleep(Duration::from_millis(1500));
    let got = receiver.messages();
    assert_eq!(got.len(), 1, "a second vacation reply went out: {got:?}");
    let log = b.log_text();
    assert!(log.contains("already replied"), "{}", tail(&log, 30));

    // A new sender on B is answered: B does send replies, just not twice.
    let t = swaks(b, "other@far.example", "hello");
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(2);
    assert_eq!(got.len(), 2, "{got:?}\n{}", tail(&b.log_text(), 30));
    assert!(
        got[1].contains("X-Env-To: <other@far.example>"),
        "{}",
        got[1]
    );

    // IMAP METADATA does not show the internal entries (Dovecot's pvt keys).
    let mut s = imap_login(a).expect("login");
    let r = imap_ok(&mut s, "m", "GETMETADATA (DEPTH infinity) \"\" /private").unwrap();
    assert!(
        !r.iter().any(|l| l.contains("vendor.dovecot")),
        "internal entries visible: {r:?}"
    );
}
