//! IMAP as real clients use it: Python's imaplib, isync's mbsync (plain and TLS), raw
//! sockets for IDLE and concurrent sessions, and the operators' troubleshooting session
//! verbatim over a plain socket and over `openssl s_client -starttls imap`.

use std::process::Command;
use std::time::{Duration, Instant};
use tests::*;

fn imap_spec() -> ServerSpec {
    ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Imaps, Proto::Lmtp],
        ..Default::default()
    }
}

/// A logged-in raw IMAP connection.
fn login(server: &Server, user: &str, pass: &str) -> LineConn {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect IMAP");
    let greeting = c.line().expect("greeting");
    assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
    let r = c
        .imap("l1", &format!("LOGIN \"{user}\" \"{pass}\""))
        .expect("login");
    assert!(tagged(&r).starts_with("l1 OK"), "login: {r:?}");
    c
}

fn deliver(server: &Server, subject: &str) {
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.org",
        &["demo@example.org"],
        &sample_message(subject, "delivered by the imap tests"),
    )
    .expect("LMTP delivery");
    assert!(
        replies.iter().all(|r| r.starts_with("250")),
        "delivery: {replies:?}"
    );
}

#[test]
fn imaplib_append_fetch_search_store() {
    let server = Server::start(imap_spec()).expect("start node");
    server.python(
        r#"
import imaplib, os
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
typ, _ = M.login(os.environ['USER'], os.environ['PASS']); assert typ == 'OK'
typ, data = M.select('INBOX'); assert typ == 'OK', data
n0 = int(data[0])
msg = (b"From: Ann <ann@example.org>\r\nTo: demo@example.org\r\nSubject: hello imaplib\r\n"
       b"Message-ID: <append-1@tests.local>\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n\r\n"
       b"first line\r\nsecond line\r\n")
typ, data = M.append('INBOX', r'(\Flagged)', '"23-Nov-2026 05:00:00 +0000"', msg)
assert typ == 'OK', data
typ, data = M.noop()
typ, data = M.select('INBOX'); n = int(data[0]); assert n == n0 + 1, (n0, n)

typ, data = M.fetch(str(n), '(FLAGS RFC822.SIZE BODY.PEEK[])'); assert typ == 'OK', data
flat = b''.join(p if isinstance(p, bytes) else b''.join(p) for p in data)
assert msg in flat, data
assert b'\\Flagged' in flat, data
assert b'RFC822.SIZE %d' % len(msg) in flat, data
assert b'\\Seen' not in flat, ('BODY.PEEK must not set \\Seen', data)

typ, data = M.search(None, 'SUBJECT', '"hello imaplib"'); assert typ == 'OK', data
assert data[0].split() == [str(n).encode()], data
typ, data = M.search(None, 'FLAGGED', 'UNSEEN'); assert str(n).encode() in data[0].split(), data
typ, data = M.search(None, 'BODY', 'second'); assert str(n).encode() in data[0].split(), data

typ, data = M.store(str(n), '+FLAGS', r'(\Seen \Answered)'); assert typ == 'OK', data
typ, data = M.fetch(str(n), '(FLAGS)'); assert b'\\Seen' in data[0] and b'\\Answered' in data[0], data
typ, data = M.store(str(n), '-FLAGS', r'(\Flagged)'); assert typ == 'OK', data
typ, data = M.fetch(str(n), '(FLAGS)'); assert b'\\Flagged' not in data[0], data
typ, data = M.search(None, 'SEEN'); assert str(n).encode() in data[0].split(), data

typ, data = M.uid('FETCH', '1:*', '(UID FLAGS)'); assert typ == 'OK', data
typ, data = M.fetch(str(n), '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])'); assert typ == 'OK', data
assert b'Subject: hello imaplib' in data[0][1], data
typ, data = M.fetch(str(n), '(BODY.PEEK[TEXT])'); assert data[0][1] == b"first line\r\nsecond line\r\n", data
M.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn imaplib_create_copy_move_expunge() {
    let server = Server::start(imap_spec()).expect("start node");
    server.python(
        r#"
import imaplib, os, re
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
M.login(os.environ['USER'], os.environ['PASS'])
typ, data = M.create('Work'); assert typ == 'OK', data
typ, data = M.list('""', '*'); assert typ == 'OK', data
assert any(l.endswith(b'Work') or l.endswith(b'"Work"') for l in data), data
for i in range(3):
    msg = b"Subject: msg %d\r\nMessage-ID: <cm-%d@tests.local>\r\n\r\nbody %d\r\n" % (i, i, i)
    typ, data = M.append('INBOX', None, None, msg); assert typ == 'OK', data
typ, data = M.select('INBOX'); assert int(data[0]) == 3, data

typ, data = M.copy('1', 'Work'); assert typ == 'OK', data
typ, data = M.status('Work', '(MESSAGES)'); assert b'MESSAGES 1' in data[0], data

typ, data = M.fetch('2', '(UID)'); uid2 = re.search(rb'UID (\d+)', data[0]).group(1).decode()
typ, data = M.uid('MOVE', uid2, 'Work'); assert typ == 'OK', data
typ, data = M.status('Work', '(MESSAGES)'); assert b'MESSAGES 2' in data[0], data
typ, data = M.select('INBOX'); assert int(data[0]) == 2, data

typ, data = M.store('1', '+FLAGS', r'(\Deleted)'); assert typ == 'OK', data
typ, data = M.expunge(); assert typ == 'OK', data
assert data == [b'1'], ('one EXPUNGE response for message 1', data)
typ, data = M.select('INBOX'); assert int(data[0]) == 1, data
typ, data = M.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])'); assert b'msg 2' in data[0][1], data

typ, data = M.select('Work'); assert int(data[0]) == 2, data
typ, data = M.fetch('1:2', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
subjects = sorted(p[1].strip() for p in data if isinstance(p, tuple))
assert subjects == [b'Subject: msg 0', b'Subject: msg 1'], subjects
M.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn idle_sees_a_delivery_within_100ms() {
    let server = Server::start(imap_spec()).expect("start node");
    let mut c = login(&server, "demo", "demo");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.send("i IDLE").expect("idle");
    let cont = c.line().expect("idle continuation");
    assert!(cont.starts_with('+'), "IDLE continuation: {cont}");

    let mut latencies = Vec::new();
    for n in 1..=5 {
        deliver(&server, &format!("idle {n}"));
        // Timed from the delivery's 250: the message is acknowledged, IDLE must show it now.
        let acked = Instant::now();
        loop {
            let l = c.line().expect("untagged response during IDLE");
            if l == format!("* {n} EXISTS") {
                break;
            }
            assert!(l.starts_with('*'), "unexpected line during IDLE: {l}");
        }
        latencies.push(acked.elapsed());
    }
    c.send("DONE").expect("done");
    let r = c.imap_until("i").expect("idle end");
    assert!(tagged(&r).starts_with("i OK"), "{r:?}");
    let max = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        max < Duration::from_millis(100),
        "IDLE must push a delivery within 100 ms; latencies {latencies:?}"
    );
}

#[test]
fn two_sessions_see_each_others_changes() {
    let server = Server::start(imap_spec()).expect("start node");
    let mut a = login(&server, "demo", "demo");
    let mut b = login(&server, "demo", "demo");
    for c in [&mut a, &mut b] {
        let r = c.imap("s", "SELECT INBOX").expect("select");
        assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    }

    // B appends: A's next NOOP reports EXISTS.
    let msg = sample_message("from b", "appended by session b");
    b.send(&format!("ap APPEND INBOX {{{}}}", msg.len()))
        .expect("append");
    let cont = b.line().expect("continuation");
    assert!(cont.starts_with('+'), "APPEND continuation: {cont}");
    b.send_raw(&msg).expect("literal");
    b.send("").expect("end of APPEND");
    let r = b.imap_until("ap").expect("append response");
    assert!(tagged(&r).starts_with("ap OK"), "{r:?}");
    let r = a.imap("n1", "NOOP").expect("noop");
    assert!(
        r.iter().any(|l| l == "* 1 EXISTS"),
        "A after B's APPEND: {r:?}"
    );

    // B sets a flag: A sees an untagged FETCH with it.
    let r = b.imap("st", "STORE 1 +FLAGS (\\Flagged)").expect("store");
    assert!(tagged(&r).starts_with("st OK"), "{r:?}");
    let r = a.imap("n2", "NOOP").expect("noop");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH") && l.contains("\\Flagged")),
        "A after B's STORE: {r:?}"
    );

    // B expunges: A sees EXPUNGE.
    let r = b
        .imap("st2", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        .expect("store");
    assert!(tagged(&r).starts_with("st2 OK"), "{r:?}");
    let r = b.imap("ex", "EXPUNGE").expect("expunge");
    assert!(
        tagged(&r).starts_with("ex OK") && r.iter().any(|l| l == "* 1 EXPUNGE"),
        "{r:?}"
    );
    let r = a.imap("n3", "NOOP").expect("noop");
    assert!(
        r.iter().any(|l| l == "* 1 EXPUNGE"),
        "A after B's EXPUNGE: {r:?}"
    );
}

/// The operators' troubleshooting session, as typed into a terminal. Returns the whole
/// transcript (server lines) after checking each response's shape.
fn check_troubleshooting_transcript(out: &str) {
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            out.lines().any(|l| pred(l.trim_end())),
            "missing {what} in transcript:\n{out}"
        );
    };
    has(&|l| l.starts_with("a OK"), "a OK (login)");
    has(&|l| l.starts_with("* FLAGS ("), "* FLAGS");
    has(
        &|l| l.starts_with("* OK [PERMANENTFLAGS ("),
        "PERMANENTFLAGS",
    );
    has(&|l| l.starts_with("* OK [UIDVALIDITY "), "UIDVALIDITY");
    has(&|l| l.starts_with("* OK [UIDNEXT "), "UIDNEXT");
    has(&|l| l.starts_with("* 1 EXISTS"), "* 1 EXISTS");
    has(&|l| l.starts_with("b OK [READ-WRITE]"), "b OK [READ-WRITE]");
    has(
        &|l| l.starts_with("* LIST (") && l.ends_with("INBOX"),
        "* LIST ... INBOX",
    );
    has(&|l| l.starts_with("c OK"), "c OK (list)");
    has(&|l| l.starts_with("d OK"), "d OK (lsub)");
    has(
        &|l| l.starts_with("4 OK") || l.starts_with("4 NO [ALREADYEXISTS]"),
        "4 OK / NO [ALREADYEXISTS]",
    );
    has(&|l| l.starts_with("5 OK"), "5 OK (copy)");
    has(
        &|l| l.starts_with("* 1 FETCH (FLAGS (") && l.contains("\\Deleted"),
        "* 1 FETCH (FLAGS (\\Deleted))",
    );
    has(&|l| l.starts_with("6 OK"), "6 OK (store)");
    has(&|l| l.starts_with("* BYE"), "* BYE");
    has(&|l| l.starts_with("e OK"), "e OK (logout)");
    assert!(
        !out.lines().any(|l| l.contains(" BAD ")),
        "a command was refused as BAD:\n{out}"
    );
}

const TROUBLESHOOTING: [&str; 8] = [
    "a login \"demo\" \"demo\"",
    "b select inbox",
    "c list \"\" *",
    "d lsub \"\" *",
    "4 CREATE Trash",
    "5 COPY 1 Trash",
    "6 STORE 1 +FLAGS \\Deleted",
    "e logout",
];

#[test]
fn troubleshooting_session_verbatim_over_plain_socket() {
    let server = Server::start(imap_spec()).expect("start node");
    deliver(&server, "troubleshooting");
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    let mut transcript = c.line().expect("greeting") + "\n";
    for line in TROUBLESHOOTING {
        let tag = line.split(' ').next().unwrap_or_default();
        for l in c.imap(tag, &line[tag.len() + 1..]).expect(line) {
            transcript.push_str(&l);
            transcript.push('\n');
        }
    }
    check_troubleshooting_transcript(&transcript);
}

#[test]
fn troubleshooting_session_verbatim_over_openssl_starttls() {
    if missing_tool("openssl") {
        return;
    }
    let server = Server::start(imap_spec()).expect("start node");
    deliver(&server, "troubleshooting tls");
    // Typed lines end in LF; -crlf makes them CRLF on the wire, as an operator's terminal would.
    let input: String = TROUBLESHOOTING.iter().map(|l| format!("{l}\n")).collect();
    let out = run(
        Command::new("openssl")
            .args(["s_client", "-starttls", "imap", "-quiet", "-crlf"])
            .arg("-connect")
            .arg(format!("127.0.0.1:{}", server.ports.imap))
            .args(["-servername", "localhost", "-CAfile"])
            .arg(&server.paths.cert)
            .arg("-verify_return_error"),
        Some(input.as_bytes()),
        Duration::from_secs(30),
    )
    .expect("openssl s_client");
    check_troubleshooting_transcript(&out.stdout_text().replace('\r', ""));
}

fn mbsync_config(server: &Server, dir: &std::path::Path, tls: bool) -> std::path::PathBuf {
    let maildir = dir.join("mail");
    std::fs::create_dir_all(&maildir).expect("maildir");
    // mbsync matches the certificate against a host name (not an IP SAN): "localhost".
    let (host, port, ssl) = if tls {
        ("localhost", server.ports.imaps, "IMAPS")
    } else {
        ("127.0.0.1", server.ports.imap, "None")
    };
    let cfg = format!(
        "IMAPAccount test\nHost {host}\nPort {port}\nUser demo\nPass demo\nSSLType {ssl}\n\
         CertificateFile {cert}\nAuthMechs LOGIN\nTimeout 20\n\n\
         IMAPStore remote\nAccount test\n\n\
         MaildirStore local\nPath {mail}/\nInbox {mail}/INBOX\nSubFolders Verbatim\n\n\
         Channel test\nFar :remote:\nNear :local:\nPatterns INBOX Work\nCreate Both\n\
         Expunge Both\nSync All\nSyncState *\n",
        cert = server.paths.cert.display(),
        mail = maildir.display(),
    );
    let path = dir.join("mbsyncrc");
    std::fs::write(&path, cfg).expect("mbsyncrc");
    path
}

fn mbsync(cfg: &std::path::Path) -> Output {
    let out = run(
        Command::new("mbsync").arg("-c").arg(cfg).arg("-a"),
        None,
        Duration::from_secs(60),
    )
    .expect("mbsync");
    assert!(
        out.status.success(),
        "mbsync failed ({}):\n{}",
        out.status,
        out.both()
    );
    out
}

/// All message files of a Maildir folder, with their contents.
fn maildir_messages(folder: &std::path::Path) -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(folder.join(sub)) {
            for e in rd.flatten() {
                v.push(
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default())
                        .into_owned(),
                );
            }
        }
    }
    v
}

fn mbsync_both_ways(tls: bool) {
    if missing_tool("mbsync") {
        return;
    }
    let server = Server::start(imap_spec()).expect("start node");
    deliver(&server, "server side message");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = mbsync_config(&server, dir.path(), tls);

    // Server -> Maildir.
    mbsync(&cfg);
    let inbox = dir.path().join("mail").join("INBOX");
    let local = maildir_messages(&inbox);
    assert!(
        local
            .iter()
            .any(|m| m.contains("Subject: server side message")),
        "the server's message is not in the local Maildir: {local:?}"
    );

    // Maildir -> server: a new local message, and a flag set locally (file renamed ':2,F').
    let new_msg = "From: local@example.org\r\nSubject: written locally\r\nMessage-ID: <local-1@tests.local>\r\n\r\nfrom the maildir\r\n";
    std::fs::write(inbox.join("new").join("1700000000.local1.host"), new_msg)
        .expect("write local mail");
    mbsync(&cfg);

    let mut c = login(&server, "demo", "demo");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(
        r.iter().any(|l| l == "* 2 EXISTS"),
        "server INBOX after sync back: {r:?}"
    );
    let r = c
        .imap("f", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .expect("fetch");
    let joined = r.join("\n");
    assert!(
        joined.contains("Subject: written locally"),
        "local message not on the server: {joined}"
    );

    // A deletion on the server reaches the Maildir too.
    let r = c
        .imap("d", "STORE 1:* +FLAGS.SILENT (\\Deleted)")
        .expect("store");
    assert!(tagged(&r).starts_with("d OK"), "{r:?}");
    let r = c.imap("x", "EXPUNGE").expect("expunge");
    assert!(tagged(&r).starts_with("x OK"), "{r:?}");
    mbsync(&cfg);
    let local = maildir_messages(&inbox);
    assert!(
        local.is_empty(),
        "expunged on the server but still in the Maildir: {local:?}"
    );
}

#[test]
fn mbsync_syncs_both_ways_plain() {
    mbsync_both_ways(false);
}

#[test]
fn mbsync_syncs_both_ways_tls() {
    mbsync_both_ways(true);
}
