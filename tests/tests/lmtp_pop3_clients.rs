//! LMTP and POP3 as real clients use them: swaks and Python's smtplib.LMTP delivering,
//! fetchmail (POP3 and POP3+STLS) and Python's poplib reading; exactly-once delivery; a
//! delivered message read back byte for byte over IMAP and POP3; line-ending
//! normalisation; 8-bit and 20 MiB messages.

use std::process::Command;
use std::time::Duration;
use tests::*;

fn spec() -> ServerSpec {
    ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Pop3s, Proto::Lmtp],
        ..Default::default()
    }
}

/// Number of messages in a user's INBOX, over IMAP.
fn inbox_count(server: &Server, user: &str, pass: &str) -> usize {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", &format!("LOGIN {user} {pass}")).expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "EXAMINE INBOX").expect("examine");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    r.iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or_else(|| panic!("no EXISTS in {r:?}"))
}

/// BODY[] of INBOX message `n`, byte for byte.
fn imap_body(server: &Server, n: usize) -> Vec<u8> {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "EXAMINE INBOX").expect("examine");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.imap_literal("f", &format!("FETCH {n} BODY.PEEK[]"))
        .expect("fetch BODY[]")
}

/// POP3 RETR of message `n`: (bytes on the wire, dot-unstuffed message).
fn pop3_retr(server: &Server, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut c = pop3_login(server.addr(Proto::Pop3), "demo", "demo").expect("pop3 login");
    c.send(&format!("RETR {n}")).expect("retr");
    let ok = c.line().expect("retr reply");
    assert!(ok.starts_with("+OK"), "RETR: {ok}");
    let wire = c.pop3_multiline().expect("retr body");
    c.send("QUIT").expect("quit");
    let unstuffed = dot_unstuff(&wire);
    (wire, unstuffed)
}

/// The stored message is the delivered text with trace headers (Return-Path,
/// Delivered-To, Received) in front: checks that and returns the prefix.
fn assert_delivered_text(stored: &[u8], sent: &[u8]) {
    assert!(
        stored.ends_with(sent),
        "stored message does not end with the delivered text\n--- stored (first 600 bytes) ---\n{}",
        String::from_utf8_lossy(&stored[..stored.len().min(600)])
    );
    let prefix = String::from_utf8_lossy(&stored[..stored.len() - sent.len()]).into_owned();
    for line in prefix.split_terminator("\r\n") {
        assert!(
            line.starts_with(' ') || line.starts_with('\t') || line.contains(": "),
            "only header lines may be added in front, got {line:?}"
        );
    }
}

#[test]
fn swaks_lmtp_several_recipients_one_unknown() {
    if missing_tool("swaks") {
        return;
    }
    let server = Server::start(spec()).expect("start node");
    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args(["--protocol", "LMTP", "--from", "sender@example.org"])
            .args([
                "--to",
                "demo@example.org,alice@example.org,nobody@example.org",
            ])
            .args([
                "--header",
                "Subject: swaks multi",
                "--body",
                "to three recipients",
            ])
            .args(["--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    let text = out.stdout_text();
    // swaks marks server replies with "<-" (success) and "<**" (failure).
    let replies: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("<**")
                .or_else(|| l.strip_prefix("<-"))
                .map(str::trim_start)
        })
        .filter(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
        .collect();
    // greeting, LHLO, MAIL, RCPT x3, DATA 354, one reply per accepted recipient, QUIT.
    let codes: Vec<&str> = replies.iter().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "250", "550", "354", "250", "250", "221"],
        "swaks transcript:\n{}",
        out.both()
    );
    assert!(
        replies[5].contains("5.1.1"),
        "unknown user reply: {}",
        replies[5]
    );
    assert_eq!(inbox_count(&server, "demo", "demo"), 1);
    assert_eq!(inbox_count(&server, "alice", "alicepw"), 1);
}

#[test]
fn python_smtplib_lmtp_delivers_with_one_reply_per_recipient() {
    let server = Server::start(spec()).expect("start node");
    server.python(
        r#"
import smtplib, os
s = smtplib.LMTP('127.0.0.1', int(os.environ['LMTP_PORT']), timeout=20)
code, caps = s.ehlo('tests.local'); assert code == 250, caps   # smtplib.LMTP sends LHLO
assert s.has_extn('pipelining') and s.has_extn('enhancedstatuscodes'), caps
code, msg = s.mail('sender@example.org'); assert code == 250, msg
code, msg = s.rcpt('demo@example.org'); assert code == 250, msg
code, msg = s.rcpt('nobody@example.org'); assert code == 550, msg
assert b'5.1.1' in msg, msg
code, msg = s.rcpt('bob@example.org'); assert code == 250, msg
body = b"Subject: via smtplib\r\nMessage-ID: <smtplib-1@tests.local>\r\n\r\nhello\r\n"
code, msg = s.data(body); assert code == 250, ('first recipient', code, msg)
code, msg = s.getreply(); assert code == 250, ('second recipient', code, msg)
s.quit()
print('ok')
"#,
        Duration::from_secs(60),
    );
    assert_eq!(inbox_count(&server, "demo", "demo"), 1);
    assert_eq!(inbox_count(&server, "bob", "bobpw"), 1);
    assert_eq!(inbox_count(&server, "alice", "alicepw"), 0);
}

#[test]
fn retried_delivery_is_not_duplicated() {
    let server = Server::start(spec()).expect("start node");
    let msg = b"From: sender@example.org\r\nSubject: retried\r\nMessage-ID: <retry-1@tests.local>\r\n\r\nonce only\r\n";

    // First attempt: the whole message is sent but the client drops the connection
    // before reading the 250 (a lost acknowledgement).
    let mut c = LineConn::connect(server.addr(Proto::Lmtp)).expect("connect");
    smtp_reply(&mut c, "220").expect("greeting");
    c.send("LHLO tests.local").expect("lhlo");
    smtp_reply(&mut c, "250").expect("lhlo");
    c.send("MAIL FROM:<sender@example.org>").expect("mail");
    smtp_reply(&mut c, "250").expect("mail");
    c.send("RCPT TO:<demo@example.org>").expect("rcpt");
    smtp_reply(&mut c, "250").expect("rcpt");
    c.send("DATA").expect("data");
    smtp_reply(&mut c, "354").expect("data");
    c.send_raw(&dot_stuff(msg)).expect("body");
    c.send_raw(b".\r\n").expect("end");
    // Give the server time to store it, as a real lost 250 would.
    std::thread::sleep(Duration::from_millis(500));
    drop(c);

    // The retry, and one more: both acknowledged, neither stored again.
    for attempt in 0..2 {
        let replies = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "sender@example.org",
            &["demo@example.org"],
            msg,
        )
        .expect("retry");
        assert!(
            replies[0].starts_with("250"),
            "retry {attempt}: {replies:?}"
        );
    }
    assert_eq!(
        inbox_count(&server, "demo", "demo"),
        1,
        "a retried delivery was stored twice"
    );

    // A different body with the same Message-ID is a different delivery.
    let other = b"From: sender@example.org\r\nSubject: retried\r\nMessage-ID: <retry-1@tests.local>\r\n\r\nanother body\r\n";
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.org",
        &["demo@example.org"],
        other,
    )
    .expect("other");
    assert!(replies[0].starts_with("250"), "{replies:?}");
    assert_eq!(inbox_count(&server, "demo", "demo"), 2);
}

fn fetchmail(server: &Server, stls: bool) {
    if missing_tool("fetchmail") {
        return;
    }
    for i in 0..2 {
        let replies = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "sender@example.org",
            &["demo@example.org"],
            &sample_message(&format!("fetchmail {i}"), "for fetchmail"),
        )
        .expect("deliver");
        assert!(replies[0].starts_with("250"), "{replies:?}");
    }
    let home = tempfile::tempdir().expect("home");
    let out_dir = home.path().join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    let tls = if stls {
        format!(
            "sslproto 'tls1.2+' sslcertck sslcertfile '{}' sslcommonname localhost",
            server.paths.cert.display()
        )
    } else {
        // No TLS at all: the plain POP3 path.
        "sslproto ''".to_string()
    };
    let rc = format!(
        "set no syslog\nset postmaster root\n\
         poll 127.0.0.1 with proto POP3 port {port} timeout 20 auth password\n\
         \tuser 'demo' there with password 'demo' is 'root' here\n\
         \toptions {tls} fetchall\n\
         \tmda \"/bin/sh -c 'cat > $(mktemp {out}/msg.XXXXXX)'\"\n",
        port = server.ports.pop3,
        out = out_dir.display(),
    );
    let rc_path = home.path().join("fetchmailrc");
    std::fs::write(&rc_path, rc).expect("rc");
    // fetchmail refuses a run-control file others can read.
    std::fs::set_permissions(
        &rc_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let out = run(
        Command::new("fetchmail")
            .args(["-v", "--nodetach", "-f"])
            .arg(&rc_path)
            // As root the lock file is /var/run/fetchmail.pid, shared by parallel tests.
            .arg("--pidfile")
            .arg(home.path().join("fetchmail.pid"))
            .env("HOME", home.path())
            .env("FETCHMAILHOME", home.path()),
        None,
        Duration::from_secs(60),
    )
    .expect("fetchmail");
    assert!(
        out.status.success(),
        "fetchmail failed ({}):\n{}",
        out.status,
        out.both()
    );
    let transcript = out.both();
    if stls {
        assert!(
            transcript.contains("STLS"),
            "fetchmail did not use STLS:\n{transcript}"
        );
    }
    let mut got: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("out dir")
        .flatten()
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned())
        .collect();
    // Sort by subject: the trace headers in front differ from run to run.
    got.sort_by_key(|m| {
        m.lines()
            .find(|l| l.starts_with("Subject:"))
            .map(str::to_owned)
    });
    assert_eq!(
        got.len(),
        2,
        "fetchmail should retrieve 2 messages:\n{transcript}"
    );
    assert!(
        got[0].contains("Subject: fetchmail 0") && got[1].contains("Subject: fetchmail 1"),
        "{got:?}"
    );
    // fetchmail deletes what it retrieved (no 'keep'): the mailbox is empty now.
    assert_eq!(
        inbox_count(server, "demo", "demo"),
        0,
        "fetchmail's DELE+QUIT did not expunge"
    );
}

#[test]
fn fetchmail_over_pop3() {
    let server = Server::start(spec()).expect("start node");
    fetchmail(&server, false);
}

#[test]
fn fetchmail_over_pop3_with_stls() {
    let server = Server::start(spec()).expect("start node");
    fetchmail(&server, true);
}

#[test]
fn python_poplib_session_stls_and_pop3s() {
    let server = Server::start(spec()).expect("start node");
    for i in 0..3 {
        let replies = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "sender@example.org",
            &["demo@example.org"],
            &sample_message(&format!("poplib {i}"), ".leading dot line\r\nplain line"),
        )
        .expect("deliver");
        assert!(replies[0].starts_with("250"), "{replies:?}");
    }
    server.python(
        r#"
import poplib, os, ssl
port = int(os.environ['POP3_PORT'])
P = poplib.POP3('127.0.0.1', port, timeout=20)
caps = P.capa(); assert 'UIDL' in caps and 'TOP' in caps and 'STLS' in caps, caps
P.user('demo'); P.pass_('demo')
count, size = P.stat(); assert count == 3, (count, size)
resp, listing, _ = P.list(); assert len(listing) == 3, listing
resp, uidls, _ = P.uidl(); uidls = [u.split()[1] for u in uidls]
assert len(set(uidls)) == 3, uidls
resp, lines, octets = P.retr(1)
assert b'Subject: poplib 0' in lines, lines
assert b'.leading dot line' in lines, ('dot-stuffing must be undone by the client', lines)
resp, lines, _ = P.top(2, 0)
assert b'Subject: poplib 1' in lines and b'plain line' not in lines, lines
P.dele(1); P.rset()
P.dele(2)
count, _ = P.stat(); assert count == 2, ('a DELE\'d message is not counted', count)
P.quit()

# Deletion applied at QUIT; UIDLs stable across sessions.
P = poplib.POP3('127.0.0.1', port, timeout=20)
P.user('demo'); P.pass_('demo')
count, _ = P.stat(); assert count == 2, count
resp, again, _ = P.uidl(); again = [u.split()[1] for u in again]
assert again == [uidls[0], uidls[2]], (uidls, again)
P.quit()

ctx = ssl.create_default_context(cafile=os.environ['CERT'])
P = poplib.POP3('127.0.0.1', port, timeout=20)
P.stls(context=ctx)
P.user('demo'); P.pass_('demo')
assert P.stat()[0] == 2
P.quit()

P = poplib.POP3_SSL('127.0.0.1', int(os.environ['POP3S_PORT']), context=ctx, timeout=20)
P.user('demo'); P.pass_('demo')
assert P.stat()[0] == 2
P.quit()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn delivered_message_reads_back_byte_for_byte_over_imap_and_pop3() {
    let server = Server::start(spec()).expect("start node");
    let msg = b"From: Ann <ann@example.org>\r\nTo: demo@example.org\r\nSubject: exact bytes\r\n\
Message-ID: <exact-1@tests.local>\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nline after a lone dot\r\n\
trailing spaces   \r\n\ttab line\r\n";
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "ann@example.org",
        &["demo@example.org"],
        msg,
    )
    .expect("deliver");
    assert!(replies[0].starts_with("250"), "{replies:?}");

    let imap = imap_body(&server, 1);
    assert_delivered_text(&imap, msg);

    let (wire, pop3) = pop3_retr(&server, 1);
    assert_eq!(pop3, imap, "POP3 RETR and IMAP BODY[] differ");
    let wire_text = String::from_utf8_lossy(&wire);
    assert!(
        wire_text.contains("\r\n..starts with a dot\r\n")
            && wire_text.contains("\r\n...two dots\r\n")
            && wire_text.contains("\r\n..\r\nline after"),
        "RETR must dot-stuff lines starting with '.':\n{wire_text}"
    );
}

#[test]
fn bare_lf_and_crlf_input_are_both_stored_as_crlf() {
    let server = Server::start(spec()).expect("start node");
    let crlf = b"Subject: line endings\r\nMessage-ID: <le-crlf@tests.local>\r\n\r\none\r\ntwo\r\n";
    // Bare LF throughout, with an LF-dot-LF inside: that is message text (SMTP smuggling
    // pattern), not an end of data; the data ends only at CRLF.CRLF.
    let lf =
        b"Subject: line endings\nMessage-ID: <le-lf@tests.local>\n\none\ntwo\n.\nstill text\r\n";
    for m in [&crlf[..], &lf[..]] {
        let replies = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "s@example.org",
            &["demo@example.org"],
            m,
        )
        .expect("deliver");
        assert_eq!(replies.len(), 1);
        assert!(replies[0].starts_with("250"), "{replies:?}");
    }
    assert_eq!(
        inbox_count(&server, "demo", "demo"),
        2,
        "the LF-dot-LF ended DATA early"
    );
    let a = imap_body(&server, 1);
    assert_delivered_text(&a, crlf);
    let b = imap_body(&server, 2);
    assert_delivered_text(
        &b,
        b"Subject: line endings\r\nMessage-ID: <le-lf@tests.local>\r\n\r\none\r\ntwo\r\n.\r\nstill text\r\n",
    );
    for (name, body) in [("CRLF", &a), ("bare LF", &b)] {
        for (i, w) in body.windows(2).enumerate() {
            assert!(
                !(w[1] == b'\n' && w[0] != b'\r'),
                "{name} message has a bare LF at byte {}",
                i + 1
            );
        }
    }
}

#[test]
fn eight_bit_and_20_mib_messages_survive() {
    let server = Server::start(spec()).expect("start node");
    let mut eight = b"Subject: 8bit\r\nMessage-ID: <8bit@tests.local>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    eight.extend_from_slice("Grüße, ça va? 日本語 ✓\r\n".as_bytes());
    eight.extend_from_slice(b"latin-1 byte: \xe9\xff\x80\r\n");
    let replies = lmtp_deliver_with(
        server.addr(Proto::Lmtp),
        "s@example.org",
        "BODY=8BITMIME",
        &["demo@example.org"],
        &eight,
    )
    .expect("deliver 8bit");
    assert!(replies[0].starts_with("250"), "{replies:?}");

    // 20 MiB of text lines, with a line counter so any reordering or loss shows.
    let mut big = b"Subject: big\r\nMessage-ID: <big@tests.local>\r\n\r\n".to_vec();
    let mut i = 0u64;
    while big.len() < 20 << 20 {
        big.extend_from_slice(
            format!("{i:010} abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n")
                .as_bytes(),
        );
        i += 1;
    }
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "s@example.org",
        &["demo@example.org"],
        &big,
    )
    .expect("deliver 20 MiB");
    assert!(replies[0].starts_with("250"), "{replies:?}");

    let got = imap_body(&server, 1);
    assert_delivered_text(&got, &eight);
    let (_, pop) = pop3_retr(&server, 1);
    assert_eq!(pop, got, "8-bit message differs between POP3 and IMAP");

    let got = imap_body(&server, 2);
    assert_delivered_text(&got, &big);
    let (_, pop) = pop3_retr(&server, 2);
    assert!(
        pop == got,
        "20 MiB message differs between POP3 ({} bytes) and IMAP ({} bytes)",
        pop.len(),
        got.len()
    );
}

/// A POP3 client that QUITs and connects again at once (fetchmail polling, a phone
/// retrying) must find the mailbox free: the session's lock is gone once QUIT is answered.
#[test]
fn pop3_reconnect_right_after_quit_is_not_in_use() {
    let server = Server::start(spec()).expect("start node");
    for round in 0..200 {
        let mut c = LineConn::connect(server.addr(Proto::Pop3)).expect("connect");
        c.line().expect("greeting");
        c.send("USER demo").expect("user");
        let r = c.line().expect("user reply");
        assert!(r.starts_with("+OK"), "round {round}: USER: {r}");
        c.send("PASS demo").expect("pass");
        let r = c.line().expect("pass reply");
        assert!(
            r.starts_with("+OK"),
            "round {round}: a login right after the previous QUIT: {r}"
        );
        c.send("QUIT").expect("quit");
        let r = c.line().expect("quit reply");
        assert!(r.starts_with("+OK"), "round {round}: QUIT: {r}");
    }
}

/// LMTP on a unix socket, as Postfix's `lmtp:unix:` transport delivers: the socket has the
/// configured mode and takes a delivery like the TCP listener.
#[test]
fn lmtp_over_a_unix_socket_with_its_mode() {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("lmtp.sock");
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: format!(
            "[lmtp_unix_socket]\npath = \"{}\"\nmode = \"0660\"\n",
            sock.display()
        ),
        ..Default::default()
    })
    .expect("start node");
    let meta =
        std::fs::metadata(&sock).expect("the LMTP unix socket exists once the node is ready");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        sock.display()
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "socket mode");
    server.python(
        &format!(
            r#"
import smtplib
s = smtplib.LMTP('{}', timeout=20)
code, msg = s.ehlo('tests.local'); assert code == 250, msg
refused = s.sendmail('sender@example.org', ['demo@example.org'],
                     b"Subject: via unix socket\r\nMessage-ID: <unix-1@tests.local>\r\n\r\nhi\r\n")
assert refused == {{}}, refused
s.quit()
print('ok')
"#,
            sock.display()
        ),
        Duration::from_secs(60),
    );
    assert_eq!(inbox_count(&server, "demo", "demo"), 1);
}

/// Sends 1 MiB without a line end after the greeting (from a thread of its own, which then keeps
/// the connection open) and returns the first reply line and whether the server closed the
/// connection, both within a second of the start of sending.
fn unending_line(addr: std::net::SocketAddr) -> (String, bool) {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut greeting = String::new();
    reader.read_line(&mut greeting).expect("greeting");
    let mut writer = stream.try_clone().expect("clone");
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        // The server may close (and reset) while we still send: that is the point.
        let _ = writer.write_all(&vec![b'x'; 1 << 20]);
        let _ = stop_rx.recv_timeout(Duration::from_secs(30));
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    stream
        .set_read_timeout(Some(left().max(Duration::from_millis(1))))
        .expect("timeout");
    let mut reply = String::new();
    let _ = reader.read_line(&mut reply);
    stream
        .set_read_timeout(Some(left().max(Duration::from_millis(1))))
        .expect("timeout");
    let mut rest = Vec::new();
    let closed = reader.read_to_end(&mut rest).is_ok() && rest.is_empty();
    let _ = stop_tx.send(());
    let _ = sender.join();
    (reply.trim_end().to_string(), closed)
}

#[test]
fn a_megabyte_without_line_end_is_answered_and_closed_within_a_second() {
    let server = Server::start(spec()).expect("start node");
    let (reply, closed) = unending_line(server.addr(Proto::Pop3));
    assert_eq!(reply, "-ERR Input line too long.", "POP3");
    assert!(closed, "POP3 connection still open after a second");
    let (reply, closed) = unending_line(server.addr(Proto::Lmtp));
    assert_eq!(reply, "500 5.5.2 Line too long", "LMTP");
    assert!(closed, "LMTP connection still open after a second");
    // The server is still there for others.
    let mut c = pop3_login(server.addr(Proto::Pop3), "demo", "demo").expect("pop3 login");
    c.send("QUIT").expect("quit");
    assert!(c.line().expect("quit reply").starts_with("+OK"));
}
