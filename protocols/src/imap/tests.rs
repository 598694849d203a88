//! Session tests over an in-memory duplex stream with the test backend: no socket.

use super::{serve, ImapConfig, ImapContext};
use crate::testing::{loopback_conn, TestBackend};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

pub(crate) struct Client {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
}

pub(crate) fn context(backend: Arc<TestBackend>, config: ImapConfig) -> Arc<ImapContext> {
    Arc::new(ImapContext {
        backend,
        tls: None,
        config,
        shutdown: CancellationToken::new(),
    })
}

impl Client {
    /// Starts a session and reads its greeting.
    pub async fn start(ctx: Arc<ImapContext>) -> (Client, String) {
        let (a, b) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(Box::new(b), loopback_conn("test"), ctx));
        let (r, w) = tokio::io::split(a);
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let g = c.line().await;
        (c, g)
    }

    /// Session `i` of many: its own address (the user+IP limit stays out of the way) and a
    /// small client-side buffer (so memory figures are the server's), logged in, INBOX
    /// selected and IDLE begun.
    async fn idling(ctx: Arc<ImapContext>, net: u8, i: usize) -> Client {
        let (a, b) = tokio::io::duplex(4096);
        let mut conn = loopback_conn(&format!("i{i}"));
        conn.remote
            .set_ip(std::net::IpAddr::from([127, net, (i >> 8) as u8, i as u8]));
        tokio::spawn(serve(Box::new(b), conn, ctx));
        let (r, w) = tokio::io::split(a);
        let mut c = Client {
            r: BufReader::with_capacity(256, r),
            w,
        };
        c.line().await;
        c.cmd("l", "LOGIN demo demo").await;
        c.cmd("s", "SELECT INBOX").await;
        c.send("i IDLE\r\n").await;
        assert_eq!(c.line().await, "+ idling\r\n");
        c
    }

    pub async fn line(&mut self) -> String {
        let mut l = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut l))
            .await
            .expect("server answers within 10 s")
            .expect("read");
        if n == 0 {
            return String::new();
        }
        l
    }

    pub async fn send(&mut self, raw: &str) {
        self.w.write_all(raw.as_bytes()).await.unwrap();
    }

    /// Sends `tag cmd` and returns every line up to and including the tagged one.
    pub async fn cmd(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.send(&format!("{tag} {cmd}\r\n")).await;
        self.until_tag(tag).await
    }

    pub async fn until_tag(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "connection closed; got so far: {out:?}");
            let done = l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                return out;
            }
        }
    }

    pub async fn login(ctx: Arc<ImapContext>) -> Client {
        let (mut c, _) = Client::start(ctx).await;
        let r = c.cmd("l", "LOGIN demo demo").await;
        assert!(r.last().unwrap().starts_with("l OK"), "{r:?}");
        c
    }

    /// Logs in, appends `msgs` to INBOX (tags a1, a2, ...) and selects INBOX.
    pub(crate) async fn selected(ctx: Arc<ImapContext>, msgs: &[&str]) -> Client {
        let mut c = Client::login(ctx).await;
        for (i, msg) in msgs.iter().enumerate() {
            let tag = format!("a{}", i + 1);
            let r = append_plain(&mut c, &tag, msg).await;
            assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{r:?}");
        }
        let r = c.cmd("s", "SELECT INBOX").await;
        assert!(r.last().unwrap().starts_with("s OK"), "{r:?}");
        c
    }
}

/// The lines without CREATE's `[MAILBOXID (...)] ` code (OBJECTID, RFC 8474), whose id
/// differs from run to run.
fn no_mailboxid(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| match (l.find("[MAILBOXID ("), l.find(")] ")) {
            (Some(a), Some(b)) if a < b => format!("{}{}", &l[..a], &l[b + 3..]),
            _ => l,
        })
        .collect()
}

fn demo() -> Arc<ImapContext> {
    context(TestBackend::demo(), ImapConfig::default())
}

pub(crate) const MSG: &str = "From: Alice <alice@example.com>\r\nTo: demo@example.com\r\nSubject: hello\r\nMessage-ID: <1@example.com>\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n\r\nHello there.\r\n";

pub(crate) async fn append(c: &mut Client, tag: &str, mailbox: &str, msg: &str) -> Vec<String> {
    c.send(&format!(
        "{tag} APPEND {mailbox} (\\Seen) {{{}+}}\r\n{msg}\r\n",
        msg.len()
    ))
    .await;
    c.until_tag(tag).await
}

#[tokio::test]
async fn greeting_capability_and_logout() {
    let (mut c, g) = Client::start(demo()).await;
    assert!(g.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{g}");
    assert!(g.contains("AUTH=PLAIN"), "{g}");
    assert!(g.ends_with("Dovecot-compatible ready.\r\n"), "{g}");
    let r = c.cmd("a", "CAPABILITY").await;
    assert!(r[0].starts_with("* CAPABILITY IMAP4rev1"));
    assert!(r[1].starts_with("a OK"));
    let r = c.cmd("e", "logout").await;
    assert_eq!(
        r,
        vec!["* BYE Logging out\r\n", "e OK Logout completed.\r\n"]
    );
    assert_eq!(c.line().await, "");
}

#[tokio::test]
async fn login_failures_and_plaintext_policy() {
    let backend = TestBackend::demo();
    let ctx = context(backend.clone(), ImapConfig::default());
    let (mut c, _) = Client::start(ctx.clone()).await;
    let r = c.cmd("a", "LOGIN demo wrong").await;
    assert_eq!(
        r,
        vec!["a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"]
    );
    let r = c.cmd("b", "SELECT INBOX").await;
    assert_eq!(r, vec!["b BAD Please log in first.\r\n"]);
    backend
        .plaintext
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (mut c2, g) = Client::start(ctx).await;
    assert!(g.contains("LOGINDISABLED"), "{g}");
    let r = c2.cmd("a", "LOGIN demo demo").await;
    assert_eq!(
        r,
        vec!["a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"]
    );
}

/// SCRAM-SHA-256 and CRAM-MD5 never send the password: offered and accepted where plaintext
/// logins are refused (no TLS), the SCRAM server signature sent before the tagged OK.
#[tokio::test]
async fn challenge_response_mechanisms_without_tls() {
    use crate::sasl::{decode_base64, encode_base64, scram};
    let backend = TestBackend::demo();
    backend
        .plaintext
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let config = ImapConfig {
        auth_mechanisms: vec!["plain".into(), "scram-sha-256".into(), "cram-md5".into()],
        ..ImapConfig::default()
    };
    let ctx = context(backend, config);
    let (mut c, g) = Client::start(ctx.clone()).await;
    assert!(
        g.contains("AUTH=SCRAM-SHA-256 AUTH=CRAM-MD5 LOGINDISABLED") && !g.contains("AUTH=PLAIN"),
        "{g}"
    );
    let r = c.cmd("p", "AUTHENTICATE PLAIN AGRlbW8AZGVtbw==").await;
    assert!(r[0].starts_with("p NO [PRIVACYREQUIRED]"), "{r:?}");

    let first = encode_base64(b"n,,n=demo,r=0123456789");
    c.send(&format!("a AUTHENTICATE SCRAM-SHA-256 {first}\r\n"))
        .await;
    let line = c.line().await;
    let server_first =
        String::from_utf8(decode_base64(line.strip_prefix("+ ").unwrap()).unwrap()).unwrap();
    let (fin, v) = scram::client_final(
        scram::ScramHash::Sha256,
        "demo",
        "n=demo,r=0123456789",
        "n,,",
        &server_first,
    )
    .unwrap();
    c.send(&format!("{}\r\n", encode_base64(fin.as_bytes())))
        .await;
    assert_eq!(
        c.line().await,
        format!("+ {}\r\n", encode_base64(v.as_bytes()))
    );
    c.send("\r\n").await;
    let r = c.until_tag("a").await;
    assert!(r.last().unwrap().starts_with("a OK [CAPABILITY"), "{r:?}");

    // A wrong password: the proof fails, no server signature, AUTHENTICATIONFAILED.
    let (mut c, _) = Client::start(ctx.clone()).await;
    c.send(&format!("b AUTHENTICATE SCRAM-SHA-256 {first}\r\n"))
        .await;
    let line = c.line().await;
    let server_first =
        String::from_utf8(decode_base64(line.strip_prefix("+ ").unwrap()).unwrap()).unwrap();
    let (fin, _) = scram::client_final(
        scram::ScramHash::Sha256,
        "wrong",
        "n=demo,r=0123456789",
        "n,,",
        &server_first,
    )
    .unwrap();
    c.send(&format!("{}\r\n", encode_base64(fin.as_bytes())))
        .await;
    let r = c.until_tag("b").await;
    assert_eq!(
        r,
        vec!["b NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"]
    );
    // Garbage instead of a client-first message is a protocol error, not a crash.
    let r = c.cmd("c", "AUTHENTICATE SCRAM-SHA-256 eHl6").await;
    assert!(
        r[0].starts_with("c BAD Invalid authentication data"),
        "{r:?}"
    );
}

#[tokio::test]
async fn authenticate_plain_with_and_without_initial_response() {
    let (mut c, _) = Client::start(demo()).await;
    // base64("\0demo\0demo")
    let r = c.cmd("a", "AUTHENTICATE PLAIN AGRlbW8AZGVtbw==").await;
    assert!(r.last().unwrap().starts_with("a OK [CAPABILITY "), "{r:?}");
    let (mut c, _) = Client::start(demo()).await;
    c.send("b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ \r\n");
    c.send("AGRlbW8AZGVtbw==\r\n").await;
    let r = c.until_tag("b").await;
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
    let (mut c, _) = Client::start(demo()).await;
    c.send("c AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(c.line().await, "+ VXNlcm5hbWU6\r\n");
    c.send("ZGVtbw==\r\n").await;
    assert_eq!(c.line().await, "+ UGFzc3dvcmQ6\r\n");
    c.send("ZGVtbw==\r\n").await;
    let r = c.until_tag("c").await;
    assert!(r.last().unwrap().starts_with("c OK"), "{r:?}");
}

#[tokio::test]
async fn malformed_commands_get_bad_with_tag() {
    let (mut c, _) = Client::start(demo()).await;
    assert_eq!(
        c.cmd("t1", "FROB").await,
        vec!["t1 BAD Error in IMAP command received by server.\r\n"]
    );
    c.send("\r\n").await;
    assert_eq!(
        c.line().await,
        "* BAD Error in IMAP command received by server.\r\n"
    );
    let r = c.cmd("t2", "LOGIN").await;
    assert_eq!(
        r,
        vec!["t2 BAD Error in IMAP command LOGIN: Invalid arguments.\r\n"]
    );
    // A synchronizing literal gets a continuation; its data is not a command.
    c.send("t3 LOGIN {4}\r\n").await;
    assert_eq!(c.line().await, "+ OK\r\n");
    c.send("demo {11}\r\n").await;
    assert_eq!(c.line().await, "+ OK\r\n");
    c.send("t4 LOGOUT\r\n\r\n").await;
    let r = c.until_tag("t3").await;
    assert_eq!(
        r,
        vec!["t3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"]
    );
    let r = c.cmd("t5", "NOOP").await;
    assert_eq!(r, vec!["t5 OK NOOP completed.\r\n"]);
}

#[tokio::test]
async fn oversized_lines_and_literals() {
    let config = ImapConfig {
        max_line_length: 1000,
        max_literal_size: 100,
        ..ImapConfig::default()
    };
    let (mut c, _) = Client::start(context(TestBackend::demo(), config)).await;
    c.send(&format!("t1 NOOP {}\r\n", "x".repeat(5000))).await;
    assert_eq!(
        c.line().await,
        "t1 BAD Error in IMAP command received by server: Too long argument.\r\n"
    );
    assert_eq!(c.cmd("t2", "NOOP").await, vec!["t2 OK NOOP completed.\r\n"]);
    c.send("t3 APPEND INBOX {101}\r\n").await;
    assert_eq!(
        c.line().await,
        "t3 NO [TOOBIG] Literal too large: 101 bytes, limit 100\r\n"
    );
    assert_eq!(c.cmd("t4", "NOOP").await, vec!["t4 OK NOOP completed.\r\n"]);
    c.send("t5 APPEND INBOX {101+}\r\n").await;
    assert_eq!(
        c.line().await,
        "t5 BAD [TOOBIG] Literal too large: 101 bytes, limit 100\r\n"
    );
    assert!(c.line().await.starts_with("* BYE"));
    assert_eq!(c.line().await, "");
}

#[tokio::test]
async fn login_timeout_disconnects() {
    let config = ImapConfig {
        login_timeout: Duration::from_millis(200),
        ..ImapConfig::default()
    };
    let (mut c, _) = Client::start(context(TestBackend::demo(), config)).await;
    assert_eq!(c.line().await, "* BYE Disconnected for inactivity.\r\n");
    assert_eq!(c.line().await, "");
}

#[tokio::test]
async fn shutdown_says_bye() {
    let ctx = demo();
    let (mut c, _) = Client::start(ctx.clone()).await;
    ctx.shutdown.cancel();
    assert_eq!(c.line().await, "* BYE Server shutting down.\r\n");
}

#[tokio::test]
async fn troubleshooting_transcript() {
    let mut c = Client::login(demo()).await;
    let r = c.cmd("b", "select inbox").await;
    assert!(
        r.contains(&"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n".to_string()),
        "{r:?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with(
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
        )),
        "{r:?}"
    );
    assert!(
        r.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")),
        "{r:?}"
    );
    assert!(r.iter().any(|l| l.starts_with("* OK [UIDNEXT 1]")), "{r:?}");
    assert!(r.contains(&"* 0 EXISTS\r\n".to_string()), "{r:?}");
    assert_eq!(r.last().unwrap(), "b OK [READ-WRITE] Select completed.\r\n");
    let r = append(&mut c, "ap", "INBOX", MSG).await;
    assert!(r.contains(&"* 1 EXISTS\r\n".to_string()), "{r:?}");
    assert!(r.last().unwrap().starts_with("ap OK [APPENDUID "), "{r:?}");
    let r = c.cmd("c", "list \"\" *").await;
    for (attrs, name) in [
        ("\\HasNoChildren", "INBOX"),
        ("\\HasNoChildren \\Trash", "Trash"),
        ("\\HasNoChildren \\Sent", "Sent"),
        ("\\HasNoChildren \\Drafts", "Drafts"),
        ("\\HasNoChildren \\Junk", "Junk"),
        ("\\HasNoChildren \\Archive", "Archive"),
    ] {
        let want = format!("* LIST ({attrs}) \"/\" {name}\r\n");
        assert!(r.contains(&want), "{want} not in {r:?}");
    }
    assert_eq!(r.last().unwrap(), "c OK List completed.\r\n");
    let r = c.cmd("d", "lsub \"\" *").await;
    assert_eq!(r.last().unwrap(), "d OK Lsub completed.\r\n");
    let r = c.cmd("4", "CREATE Trash").await;
    assert_eq!(r, vec!["4 NO [ALREADYEXISTS] Mailbox already exists\r\n"]);
    let r = c.cmd("5", "COPY 1 Trash").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].starts_with("5 OK [COPYUID "), "{r:?}");
    assert!(r[0].ends_with(" 1 1] Copy completed.\r\n"), "{r:?}");
    let r = c.cmd("6", "STORE 1 +FLAGS \\Deleted").await;
    assert_eq!(
        r,
        vec![
            "* 1 FETCH (FLAGS (\\Seen \\Deleted \\Recent))\r\n",
            "6 OK Store completed.\r\n"
        ]
    );
    let r = c.cmd("e", "logout").await;
    assert_eq!(
        r,
        vec!["* BYE Logging out\r\n", "e OK Logout completed.\r\n"]
    );
}

#[tokio::test]
async fn mailbox_management() {
    let mut c = Client::login(demo()).await;
    assert_eq!(
        no_mailboxid(c.cmd("a", "CREATE Work/Projects").await),
        vec!["a OK Create completed.\r\n"]
    );
    let r = c.cmd("b", "LIST \"\" Work*").await;
    assert!(
        r.contains(&"* LIST (\\HasChildren) \"/\" Work\r\n".to_string())
            || r.contains(&"* LIST (\\Noselect \\HasChildren) \"/\" Work\r\n".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" Work/Projects\r\n".to_string()),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("c", "RENAME Work/Projects Work/Done").await,
        vec!["c OK Rename completed.\r\n"]
    );
    assert_eq!(
        c.cmd("d", "SUBSCRIBE Work/Done").await,
        vec!["d OK Subscribe completed.\r\n"]
    );
    let r = c.cmd("e", "LSUB \"\" *").await;
    assert!(
        r.contains(&"* LSUB () \"/\" Work/Done\r\n".to_string()),
        "{r:?}"
    );
    let r = c
        .cmd(
            "f",
            "LIST (SUBSCRIBED) \"\" * RETURN (STATUS (MESSAGES UIDNEXT))",
        )
        .await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* LIST (\\HasNoChildren \\Subscribed) \"/\" Work/Done")),
        "{r:?}"
    );
    assert!(
        r.contains(&"* STATUS Work/Done (MESSAGES 0 UIDNEXT 1)\r\n".to_string()),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("g", "DELETE Work/Done").await,
        vec!["g OK Delete completed.\r\n"]
    );
    let r = c.cmd("h", "DELETE Nope").await;
    assert!(r[0].starts_with("h NO [NONEXISTENT]"), "{r:?}");
    let r = c
        .cmd(
            "i",
            "STATUS INBOX (MESSAGES UNSEEN UIDNEXT SIZE HIGHESTMODSEQ)",
        )
        .await;
    assert!(
        r[0].starts_with("* STATUS INBOX (MESSAGES 0 UNSEEN 0 UIDNEXT 1 SIZE 0 HIGHESTMODSEQ "),
        "{r:?}"
    );
    assert_eq!(
        no_mailboxid(c.cmd("j", "CREATE \"Entw&APw-rfe\"").await),
        vec!["j OK Create completed.\r\n"]
    );
    let r = c.cmd("k", "LIST \"\" Entw*").await;
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\n".to_string()),
        "{r:?}"
    );
    c.cmd("l", "ENABLE UTF8=ACCEPT").await;
    let r = c.cmd("m", "LIST \"\" Entw*").await;
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n".to_string()),
        "{r:?}"
    );
    let r = c.cmd("n", "NAMESPACE").await;
    assert_eq!(
        r[0],
        "* NAMESPACE ((\"\" \"/\")) ((\"shared/\" \"/\")) NIL\r\n"
    );
}

#[tokio::test]
async fn two_sessions_see_each_other_and_idle_pushes() {
    let ctx = demo();
    let mut a = Client::selected(ctx.clone(), &[]).await;
    let mut b = Client::selected(ctx.clone(), &[]).await;
    a.send("i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    let t = std::time::Instant::now();
    append(&mut b, "x", "INBOX", MSG).await;
    assert_eq!(a.line().await, "* 1 EXISTS\r\n");
    assert!(t.elapsed() < Duration::from_millis(2000));
    // \Recent goes to whichever of the two sessions saw the message first.
    let a_has_recent = match a.line().await.as_str() {
        "* 1 RECENT\r\n" => true,
        "* 0 RECENT\r\n" => false,
        other => panic!("{other}"),
    };
    // A flag change by b shows up as FETCH in a's IDLE.
    b.cmd("y", "STORE 1 +FLAGS (\\Flagged)").await;
    let want = if a_has_recent {
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged \\Recent))\r\n"
    } else {
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged))\r\n"
    };
    assert_eq!(a.line().await, want);
    a.send("DONE\r\n").await;
    assert_eq!(a.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
    // An expunge by b is not announced to a during FETCH, but is at NOOP.
    b.cmd("z", "STORE 1 +FLAGS (\\Deleted)").await;
    b.cmd("z2", "EXPUNGE").await;
    let r = a.cmd("f", "FETCH 1 (FLAGS)").await;
    assert!(!r.iter().any(|l| l.contains("EXPUNGE")), "{r:?}");
    let r = a.cmd("n", "NOOP").await;
    assert!(r.contains(&"* 1 EXPUNGE\r\n".to_string()), "{r:?}");
}

#[tokio::test]
async fn write_gate_refuses() {
    let backend = TestBackend::demo();
    let mut c = Client::login(context(backend.clone(), ImapConfig::default())).await;
    backend.refuse_writes(Some("This node is not active"));
    let r = c.cmd("a", "CREATE X").await;
    assert_eq!(r, vec!["a NO [UNAVAILABLE] This node is not active\r\n"]);
    backend.refuse_writes(None);
    let before = backend.committed.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        no_mailboxid(c.cmd("b", "CREATE X").await),
        vec!["b OK Create completed.\r\n"]
    );
    assert_eq!(
        backend.committed.load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
}

#[tokio::test]
async fn write_whose_commit_is_refused_is_no_unavailable() {
    let backend = TestBackend::demo();
    let mut c = Client::login(context(backend.clone(), ImapConfig::default())).await;
    backend.refuse_commits(Some("this node is not active (epoch 3)"));
    for (tag, cmd) in [("a", "CREATE X"), ("b", "APPEND INBOX {1+}\r\nx")] {
        assert_eq!(
            c.cmd(tag, cmd).await,
            vec![format!(
                "{tag} NO [UNAVAILABLE] this node is not active (epoch 3)\r\n"
            )]
        );
    }
}

#[tokio::test]
async fn connection_limit_per_user_and_ip() {
    let ctx = demo();
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(Client::login(ctx.clone()).await);
    }
    let (mut c, _) = Client::start(ctx.clone()).await;
    let r = c.cmd("a", "LOGIN demo demo").await;
    assert_eq!(
        r,
        vec!["a NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)\r\n"]
    );
    let mut first = clients.remove(0);
    first.cmd("z", "LOGOUT").await;
    assert_eq!(first.line().await, "");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = c.cmd("b", "LOGIN demo demo").await;
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
}

async fn append_plain(c: &mut Client, tag: &str, msg: &str) -> Vec<String> {
    c.send(&format!(
        "{tag} APPEND INBOX {{{}+}}\r\n{msg}\r\n",
        msg.len()
    ))
    .await;
    c.until_tag(tag).await
}

/// Reads a whole FETCH response with literals: lines joined.
async fn fetch_all(c: &mut Client, tag: &str, cmd: &str) -> String {
    c.cmd(tag, cmd).await.concat()
}

#[tokio::test]
async fn fetch_items_and_implicit_seen() {
    let mut c = Client::selected(demo(), &[MSG]).await;
    let r = fetch_all(&mut c, "f1", "FETCH 1 (UID FLAGS RFC822.SIZE INTERNALDATE)").await;
    assert!(
        r.starts_with(&format!(
            "* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE {} INTERNALDATE \"",
            MSG.len()
        )),
        "{r}"
    );
    let r = fetch_all(&mut c, "f2", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
    assert_eq!(
        r,
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)\r\nf2 OK Fetch completed.\r\n"
    );
    let r = fetch_all(&mut c, "f3", "UID FETCH 1 (BODY[TEXT])").await;
    assert_eq!(
        r,
        "* 1 FETCH (UID 1 BODY[TEXT] {14}\r\nHello there.\r\n FLAGS (\\Seen \\Recent))\r\nf3 OK Fetch completed.\r\n"
    );
    let r = fetch_all(&mut c, "f4", "FETCH 1 (BODY[]<0.4>)").await;
    assert!(
        r.starts_with("* 1 FETCH (BODY[]<0> {4}\r\nFrom)\r\n"),
        "{r}"
    );
    let r = fetch_all(&mut c, "f5", "FETCH 1 (ENVELOPE BODYSTRUCTURE)").await;
    assert!(r.contains("ENVELOPE (\"Mon, 23 Nov 2026 05:00:00 +0000\" \"hello\" ((\"Alice\" NIL \"alice\" \"example.com\"))"), "{r}");
    assert!(r.contains("BODYSTRUCTURE (\"text\" \"plain\""), "{r}");
    let r = c.cmd("f6", "FETCH 2 FLAGS").await;
    assert_eq!(
        r,
        vec!["f6 BAD Error in IMAP command FETCH: Invalid messageset\r\n"]
    );
    let r = c.cmd("f7", "UID FETCH 5:9 FLAGS").await;
    assert_eq!(r, vec!["f7 OK Fetch completed.\r\n"]);
}

#[tokio::test]
async fn search_forms() {
    let other = MSG.replace("hello", "other");
    let mut c = Client::selected(demo(), &[MSG, &other, MSG]).await;
    c.cmd("st", "STORE 2 +FLAGS (\\Seen)").await;
    assert_eq!(c.cmd("q1", "SEARCH UNSEEN").await[0], "* SEARCH 1 3\r\n");
    assert_eq!(
        c.cmd("q2", "UID SEARCH SUBJECT hello").await[0],
        "* SEARCH 1 3\r\n"
    );
    assert_eq!(
        c.cmd("q3", "SEARCH CHARSET UTF-8 BODY there NOT SEEN")
            .await[0],
        "* SEARCH 1 3\r\n"
    );
    assert_eq!(
        c.cmd("q4", "SEARCH CHARSET KOI8-R ALL").await,
        vec!["q4 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n"]
    );
    assert_eq!(
        c.cmd("q5", "UID SEARCH RETURN (MIN MAX COUNT) ALL").await[0],
        "* ESEARCH (TAG \"q5\") UID MIN 1 MAX 3 COUNT 3\r\n"
    );
    assert_eq!(
        c.cmd("q6", "SEARCH RETURN () OR SEEN SUBJECT nothing")
            .await[0],
        "* ESEARCH (TAG \"q6\") ALL 2\r\n"
    );
    // The first CONDSTORE-enabling command: HIGHESTMODSEQ first (RFC 7162 3.1).
    let r = c.cmd("q7", "SEARCH MODSEQ 1").await;
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert!(r[1].starts_with("* SEARCH 1 2 3 (MODSEQ "), "{r:?}");
}

#[tokio::test]
async fn sort_forms() {
    // Base subjects: "hello", "apple", "hello"; senders alice, zed, bob; dates 05:00, 04:00,
    // none (internal date, now: the latest).
    let m1 = MSG.replace("Subject: hello", "Subject: Re: [list] hello");
    let m2 = MSG
        .replace("Subject: hello", "Subject: =?utf-8?q?Fwd=3A_Apple?= (fwd)")
        .replace("Alice <alice@", "\"Aaron\" <Zed@")
        .replace("05:00:00", "04:00:00");
    let m3 = MSG
        .replace("Alice <alice@", "<bob@")
        .replace("Date: Mon, 23 Nov 2026 05:00:00 +0000\r\n", "");
    let mut c = Client::selected(demo(), &[&m1, &m2, &m3]).await;
    assert_eq!(
        c.cmd("o1", "SORT (SUBJECT) UTF-8 ALL").await[0],
        "* SORT 2 1 3\r\n"
    );
    assert_eq!(
        c.cmd("o2", "SORT (REVERSE SUBJECT FROM) UTF-8 ALL").await[0],
        "* SORT 1 3 2\r\n"
    );
    assert_eq!(
        c.cmd("o3", "UID SORT (DATE) US-ASCII NOT UID 3").await[0],
        "* SORT 2 1\r\n"
    );
    assert_eq!(
        c.cmd("o4", "SORT (DISPLAYFROM) UTF-8 ALL").await[0],
        "* SORT 2 1 3\r\n"
    );
    assert_eq!(
        c.cmd("o5", "SORT (REVERSE DATE) UTF-8 ALL").await[0],
        "* SORT 3 1 2\r\n"
    );
    assert_eq!(
        c.cmd("o6", "SORT (ARRIVAL) KOI8-R ALL").await,
        vec!["o6 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n"]
    );
    assert_eq!(
        c.cmd(
            "o7",
            "UID SORT RETURN (MIN MAX ALL COUNT) (REVERSE DATE) UTF-8 ALL"
        )
        .await[0],
        "* ESEARCH (TAG \"o7\") UID MIN 3 MAX 2 ALL 3,1:2 COUNT 3\r\n"
    );
    let r = c.cmd("o8", "CAPABILITY").await;
    assert!(r[0].contains(" SORT SORT=DISPLAY ESORT "), "{r:?}");
}

#[tokio::test]
async fn condstore_and_qresync() {
    let mut c = Client::login(demo()).await;
    append_plain(&mut c, "a1", MSG).await;
    append_plain(&mut c, "a2", MSG).await;
    let r = c.cmd("e", "ENABLE QRESYNC").await;
    assert_eq!(r[0], "* ENABLED QRESYNC\r\n");
    let r = c.cmd("s", "SELECT INBOX (CONDSTORE)").await;
    let hms = r
        .iter()
        .find_map(|l| l.strip_prefix("* OK [HIGHESTMODSEQ "))
        .and_then(|l| l.split(']').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("HIGHESTMODSEQ");
    let uv = r
        .iter()
        .find_map(|l| l.strip_prefix("* OK [UIDVALIDITY "))
        .and_then(|l| l.split(']').next())
        .expect("UIDVALIDITY")
        .to_string();
    let r = c.cmd("t", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert!(r[0].starts_with("* 1 FETCH (MODSEQ ("), "{r:?}");
    let r = c
        .cmd("u", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms})"))
        .await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ ("),
        "{r:?}"
    );
    let r = c
        .cmd("v", "STORE 2 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)")
        .await;
    assert!(r.last().unwrap().starts_with("v OK [MODIFIED 2]"), "{r:?}");
    c.cmd("w", "STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.cmd("x", "UID EXPUNGE 2").await;
    assert_eq!(r, vec!["* VANISHED 2\r\n", "x OK Expunge completed.\r\n"]);
    c.cmd("y", "UNSELECT").await;
    let r = c
        .cmd("z", &format!("SELECT INBOX (QRESYNC ({uv} {hms}))"))
        .await;
    assert!(r.iter().any(|l| l == "* VANISHED (EARLIER) 2\r\n"), "{r:?}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (")),
        "{r:?}"
    );
}

#[tokio::test]
async fn move_and_uidplus() {
    let mut c = Client::selected(demo(), &[MSG, MSG]).await;
    let r = c.cmd("m", "MOVE 1 Archive").await;
    assert_eq!(
        r,
        vec![
            "* OK [COPYUID 0 1 1] Moved UIDs.\r\n"
                .replace(" 0 ", &format!(" {} ", uidvalidity_of(&r[0]))),
            "* 1 EXPUNGE\r\n".to_string(),
            "m OK Move completed.\r\n".to_string()
        ]
    );
    let r = c.cmd("n", "COPY 1 Nowhere").await;
    assert_eq!(
        r,
        vec!["n NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n"]
    );
    let r = c.cmd("o", "STATUS Archive (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Archive (MESSAGES 1)\r\n");
    c.cmd("p", "STORE 1 +FLAGS (\\Deleted)").await;
    let r = c.cmd("q", "CLOSE").await;
    assert_eq!(r, vec!["q OK Close completed.\r\n"]);
    let r = c.cmd("r", "STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 0)\r\n");
}

fn uidvalidity_of(line: &str) -> String {
    line.split_whitespace().nth(3).unwrap_or("").to_string()
}

#[tokio::test]
async fn pre_auth_literals_are_small() {
    let (mut c, _) = Client::start(demo()).await;
    c.send("t1 LOGIN {100000}\r\n").await;
    assert_eq!(
        c.line().await,
        format!(
            "t1 NO [TOOBIG] Literal too large: 100000 bytes, limit {}\r\n",
            crate::imap::session::PRE_AUTH_MAX_LITERAL
        )
    );
    assert_eq!(c.cmd("t2", "NOOP").await, vec!["t2 OK NOOP completed.\r\n"]);
}

/// STARTTLS with an upgrade that keeps the stream as it is: what the session does around it.
struct IdentityTls;

#[async_trait::async_trait]
impl crate::stream::TlsUpgrade for IdentityTls {
    async fn upgrade(
        &self,
        stream: crate::stream::BoxStream,
    ) -> std::io::Result<crate::stream::BoxStream> {
        Ok(stream)
    }
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let ctx = Arc::new(ImapContext {
        backend: TestBackend::demo(),
        tls: Some(Arc::new(IdentityTls)),
        config: ImapConfig::default(),
        shutdown: CancellationToken::new(),
    });
    let (mut c, g) = Client::start(ctx).await;
    assert!(g.contains(" STARTTLS "), "{g}");
    // The injected command after STARTTLS must never run (CVE-2011-0411 style).
    c.send("s STARTTLS\r\nx LOGIN demo demo\r\n").await;
    assert_eq!(c.line().await, "s OK Begin TLS negotiation now.\r\n");
    let r = c.cmd("c", "CAPABILITY").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(!r[0].contains("STARTTLS"), "{r:?}");
    let r = c.cmd("d", "STARTTLS").await;
    assert_eq!(r, vec!["d BAD TLS is already active.\r\n"]);
}

#[tokio::test]
async fn autologout_when_idle_but_not_in_idle() {
    let config = ImapConfig {
        idle_timeout: Duration::from_millis(300),
        idle_notify_interval: Duration::from_secs(1),
        ..ImapConfig::default()
    };
    let ctx = context(TestBackend::demo(), config);
    let mut a = Client::login(ctx.clone()).await;
    let mut b = Client::login(ctx).await;
    b.send("i IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling\r\n");
    assert_eq!(a.line().await, "* BYE Disconnected for inactivity.\r\n");
    // IDLE is excepted from the autologout and gets its keepalive instead.
    assert_eq!(b.line().await, "* OK Still here\r\n");
    b.send("DONE\r\n").await;
    assert_eq!(b.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
}

#[tokio::test]
async fn idle_push_latency() {
    let ctx = demo();
    let mut a = Client::selected(ctx.clone(), &[]).await;
    let mut b = Client::login(ctx).await;
    a.send("i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    let mut worst = Duration::ZERO;
    for n in 1..=20u32 {
        let r = append_plain(&mut b, "x", MSG).await;
        // The append is acknowledged (durable); from here the idling session must hear of it.
        let acked = std::time::Instant::now();
        assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
        assert_eq!(a.line().await, format!("* {n} EXISTS\r\n"));
        worst = worst.max(acked.elapsed());
        let l = a.line().await;
        assert!(l.starts_with("* ") && l.ends_with(" RECENT\r\n"), "{l}");
    }
    eprintln!("IDLE push latency after durable append, worst of 20: {worst:?}");
    assert!(worst < Duration::from_millis(100), "worst {worst:?}");
}

/// More idlers of one mailbox than the hub rings in one batch (imap::changes): every one hears
/// of each delivery, each message \Recent in exactly one of them, delivery after delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idlers_beyond_one_ring_batch_all_hear_every_delivery() {
    const N: usize = 300;
    let ctx = demo();
    let mut writer = Client::login(ctx.clone()).await;
    let mut idlers = Vec::with_capacity(N);
    for i in 0..N {
        idlers.push(Client::idling(ctx.clone(), 2, i).await);
    }
    for n in 1..=3u32 {
        let r = append_plain(&mut writer, "x", MSG).await;
        assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
        let mut recent = 0;
        for c in idlers.iter_mut() {
            let exists = tokio::time::timeout(Duration::from_secs(10), c.line())
                .await
                .expect("every idler hears of the delivery");
            assert_eq!(exists, format!("* {n} EXISTS\r\n"));
            let l = c.line().await;
            let count = l
                .strip_prefix("* ")
                .and_then(|r| r.strip_suffix(" RECENT\r\n"))
                .and_then(|v| v.parse::<u32>().ok());
            recent += count.unwrap_or_else(|| panic!("RECENT line expected: {l}"));
        }
        // Each message is \Recent in exactly one session.
        assert_eq!(recent, n, "RECENT counts summed over the idlers");
    }
    for c in idlers.iter_mut().take(3) {
        c.send("DONE\r\n").await;
        assert_eq!(c.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
    }
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    "NOOP",
    "CAPABILITY",
    "SELECT INBOX",
    "EXAMINE \"Trash\"",
    "FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODYSTRUCTURE)",
    "UID FETCH 1:* (BODY[]<0.10> ENVELOPE RFC822.SIZE) (CHANGEDSINCE 1)",
    "STORE 1 +FLAGS.SILENT (\\Seen $Junk)",
    "UID STORE 1:* -FLAGS (\\Deleted)",
    "SEARCH OR (FROM alice) (SUBJECT \"x y\") NOT SEEN SINCE 1-Jan-2020",
    "UID SEARCH RETURN (MIN MAX COUNT) UID 1:* LARGER 10",
    "LIST (SUBSCRIBED) \"\" (\"INBOX\" \"%\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))",
    "LIST \"\" \"*\"",
    "LSUB \"\" %",
    "STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)",
    "CREATE \"Fuzz/&AKM-\"",
    "CREATE Spam (USE (\\Junk))",
    "RENAME Fuzz Fuzz2",
    "DELETE Fuzz2",
    "SUBSCRIBE INBOX",
    "COPY 1:2 Trash",
    "MOVE 1 Archive",
    "UID EXPUNGE 1:3",
    "EXPUNGE",
    "CHECK",
    "UNSELECT",
    "CLOSE",
    "ENABLE CONDSTORE UTF8=ACCEPT",
    "NAMESPACE",
    "ID (\"name\" \"fuzz\")",
    "APPEND INBOX (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {5+}\r\nhello",
];

fn mutate(rng: &mut Rng) -> Vec<u8> {
    let seed = SEEDS[rng.below(SEEDS.len())].as_bytes();
    let mut line = seed.to_vec();
    match rng.below(6) {
        0 => line.truncate(rng.below(line.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(line.len() + 1);
                line.insert(at, (rng.next() & 0xff) as u8);
            }
        }
        2 => {
            for _ in 0..1 + rng.below(4) {
                if !line.is_empty() {
                    let at = rng.below(line.len());
                    line[at] = b"()[]{}<>\"\\*%~+0 .:,"[rng.below(19)];
                }
            }
        }
        3 => {
            line = (0..rng.below(200))
                .map(|_| (rng.next() & 0xff) as u8)
                .collect()
        }
        4 => line.extend(std::iter::repeat_n(b'A', 70_000 + rng.below(10_000))),
        _ => {}
    }
    // Bytes that would end the line early, or turn the next line into literal data, go: the
    // test wants exactly one completion per line it sends.
    let literal_at_end = |l: &[u8]| crate::imap::framing::literal_at_end(l).is_some();
    line.retain(|&b| b != b'\n' && b != b'\r');
    if let Some(p) = seed.windows(2).position(|w| w == b"\r\n") {
        // Only the unmutated APPEND keeps its literal (whole and non-synchronizing).
        if line != seed {
            line.truncate(p.min(line.len()));
        } else {
            return line;
        }
    }
    while literal_at_end(&line) {
        line.pop();
    }
    line
}

#[tokio::test]
async fn random_truncated_and_oversized_lines_are_all_answered() {
    let ctx = demo();
    let mut c = Client::selected(ctx.clone(), &[MSG; 3]).await;
    let mut other = Client::login(ctx.clone()).await;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let started = std::time::Instant::now();
    let mut n = 0;
    while n < 3000 && started.elapsed() < Duration::from_secs(60) {
        let body = mutate(&mut rng);
        let first = body
            .split(|&b| b == b' ')
            .next()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        // These wait for more input or end the session by design.
        if [
            &b"LOGOUT"[..],
            b"IDLE",
            b"AUTHENTICATE",
            b"STARTTLS",
            b"DONE",
        ]
        .contains(&first.as_slice())
        {
            continue;
        }
        let tag = format!("r{n}");
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(&body);
        line.extend_from_slice(b"\r\n");
        c.w.write_all(&line).await.unwrap();
        // Read until this command's completion (tagged; never a BYE).
        loop {
            let l = c.line().await;
            assert!(
                !l.is_empty(),
                "closed after {:?}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            );
            assert!(!l.starts_with("* BYE"), "{l}");
            if l.starts_with(&format!("{tag} ")) {
                break;
            }
            // A literal in a FETCH response: skip its bytes.
            if let Some((size, _)) = crate::imap::framing::literal_at_end(l.as_bytes()) {
                let mut skip = vec![0u8; size as usize];
                tokio::io::AsyncReadExt::read_exact(&mut c.r, &mut skip)
                    .await
                    .unwrap();
            }
        }
        n += 1;
        if n % 500 == 0 {
            // Another session of the same user is served all along.
            assert_eq!(
                other.cmd("o", "NOOP").await.last().unwrap(),
                "o OK NOOP completed.\r\n"
            );
        }
    }
    assert!(n >= 1000, "only {n} lines in the time bound");
    assert_eq!(
        c.cmd("z", "NOOP").await.last().unwrap(),
        "z OK NOOP completed.\r\n"
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Memory of idling sessions, in process (duplex streams, no sockets): run by hand with
/// `cargo test -p protocols --release --lib imap::tests::many_idle_sessions -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn many_idle_sessions() {
    const N: usize = 10_000;
    let ctx = demo();
    // Warm the user's store so its one-time cost is not counted per session.
    drop(Client::login(ctx.clone()).await);
    let before = rss_kib();
    let mut clients = Vec::with_capacity(N);
    for i in 0..N {
        clients.push(Client::idling(ctx.clone(), 1, i).await);
    }
    let after = rss_kib();
    eprintln!(
        "{N} idling sessions (in-process, duplex streams): RSS {before} KiB -> {after} KiB, {:.1} KiB per session",
        (after.saturating_sub(before)) as f64 / N as f64
    );
    let mut c = clients.pop().unwrap();
    c.send("DONE\r\n").await;
    assert_eq!(c.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
}

#[tokio::test]
async fn selection_edge_cases() {
    let mut c = Client::login(demo()).await;
    let r = c.cmd("a", "SELECT Nope").await;
    assert_eq!(
        r,
        vec!["a NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n"]
    );
    assert_eq!(
        c.cmd("b", "FETCH 1 FLAGS").await,
        vec!["b BAD No mailbox selected.\r\n"]
    );
    let r = c.cmd("c", "EXAMINE INBOX").await;
    assert_eq!(r.last().unwrap(), "c OK [READ-ONLY] Examine completed.\r\n");
    assert!(
        r.contains(&"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n".to_string()),
        "{r:?}"
    );
    // Empty mailbox: "*" resolves to nothing for UID ranges, and is invalid as a sequence number.
    assert_eq!(
        c.cmd("d", "UID FETCH 1:* FLAGS").await,
        vec!["d OK Fetch completed.\r\n"]
    );
    assert_eq!(
        c.cmd("e", "FETCH 1:* FLAGS").await,
        vec!["e BAD Error in IMAP command FETCH: Invalid messageset\r\n"]
    );
    append_plain(&mut c, "f", MSG).await;
    assert_eq!(
        c.cmd("g", "STORE 1 +FLAGS (\\Seen)").await,
        vec!["g NO [READ-ONLY] Mailbox is read-only.\r\n"]
    );
    // BODY[] in a read-only mailbox does not set \Seen.
    let r = fetch_all(&mut c, "h", "FETCH 1 (BODY[TEXT])").await;
    assert!(!r.contains("\\Seen"), "{r}");
    let r = c.cmd("i", "APPEND Missing {1+}\r\nx").await;
    assert_eq!(
        r,
        vec!["i NO [TRYCREATE] Mailbox doesn't exist: Missing\r\n"]
    );
    let r = no_mailboxid(c.cmd("j", "CREATE Spam (USE (\\Junk))").await);
    assert_eq!(r, vec!["j OK Create completed.\r\n"]);
    let r = c.cmd("k", "CAPABILITY").await;
    assert!(r[0].contains(" APPENDLIMIT=67108864"), "{r:?}");
}

#[tokio::test]
async fn imap4rev2_mode() {
    let mut c = Client::login(demo()).await;
    append_plain(&mut c, "a", MSG).await;
    assert_eq!(
        c.cmd("e", "ENABLE IMAP4rev2").await[0],
        "* ENABLED IMAP4rev2\r\n"
    );
    let r = c.cmd("s", "SELECT INBOX").await;
    assert!(
        !r.iter()
            .any(|l| l.contains("RECENT") || l.contains("[UNSEEN")),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("q", "SEARCH ALL").await[0],
        "* ESEARCH (TAG \"q\") ALL 1\r\n"
    );
    assert_eq!(
        c.cmd("u", "UID SEARCH UNSEEN").await[0],
        "* ESEARCH (TAG \"u\") UID ALL 1\r\n"
    );
    assert_eq!(
        no_mailboxid(c.cmd("c", "CREATE \"Entwürfe\"").await),
        vec!["c OK Create completed.\r\n"]
    );
    let r = c.cmd("l", "LIST \"\" Entw%").await;
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n");
}

#[tokio::test]
async fn recent_belongs_to_one_session() {
    let ctx = demo();
    let mut a = Client::login(ctx.clone()).await;
    append_plain(&mut a, "x1", MSG).await;
    append_plain(&mut a, "x2", MSG).await;
    // Nobody had INBOX selected: both messages are recent for the first SELECT, and only there.
    let r = a.cmd("s", "SELECT INBOX").await;
    assert!(r.contains(&"* 2 RECENT\r\n".to_string()), "{r:?}");
    let mut b = Client::login(ctx.clone()).await;
    let r = b.cmd("st", "STATUS INBOX (RECENT MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (RECENT 0 MESSAGES 2)\r\n");
    let r = b.cmd("s", "SELECT INBOX").await;
    assert!(r.contains(&"* 0 RECENT\r\n".to_string()), "{r:?}");
    let r = fetch_all(&mut a, "f", "FETCH 1 FLAGS").await;
    assert_eq!(
        r,
        "* 1 FETCH (FLAGS (\\Recent))\r\nf OK Fetch completed.\r\n"
    );
}

#[tokio::test]
async fn login_timeout_counts_from_connect() {
    let config = ImapConfig {
        login_timeout: Duration::from_millis(400),
        ..ImapConfig::default()
    };
    let (mut c, _) = Client::start(context(TestBackend::demo(), config)).await;
    let started = std::time::Instant::now();
    // Trickling commands does not extend the time to log in.
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // The server may already have closed: that is the point.
        let _ = c.w.write_all(format!("n{i} NOOP\r\n").as_bytes()).await;
    }
    let mut lines = Vec::new();
    loop {
        let l = c.line().await;
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    assert!(
        lines.contains(&"* BYE Disconnected for inactivity.\r\n".to_string()),
        "{lines:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn selected_mailbox_deleted_elsewhere_ends_the_session() {
    let ctx = demo();
    let mut a = Client::login(ctx.clone()).await;
    let mut b = Client::login(ctx.clone()).await;
    a.cmd("c", "CREATE Work").await;
    a.cmd("s", "SELECT Work").await;
    assert_eq!(
        b.cmd("d", "DELETE Work").await,
        vec!["d OK Delete completed.\r\n"]
    );
    let r = a.cmd("n", "NOOP").await;
    assert_eq!(
        r,
        vec![
            "* BYE Selected mailbox was deleted, have to disconnect.\r\n",
            "n OK NOOP completed.\r\n"
        ]
    );
    assert_eq!(a.line().await, "");
}

#[tokio::test]
async fn renaming_the_selected_mailbox_keeps_it_selected() {
    let mut a = Client::login(demo()).await;
    a.cmd("c", "CREATE Work").await;
    a.cmd("s", "SELECT Work").await;
    assert_eq!(
        a.cmd("r", "RENAME Work Job").await,
        vec!["r OK Rename completed.\r\n"]
    );
    assert_eq!(a.cmd("n", "NOOP").await, vec!["n OK NOOP completed.\r\n"]);
    let r = a.cmd("ap", "APPEND Job {1+}\r\nx").await;
    assert!(r.contains(&"* 1 EXISTS\r\n".to_string()), "{r:?}");
}

#[tokio::test]
async fn percent_lists_parents_of_deeper_names() {
    let mut c = Client::login(demo()).await;
    c.cmd("c", "CREATE a/b/c").await;
    c.cmd("s", "SUBSCRIBE x/y").await;
    let r = c.cmd("l", "LIST \"\" a/%").await;
    assert_eq!(
        r,
        vec![
            "* LIST (\\Noselect \\HasChildren) \"/\" a/b\r\n",
            "l OK List completed.\r\n"
        ]
    );
    let r = c.cmd("m", "LSUB \"\" %").await;
    assert!(
        r.contains(&"* LSUB (\\Noselect) \"/\" x\r\n".to_string()),
        "{r:?}"
    );
    let r = c.cmd("n", "LIST \"\" *").await;
    assert!(
        r.contains(&"* LIST (\\Noselect \\HasChildren) \"/\" a\r\n".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" a/b/c\r\n".to_string()),
        "{r:?}"
    );
}

/// imaptest `expunge`: another session expunges 1 and 3 of 4 and flags 2 and 4; the
/// EXPUNGEs come first and the FETCHes carry the sequence numbers left after them.
#[tokio::test]
async fn expunges_come_before_fetches_with_new_numbers() {
    let ctx = demo();
    let mut a = Client::selected(ctx.clone(), &[MSG; 4]).await;
    let mut b = Client::selected(ctx.clone(), &[]).await;
    a.cmd("d", "STORE 1,3 +FLAGS.SILENT (\\Deleted)").await;
    a.cmd("e", "EXPUNGE").await;
    a.cmd("f", "STORE 1,2 +FLAGS.SILENT (\\Flagged)").await;
    let r = b.cmd("c", "CHECK").await;
    let untagged: Vec<&str> = r
        .iter()
        .filter(|l| l.starts_with("* "))
        .map(|l| l.as_str())
        .collect();
    assert_eq!(untagged.len(), 4, "{r:?}");
    assert_eq!(untagged[0], "* 3 EXPUNGE\r\n");
    assert_eq!(untagged[1], "* 1 EXPUNGE\r\n");
    assert!(
        untagged[2].starts_with("* 1 FETCH (UID 2 FLAGS (\\Flagged"),
        "{r:?}"
    );
    assert!(
        untagged[3].starts_with("* 2 FETCH (UID 4 FLAGS (\\Flagged"),
        "{r:?}"
    );
    // A message expunged elsewhere but not yet announced (no expunges during FETCH) gets
    // no FETCH for its flag change; the others keep their current numbers.
    a.cmd("h", "STORE 1:2 +FLAGS.SILENT (\\Seen)").await;
    a.cmd("i", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.cmd("j", "EXPUNGE").await;
    let r = b.cmd("k", "FETCH 2 UID").await;
    assert!(!r.iter().any(|l| l.starts_with("* 1 FETCH")), "{r:?}");
    assert!(!r.iter().any(|l| l.contains("EXPUNGE")), "{r:?}");
    assert!(
        r.iter().any(|l| l.starts_with("* 2 FETCH (UID 4 ")),
        "{r:?}"
    );
    let r = b.cmd("l", "NOOP").await;
    assert_eq!(r[0], "* 1 EXPUNGE\r\n", "{r:?}");
}

/// imaptest `atoms`: LIST patterns are patterns, not mailbox names to validate.
#[tokio::test]
async fn list_patterns_are_not_validated_as_names() {
    let mut c = Client::login(demo()).await;
    let r = c.cmd("a", "LIST \"\" ~foo").await;
    assert_eq!(r, vec!["a OK List completed.\r\n"]);
    let r = c
        .cmd("b", "LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|[}%*")
        .await;
    assert_eq!(r.last().unwrap(), "b OK List completed.\r\n", "{r:?}");
}

/// imaptest `listext`: option errors, and RECURSIVEMATCH's CHILDINFO.
#[tokio::test]
async fn list_extended_errors_and_recursivematch() {
    let mut c = Client::login(demo()).await;
    for (t, cmd) in [
        ("a", "LIST (imaptest) \"\" \"\""),
        ("b", "LIST (recursivematch) \"\" \"\""),
        ("c", "LIST (recursivematch remote) \"\" \"\""),
        ("d", "LIST \"\" \"\" RETURN (imaptest)"),
    ] {
        let r = c.cmd(t, cmd).await;
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].starts_with(&format!("{t} BAD ")), "{r:?}");
    }
    c.cmd("p", "CREATE m/t2").await;
    for name in ["m/t2/t1", "m/t7/t7", "m/t8/t8", "m/t8/t9"] {
        c.cmd("c", &format!("CREATE {name}")).await;
        c.cmd("s", &format!("SUBSCRIBE {name}")).await;
    }
    let r = c
        .cmd(
            "e",
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" m/t2% RETURN (CHILDREN)",
        )
        .await;
    assert_eq!(
        r,
        vec![
            "* LIST (\\HasChildren) \"/\" m/t2 (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
            "e OK List completed.\r\n"
        ]
    );
    // The subscribed child matches the pattern itself: no CHILDINFO line for the parent.
    let r = c
        .cmd("f", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" m*t7")
        .await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].ends_with(" m/t7/t7\r\n"), "{r:?}");
    let r = c
        .cmd("g", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" m*t8")
        .await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        r[0].ends_with(" m/t8 (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n")
            && !r[0].contains("\\Subscribed"),
        "{r:?}"
    );
    assert!(
        r[1].contains("\\Subscribed") && r[1].ends_with(" m/t8/t8\r\n"),
        "{r:?}"
    );
    // Without RECURSIVEMATCH, no CHILDINFO.
    let r = c.cmd("h", "LIST (SUBSCRIBED) \"\" m/t2").await;
    assert_eq!(r, vec!["h OK List completed.\r\n"]);
}

/// imaptest `esearch-condstore`: the first CONDSTORE-enabling command in a selected mailbox
/// reports HIGHESTMODSEQ; later ones do not.
#[tokio::test]
async fn first_condstore_enabling_command_reports_highestmodseq() {
    let mut c = Client::selected(demo(), &[MSG]).await;
    let r = c.cmd("f", "FETCH 1 MODSEQ").await;
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert!(r[1].starts_with("* 1 FETCH (MODSEQ ("), "{r:?}");
    let r = c.cmd("g", "FETCH 1 MODSEQ").await;
    assert!(!r.iter().any(|l| l.contains("HIGHESTMODSEQ")), "{r:?}");
    // ENABLE CONDSTORE in a selected mailbox counts as well.
    let mut c = Client::selected(demo(), &[]).await;
    let r = c.cmd("e", "ENABLE CONDSTORE").await;
    assert_eq!(r[0], "* ENABLED CONDSTORE\r\n", "{r:?}");
    assert!(r[1].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    let r = c.cmd("e2", "ENABLE QRESYNC").await;
    assert!(!r.iter().any(|l| l.contains("HIGHESTMODSEQ")), "{r:?}");
}

/// `auth_mechanisms` limits AUTH= in CAPABILITY and what AUTHENTICATE accepts; LOGIN the
/// command is not a SASL mechanism and stays.
#[tokio::test]
async fn auth_mechanisms_setting_limits_capability_and_authenticate() {
    let config = ImapConfig {
        auth_mechanisms: vec!["LOGIN".into(), "digest-md5".into(), "login".into()],
        ..ImapConfig::default()
    };
    let ctx = context(TestBackend::demo(), config);
    let (mut c, g) = Client::start(ctx.clone()).await;
    assert!(g.contains(" AUTH=LOGIN"), "{g}");
    assert!(!g.contains("AUTH=PLAIN") && !g.contains("DIGEST"), "{g}");
    let r = c.cmd("a", "AUTHENTICATE PLAIN AGRlbW8AZGVtbw==").await;
    assert_eq!(r, vec!["a NO Unsupported authentication mechanism.\r\n"]);
    c.send("b AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(c.line().await, "+ VXNlcm5hbWU6\r\n");
    c.send("ZGVtbw==\r\n").await;
    assert_eq!(c.line().await, "+ UGFzc3dvcmQ6\r\n");
    c.send("ZGVtbw==\r\n").await;
    let r = c.until_tag("b").await;
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");

    let config = ImapConfig {
        auth_mechanisms: Vec::new(),
        ..ImapConfig::default()
    };
    let (mut c, g) = Client::start(context(TestBackend::demo(), config)).await;
    assert!(!g.contains("AUTH="), "{g}");
    let r = c.cmd("a", "AUTHENTICATE LOGIN").await;
    assert_eq!(r, vec!["a NO Unsupported authentication mechanism.\r\n"]);
    let r = c.cmd("b", "LOGIN demo demo").await;
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
}

/// MULTIAPPEND (RFC 3502): several messages in one APPEND, one APPENDUID set; a failure part
/// way leaves none of them.
#[tokio::test]
async fn multiappend_all_or_nothing() {
    let backend = TestBackend::demo();
    let mut c = Client::login(context(backend.clone(), ImapConfig::default())).await;
    c.send(&format!(
        "a APPEND INBOX (\\Seen) {{{}+}}\r\n{MSG} \"24-Mar-2007 23:00:00 +0200\" {{{}}}\r\n",
        MSG.len(),
        MSG.len()
    ))
    .await;
    assert_eq!(c.line().await, "+ OK\r\n");
    c.send(&format!("{MSG}\r\n")).await;
    let r = c.until_tag("a").await;
    assert!(r[0].starts_with("a OK [APPENDUID "), "{r:?}");
    assert!(r[0].contains(" 1:2] "), "{r:?}");
    let r = c.cmd("s", "SELECT INBOX").await;
    assert!(r.contains(&"* 2 EXISTS\r\n".to_string()), "{r:?}");
    let r = c.cmd("f", "FETCH 1:2 (FLAGS INTERNALDATE)").await;
    assert!(r[0].contains("\\Seen") && !r[1].contains("\\Seen"), "{r:?}");
    assert!(r[1].contains("24-Mar-2007 23:00:00 +0200"), "{r:?}");
    // The third message goes over a two-more-messages quota: the first two go again.
    backend
        .store
        .user("demo")
        .unwrap()
        .set_quota_limits(storage::QuotaLimits {
            max_bytes: None,
            max_messages: Some(4),
        });
    let lit = format!("{{{}+}}\r\n{MSG}", MSG.len());
    let r = c.cmd("b", &format!("APPEND INBOX {lit} {lit} {lit}")).await;
    assert!(r.last().unwrap().starts_with("b NO [OVERQUOTA]"), "{r:?}");
    let r = c.cmd("n", "STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 2)\r\n", "{r:?}");
    // One zero-byte message refuses the whole command before anything is stored.
    let r = c.cmd("z", &format!("APPEND INBOX {lit} {{0+}}\r\n")).await;
    assert!(r.last().unwrap().starts_with("z NO "), "{r:?}");
    let r = c.cmd("m", "STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS INBOX (MESSAGES 2)\r\n", "{r:?}");
}

/// BINARY (RFC 3516): a literal8 APPEND is stored unchanged and BINARY[] returns it; BODY[]
/// never puts NUL in a literal; an unknown Content-Transfer-Encoding ends NO [UNKNOWN-CTE].
#[tokio::test]
async fn binary_append_fetch_and_unknown_cte() {
    let mut c = Client::login(demo()).await;
    let msg = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\0-\xe4\n\r\n\n";
    let mut cmd = format!("a APPEND INBOX ~{{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(msg);
    cmd.extend_from_slice(b"\r\n");
    c.w.write_all(&cmd).await.unwrap();
    // The reply lines are ASCII; the FETCH ones below carry binary, so read raw.
    let r = c.until_tag("a").await;
    assert!(r[0].starts_with("a OK [APPENDUID"), "{r:?}");
    c.cmd("s", "SELECT INBOX").await;
    c.send("f FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BODY.PEEK[1])\r\n")
        .await;
    let mut got = Vec::new();
    loop {
        let mut line = Vec::new();
        tokio::io::AsyncBufReadExt::read_until(&mut c.r, b'\n', &mut line)
            .await
            .unwrap();
        assert!(!line.is_empty());
        let done = line.starts_with(b"f ");
        got.extend_from_slice(&line);
        if done {
            break;
        }
    }
    let want: &[u8] = b"* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\0-\xe4\n\r\n\n BODY[1] {7}\r\n\x80-\xe4\n\r\n\n)\r\nf OK Fetch completed.\r\n";
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&got));

    let odd = "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nzzz\r\n";
    append_plain(&mut c, "b", odd).await;
    c.cmd("n", "NOOP").await;
    let r = c.cmd("g", "FETCH 2 BINARY.PEEK[1]").await;
    assert_eq!(
        r,
        vec!["g NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding in a requested part.\r\n"]
    );
    let r = c.cmd("h", "FETCH 1:2 BINARY.SIZE[1]").await;
    assert_eq!(r[0], "* 1 FETCH (BINARY.SIZE[1] 7)\r\n", "{r:?}");
    assert!(r[1].starts_with("h NO [UNKNOWN-CTE]"), "{r:?}");
}

/// Every IMAP write command, the store's state once it has run, and the rule checked: its tagged
/// OK is not sent while the replica wait (`Backend::write_committed`) is held, though the write
/// is already in the store.
#[tokio::test]
async fn no_write_is_acknowledged_before_the_replica_wait() {
    type Check = fn(&storage::UserStore) -> bool;
    let backend = TestBackend::demo();
    let ctx = context(backend.clone(), ImapConfig::default());
    let mut c = Client::selected(ctx, &[MSG, MSG, MSG, MSG]).await;
    let store = backend.store.user("demo").unwrap();
    let append = format!("APPEND Box2 {{{}+}}\r\n{MSG}", MSG.len());
    let multi = format!(
        "APPEND Box2 {{{n}+}}\r\n{MSG} {{{n}+}}\r\n{MSG}",
        n = MSG.len()
    );
    let steps: Vec<(&str, &str, Check)> = vec![
        ("w1", "CREATE Box", |st| st.mailbox("Box").is_ok()),
        ("w2", "SUBSCRIBE Box", |st| {
            st.subscriptions().unwrap().contains(&"Box".to_string())
        }),
        ("w3", "RENAME Box Box2", |st| st.mailbox("Box2").is_ok()),
        ("w4", &append, |st| st.messages("Box2").unwrap().len() == 1),
        ("w5", &multi, |st| st.messages("Box2").unwrap().len() == 3),
        ("w6", "STORE 1 +FLAGS (\\Flagged)", |st| {
            st.messages("INBOX").unwrap()[0]
                .flags
                .contains(&storage::Flag::Flagged)
        }),
        // Implicit \Seen.
        ("w7", "FETCH 2 BODY[]", |st| {
            st.messages("INBOX").unwrap()[1]
                .flags
                .contains(&storage::Flag::Seen)
        }),
        ("w8", "COPY 1 Box2", |st| {
            st.messages("Box2").unwrap().len() == 4
        }),
        ("w9", "MOVE 4 Box2", |st| {
            st.messages("INBOX").unwrap().len() == 3
        }),
        ("w10", "STORE 3 +FLAGS.SILENT (\\Deleted)", |st| {
            st.messages("INBOX").unwrap()[2]
                .flags
                .contains(&storage::Flag::Deleted)
        }),
        ("w11", "EXPUNGE", |st| {
            st.messages("INBOX").unwrap().len() == 2
        }),
        ("w12", "SUBSCRIBE Other", |st| {
            st.subscriptions().unwrap().contains(&"Other".to_string())
        }),
        ("w12u", "UNSUBSCRIBE Other", |st| {
            !st.subscriptions().unwrap().contains(&"Other".to_string())
        }),
        ("w13", "DELETE Box2", |st| st.mailbox("Box2").is_err()),
        ("w14", "STORE 1 +FLAGS.SILENT (\\Deleted)", |st| {
            st.messages("INBOX").unwrap()[0]
                .flags
                .contains(&storage::Flag::Deleted)
        }),
        ("w15", "CLOSE", |st| {
            st.messages("INBOX").unwrap().len() == 1
        }),
    ];
    for (tag, cmd, written) in steps {
        let calls = backend.committed.load(std::sync::atomic::Ordering::SeqCst);
        backend.hold_commits();
        c.send(&format!("{tag} {cmd}\r\n")).await;
        backend.commit_calls_reach(calls + 1).await;
        assert!(written(&store), "{cmd}: not written when the wait began");
        let early = tokio::time::timeout(Duration::from_millis(150), c.line()).await;
        assert!(
            early.is_err(),
            "{cmd}: answered before the replica wait: {early:?}"
        );
        backend.release_commits();
        let r = c.until_tag(tag).await;
        assert!(
            r.last().unwrap().starts_with(&format!("{tag} OK")),
            "{cmd}: {r:?}"
        );
    }
}
