//! POP3 session tests over an in-memory duplex stream with the test backend (a real store).

use super::{serve, Pop3Config, Pop3Context};
use crate::lmtp::tests::{rand_like::Lcg, TestClient};
use crate::sasl::encode_base64;
use crate::stream::{BoxStream, TlsUpgrade};
use crate::testing::{loopback_conn, TestBackend};
use async_trait::async_trait;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use storage::{Flag, NewMessage};
use tokio_util::sync::CancellationToken;

/// Stands in for rustls: the "upgraded" stream is the same bytes, but the session must treat
/// it as TLS from then on.
struct FakeTls;

#[async_trait]
impl TlsUpgrade for FakeTls {
    async fn upgrade(&self, stream: BoxStream) -> std::io::Result<BoxStream> {
        Ok(stream)
    }
}

fn context(backend: &Arc<TestBackend>, tls: bool, config: Pop3Config) -> Arc<Pop3Context> {
    Arc::new(Pop3Context {
        backend: backend.clone(),
        tls: tls.then(|| Arc::new(FakeTls) as Arc<dyn TlsUpgrade>),
        config,
        shutdown: CancellationToken::new(),
    })
}

async fn pop3(ctx: &Arc<Pop3Context>) -> TestClient {
    let ctx = ctx.clone();
    let mut c = TestClient::start(move |s| serve(s, loopback_conn("pop3-test"), ctx));
    assert!(c.line().await.starts_with("+OK "));
    c
}

async fn logged_in(ctx: &Arc<Pop3Context>) -> TestClient {
    let mut c = pop3(ctx).await;
    assert_eq!(c.cmd("USER demo").await, "+OK");
    assert_eq!(c.cmd("PASS demo").await, "+OK Logged in.");
    c
}

const M1: &[u8] = b"Subject: one\r\nFrom: a@x\r\n\r\nline 1\r\n.dotted\r\nline 3\r\n";
const M2: &[u8] = b"Subject: two\r\n\r\nsecond\r\n";
const M3: &[u8] = b"Subject: three\r\n\r\nthird\r\n";

/// A demo user with `raws` in INBOX, in that order.
fn backend_with(raws: &[&[u8]]) -> Arc<TestBackend> {
    let backend = TestBackend::demo();
    let store = backend.store.user("demo").unwrap();
    for raw in raws {
        store
            .append(
                "INBOX",
                NewMessage {
                    raw,
                    flags: Default::default(),
                    internal_date: None,
                    delivery_key: None,
                },
            )
            .unwrap();
    }
    backend
}

/// A demo user with three messages in INBOX.
fn backend_with_mail() -> Arc<TestBackend> {
    backend_with(&[M1, M2, M3])
}

/// [`backend_with_mail`] and a plaintext context with the default settings over it.
fn mail_context() -> (Arc<TestBackend>, Arc<Pop3Context>) {
    let backend = backend_with_mail();
    let ctx = context(&backend, false, Pop3Config::default());
    (backend, ctx)
}

fn inbox(backend: &TestBackend) -> Vec<storage::MessageMeta> {
    backend
        .store
        .user("demo")
        .unwrap()
        .messages("INBOX")
        .unwrap()
}

fn inbox_len(backend: &TestBackend) -> usize {
    inbox(backend).len()
}

#[tokio::test]
async fn full_session() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    let total = M1.len() + M2.len() + M3.len();
    assert_eq!(c.cmd("STAT").await, format!("+OK 3 {total}"));
    assert!(c.cmd("LIST").await.starts_with("+OK 3 messages"));
    assert_eq!(
        c.dot_body().await,
        vec![
            format!("1 {}", M1.len()),
            format!("2 {}", M2.len()),
            format!("3 {}", M3.len())
        ]
    );
    assert_eq!(c.cmd("LIST 2").await, format!("+OK 2 {}", M2.len()));
    assert_eq!(c.cmd("LIST 4").await, "-ERR There's no message 4.");
    assert_eq!(c.cmd("RETR 1").await, format!("+OK {} octets", M1.len()));
    assert_eq!(
        c.dot_body().await,
        vec![
            "Subject: one",
            "From: a@x",
            "",
            "line 1",
            "..dotted",
            "line 3"
        ]
    );
    assert_eq!(c.cmd("NOOP").await, "+OK");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
    // RETR marks \Seen at QUIT (pop3_no_flag_updates = no), nothing deleted.
    let msgs = inbox(&backend);
    assert_eq!(msgs.len(), 3);
    assert!(msgs[0].flags.contains(&Flag::Seen));
    assert!(!msgs[1].flags.contains(&Flag::Seen));
}

#[tokio::test]
async fn dele_is_applied_only_at_quit() {
    let (backend, ctx) = mail_context();

    // Dropped connection: the marks are forgotten.
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    assert_eq!(c.cmd("DELE 1").await, "-ERR Message is deleted.");
    assert_eq!(c.cmd("RETR 1").await, "-ERR Message is deleted.");
    assert_eq!(
        c.cmd("STAT").await,
        format!("+OK 2 {}", M2.len() + M3.len())
    );
    c.send(b"LIST\r\n").await;
    c.line().await;
    let listed = c.dot_body().await;
    assert!(listed.iter().all(|l| !l.starts_with("1 ")), "{listed:?}");
    c.hang_up().await;
    c.finished().await;
    assert_eq!(inbox_len(&backend), 3);

    // QUIT applies them, as one expunge.
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    assert_eq!(c.cmd("DELE 3").await, "+OK Marked to be deleted.");
    assert_eq!(inbox_len(&backend), 3);
    let before = backend.committed.load(Ordering::Relaxed);
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out, messages deleted.");
    c.finished().await;
    assert_eq!(backend.committed.load(Ordering::Relaxed), before + 1);
    let store = backend.store.user("demo").unwrap();
    let left = store.messages("INBOX").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(store.read_message(&left[0].object).unwrap(), M2);
}

#[tokio::test]
async fn rset_unmarks() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 2").await, "+OK Marked to be deleted.");
    assert_eq!(c.cmd("RSET").await, "+OK");
    assert!(c.cmd("STAT").await.starts_with("+OK 3 "));
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
    assert_eq!(inbox_len(&backend), 3);
}

#[tokio::test]
async fn top_sends_header_and_lines() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("TOP 1 0").await, "+OK");
    assert_eq!(c.dot_body().await, vec!["Subject: one", "From: a@x", ""]);
    assert_eq!(c.cmd("TOP 1 2").await, "+OK");
    assert_eq!(
        c.dot_body().await,
        vec!["Subject: one", "From: a@x", "", "line 1", "..dotted"]
    );
    assert_eq!(c.cmd("TOP 9 1").await, "-ERR There's no message 9.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
    // TOP does not mark \Seen.
    let msgs = inbox(&backend);
    assert!(msgs.iter().all(|m| !m.flags.contains(&Flag::Seen)));
}

#[tokio::test]
async fn uidl_is_stable_across_sessions() {
    let (backend, ctx) = mail_context();
    let mut uidls = Vec::new();
    for _ in 0..2 {
        let mut c = logged_in(&ctx).await;
        assert_eq!(c.cmd("UIDL").await, "+OK");
        let lines = c.dot_body().await;
        assert_eq!(lines.len(), 3);
        let one = c.cmd("UIDL 2").await;
        assert_eq!(one, format!("+OK {}", lines[1]));
        assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
        c.finished().await;
        uidls.push(lines);
    }
    assert_eq!(uidls[0], uidls[1]);
    let guids: Vec<String> = inbox(&backend)
        .iter()
        .enumerate()
        .map(|(i, m)| format!("{} {}", i + 1, m.guid.to_hex()))
        .collect();
    assert_eq!(uidls[0], guids);
}

#[tokio::test]
async fn stls_offered_only_with_tls_configured() {
    let backend = backend_with_mail();

    let ctx = context(&backend, false, Pop3Config::default());
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("CAPA").await, "+OK");
    let capa = c.dot_body().await;
    for cap in [
        "TOP",
        "UIDL",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
        "USER",
        "SASL PLAIN LOGIN",
    ] {
        assert!(capa.iter().any(|l| l == cap), "{cap} missing from {capa:?}");
    }
    assert!(!capa.iter().any(|l| l == "STLS"));
    assert_eq!(c.cmd("STLS").await, "-ERR TLS support isn't enabled.");
    c.finished().await;

    // With TLS: offered, and plaintext auth that the backend refuses works once "upgraded".
    backend.plaintext.store(false, Ordering::Relaxed);
    let ctx = context(&backend, true, Pop3Config::default());
    let mut c = pop3(&ctx).await;
    c.send(b"CAPA\r\n").await;
    c.line().await;
    assert!(c.dot_body().await.iter().any(|l| l == "STLS"));
    assert!(c
        .cmd("USER demo")
        .await
        .starts_with("-ERR [AUTH] Plaintext authentication disallowed"));
    // Bytes pipelined after STLS in plaintext are discarded, never run after the upgrade.
    c.send(b"STLS\r\nUSER injected\r\n").await;
    assert_eq!(c.line().await, "+OK Begin TLS negotiation now.");
    assert_eq!(c.cmd("CAPA").await, "+OK");
    assert!(!c.dot_body().await.iter().any(|l| l == "STLS"));
    assert_eq!(c.cmd("STLS").await, "-ERR TLS is already active.");
    assert_eq!(c.cmd("PASS demo").await, "-ERR No username given.");
    assert_eq!(c.cmd("USER demo").await, "+OK");
    assert_eq!(c.cmd("PASS demo").await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
}

#[tokio::test]
async fn auth_refusals_and_sasl() {
    let (backend, ctx) = mail_context();

    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("USER demo").await, "+OK");
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] Authentication failed."
    );
    assert_eq!(c.cmd("STAT").await, "-ERR Unknown command.");
    assert_eq!(
        c.cmd("AUTH CRAM-MD5").await,
        "-ERR Unsupported authentication mechanism."
    );
    // SASL-IR PLAIN.
    let ir = encode_base64(b"\0demo\0demo");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {ir}")).await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;

    // LOGIN in two steps, and cancelling.
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("AUTH").await, "+OK");
    assert_eq!(c.dot_body().await, vec!["PLAIN", "LOGIN"]);
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd("*").await, "-ERR Authentication aborted by client.");
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd(&encode_base64(b"demo")).await, "+ UGFzc3dvcmQ6");
    assert_eq!(c.cmd(&encode_base64(b"demo")).await, "+OK Logged in.");
    c.hang_up().await;
    c.finished().await;

    // PLAIN without initial response gets an empty challenge.
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    assert_eq!(
        c.cmd("!!!").await,
        "-ERR [AUTH] Invalid base64 data in continued response"
    );
    // An over-long response is answered as such and ends the session, like any over-long line.
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(
        c.cmd(&"A".repeat(10_000)).await,
        "-ERR [AUTH] Response too long."
    );
    assert_eq!(c.cmd("NOOP").await, "", "the session has closed");
    c.finished().await;

    // Plaintext refused by the backend.
    backend.plaintext.store(false, Ordering::Relaxed);
    let mut c = pop3(&ctx).await;
    let refusal =
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
    assert_eq!(c.cmd("USER demo").await, refusal);
    assert_eq!(c.cmd(&format!("AUTH PLAIN {ir}")).await, refusal);
    c.finished().await;
}

#[tokio::test]
async fn too_many_auth_failures_disconnect() {
    let backend = TestBackend::demo();
    let ctx = context(&backend, false, Pop3Config::default());
    let mut c = pop3(&ctx).await;
    for _ in 0..3 {
        c.cmd("USER demo").await;
        assert_eq!(
            c.cmd("PASS bad").await,
            "-ERR [AUTH] Authentication failed."
        );
    }
    assert_eq!(c.rest().await, b"");
    c.finished().await;
}

#[tokio::test]
async fn second_session_is_in_use() {
    let (_, ctx) = mail_context();
    let mut first = logged_in(&ctx).await;
    let mut second = pop3(&ctx).await;
    second.cmd("USER demo").await;
    assert_eq!(
        second.cmd("PASS demo").await,
        "-ERR [IN-USE] Mailbox is locked by another POP3 session."
    );
    assert_eq!(first.cmd("QUIT").await, "+OK Logging out.");
    first.finished().await;
    second.cmd("USER demo").await;
    assert_eq!(second.cmd("PASS demo").await, "+OK Logged in.");
    second.finished().await;
}

/// A server-side stream whose close takes a while (a slow network, a peer that is slow to
/// acknowledge the FIN): the session's end lags behind its QUIT reply.
struct SlowClose {
    inner: tokio::io::DuplexStream,
    closing: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncRead for SlowClose {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SlowClose {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let sleep = self
            .closing
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(500))));
        if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn reconnect_right_after_quit_is_not_in_use() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (_, ctx) = mail_context();
    let mut closing = Vec::new();
    for round in 0..3 {
        let (client, server) = tokio::io::duplex(1 << 16);
        let server: BoxStream = Box::new(SlowClose {
            inner: server,
            closing: None,
        });
        let task = tokio::spawn(serve(server, loopback_conn("pop3-slow"), ctx.clone()));
        let (r, mut w) = tokio::io::split(client);
        let mut r = tokio::io::BufReader::new(r);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("+OK"));
        for (cmd, want) in [
            ("USER demo", "+OK"),
            ("PASS demo", "+OK Logged in."),
            ("QUIT", "+OK Logging out."),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
            line.clear();
            r.read_line(&mut line).await.unwrap();
            assert_eq!(line.trim_end(), want, "round {round}: {cmd}");
        }
        // The session is still closing (500 ms); the next round's login must not meet its lock.
        assert!(!task.is_finished());
        closing.push((task, r, w));
    }
    for (task, _, _) in closing {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn no_nuls_option() {
    let backend = backend_with(&[b"Subject: n\r\n\r\na\0b\r\n"]);
    let config = Pop3Config {
        no_nuls: true,
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let mut c = logged_in(&ctx).await;
    c.cmd("RETR 1").await;
    assert_eq!(c.dot_body().await, vec!["Subject: n", "", "ab"]);
    c.finished().await;
}

#[tokio::test]
async fn timeouts_and_shutdown() {
    let backend = TestBackend::demo();
    let config = Pop3Config {
        login_timeout: Duration::from_millis(200),
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let mut c = pop3(&ctx).await;
    assert_eq!(c.line().await, "-ERR Disconnected for inactivity.");
    c.finished().await;

    let ctx = context(&backend, false, Pop3Config::default());
    let mut c = logged_in(&ctx).await;
    ctx.shutdown.cancel();
    assert_eq!(c.line().await, "-ERR [SYS/TEMP] Server shutting down.");
    c.finished().await;
}

#[tokio::test]
async fn long_lines_and_bad_commands() {
    let backend = TestBackend::demo();
    let ctx = context(&backend, false, Pop3Config::default());
    let mut c = pop3(&ctx).await;
    let long = "X".repeat(20_000);
    assert_eq!(c.cmd(&long).await, "-ERR Input line too long.");
    assert_eq!(c.cmd("NOOP").await, "", "the session has closed");
    c.finished().await;

    // A line of exactly the limit is a (bad) command, not a too-long line.
    let mut c = pop3(&ctx).await;
    let longest = "X".repeat(Pop3Config::default().max_line_length);
    assert!(c.cmd(&longest).await.starts_with("-ERR Unknown command"));
    for _ in 0..18 {
        assert!(c.cmd("BOGUS").await.starts_with("-ERR Unknown command"));
    }
    assert_eq!(c.cmd("BOGUS").await, "-ERR Unknown command: BOGUS");
    assert_eq!(c.line().await, "-ERR Too many bad commands.");
    c.finished().await;
}

#[tokio::test]
async fn a_megabyte_without_line_end_is_answered_at_once_and_closed() {
    let (_backend, ctx) = mail_context();
    let mut c = pop3(&ctx).await;
    c.unending_line_is_answered_and_closed("-ERR Input line too long.")
        .await;
    c.finished().await;
    // Logged in, too, and in the middle of a SASL exchange.
    let mut c = logged_in(&ctx).await;
    c.unending_line_is_answered_and_closed("-ERR Input line too long.")
        .await;
    c.finished().await;
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ ");
    c.unending_line_is_answered_and_closed("-ERR [AUTH] Response too long.")
        .await;
    c.finished().await;
}

#[tokio::test]
async fn random_bytes_get_answers_and_never_panic() {
    let (backend, ctx) = mail_context();
    let mut rng = Lcg(0xb0b);
    for round in 0..40 {
        let mut c = pop3(&ctx).await;
        let mut junk = Vec::new();
        if round % 2 == 0 {
            junk.extend_from_slice(b"USER demo\r\nPASS demo\r\n");
        }
        junk.extend(rng.bytes(64 + round * 40));
        junk.extend_from_slice(b"\r\nRETR 1\r\nTOP 2 1\r\nDELE 3\r\nUIDL\r\n");
        c.send(&junk).await;
        c.hang_up().await;
        let out = c.rest().await;
        assert!(
            out.starts_with(b"+OK") || out.starts_with(b"-ERR"),
            "{out:?}"
        );
        c.finished().await;
    }
    // Nothing was QUIT: nothing deleted.
    assert_eq!(inbox_len(&backend), 3);
}

/// Delivered over LMTP (dot-stuffed, bare LF or CRLF, 8-bit, large), read back over POP3 RETR:
/// the same bytes, as CRLF, with the trace headers in front.
#[tokio::test]
async fn lmtp_delivery_reads_back_byte_for_byte() {
    use crate::lmtp::{LmtpConfig, LmtpContext};
    let backend = TestBackend::demo();
    let lmtp_ctx = Arc::new(LmtpContext {
        backend: backend.clone(),
        config: LmtpConfig::default(),
        shutdown: CancellationToken::new(),
    });
    // The message as stored: CRLF everywhere.
    let mut big = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n".to_vec();
    let line = b".8-bit line \xc3\xa9\xe2\x82\xac \xff\r\n";
    while big.len() < 20 * 1024 * 1024 {
        big.extend_from_slice(line);
    }
    // Bare LF inside; the last line ends in CRLF, as only CRLF . CRLF ends DATA.
    let small_lf = b"Subject: lf\nMessage-ID: <lf@x>\n\n.a\nb\r\n";
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (big.clone(), big),
        (
            small_lf.to_vec(),
            b"Subject: lf\r\nMessage-ID: <lf@x>\r\n\r\n.a\r\nb\r\n".to_vec(),
        ),
    ];
    for (sent, _) in &cases {
        let ctx = lmtp_ctx.clone();
        let mut c =
            TestClient::start(move |s| crate::lmtp::serve(s, loopback_conn("lmtp-big"), ctx));
        c.line().await;
        c.send(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<demo>\r\nDATA\r\n")
            .await;
        c.smtp_reply().await;
        c.line().await;
        c.line().await;
        assert_eq!(c.line().await, "354 OK");
        // Dot-stuff as a client does, line by line (LF-terminated lines included).
        let mut wire = Vec::with_capacity(sent.len() + sent.len() / 16);
        let mut at_start = true;
        for &b in sent {
            if at_start && b == b'.' {
                wire.push(b'.');
            }
            wire.push(b);
            at_start = b == b'\n';
        }
        wire.extend_from_slice(b".\r\n");
        c.send(&wire).await;
        assert!(c.line().await.starts_with("250 2.0.0 <demo>"));
        c.finished().await;
    }
    let ctx = context(&backend, false, Pop3Config::default());
    let mut c = logged_in(&ctx).await;
    for (n, (_, stored)) in cases.iter().enumerate() {
        let mut expected = b"Return-Path: <s@x>\r\nDelivered-To: demo\r\n".to_vec();
        expected.extend_from_slice(stored);
        let head = c.cmd(&format!("RETR {}", n + 1)).await;
        assert_eq!(head, format!("+OK {} octets", expected.len()));
        // Undo the dot-stuffing of the response.
        let mut got = Vec::new();
        loop {
            let l = c.raw_line().await;
            if l == b".\r\n" {
                break;
            }
            assert!(l.ends_with(b"\r\n"));
            got.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
        }
        assert!(got == expected, "message {} differs", n + 1);
    }
    c.finished().await;
}

#[tokio::test]
async fn tempfail_and_rate_limit() {
    use crate::backend::AuthOutcome;
    use crate::lmtp::tests::Overrides;
    let inner = TestBackend::demo();
    let ctx_with = |outcome: AuthOutcome| {
        Arc::new(Pop3Context {
            backend: Arc::new(Overrides {
                inner: inner.clone(),
                auth: Some(outcome),
                lookup_error: None,
            }),
            tls: None,
            config: Pop3Config::default(),
            shutdown: CancellationToken::new(),
        })
    };
    let ctx = ctx_with(AuthOutcome::TempFail("passdb down".into()));
    let mut c = pop3(&ctx).await;
    c.cmd("USER demo").await;
    assert_eq!(
        c.cmd("PASS demo").await,
        "-ERR [SYS/TEMP] Temporary authentication failure."
    );
    assert_eq!(c.cmd("NOOP").await, "+OK");
    c.finished().await;

    let ctx = ctx_with(AuthOutcome::RateLimited);
    let mut c = pop3(&ctx).await;
    c.cmd("USER demo").await;
    assert_eq!(
        c.cmd("PASS demo").await,
        "-ERR [SYS/TEMP] Too many authentication failures, try again later."
    );
    assert_eq!(c.rest().await, b"");
    c.finished().await;
}

#[tokio::test]
async fn quit_with_writes_refused_keeps_messages() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    backend.refuse_writes(Some("not the active node"));
    assert_eq!(
        c.cmd("QUIT").await,
        "-ERR [SYS/TEMP] Deleted messages were not removed: not the active node"
    );
    c.finished().await;
    backend.refuse_writes(None);
    assert_eq!(inbox_len(&backend), 3);
}

#[tokio::test]
async fn quit_whose_commit_is_refused_is_err_sys_temp() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 1").await, "+OK Marked to be deleted.");
    backend.refuse_commits(Some("this node is not active (epoch 3)"));
    assert_eq!(
        c.cmd("QUIT").await,
        "-ERR [SYS/TEMP] Deleted messages were not removed: this node is not active (epoch 3)"
    );
    c.finished().await;
}

/// A client that stops reading in the middle of a big RETR does not keep its session (and the
/// POP3 lock) forever: the idle timeout ends it, and the last words are bounded too.
#[tokio::test]
async fn client_that_stops_reading_is_dropped() {
    let mut raw = b"Subject: big\r\n\r\n".to_vec();
    raw.resize(2 * 1024 * 1024, b'x');
    raw.extend_from_slice(b"\r\n");
    let backend = backend_with(&[&raw]);
    let config = Pop3Config {
        idle_timeout: Duration::from_millis(300),
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let mut c = logged_in(&ctx).await;
    c.send(b"RETR 1\r\n").await;
    // Never read the reply.
    let ended = tokio::time::timeout(Duration::from_secs(20), &mut c.task).await;
    assert!(ended.is_ok(), "session still running with a stalled client");
    // The lock is free again.
    let mut again = logged_in(&ctx).await;
    assert_eq!(again.cmd("QUIT").await, "+OK Logging out.");
    again.finished().await;
}

#[tokio::test]
async fn auth_mechanisms_setting_limits_capa_and_auth() {
    let backend = backend_with_mail();
    let config = Pop3Config {
        auth_mechanisms: vec!["LOGIN".into(), "digest-md5".into(), "login".into()],
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("CAPA").await, "+OK");
    let capa = c.dot_body().await;
    assert!(capa.iter().any(|l| l == "SASL LOGIN"), "{capa:?}");
    assert_eq!(c.cmd("AUTH").await, "+OK");
    assert_eq!(c.dot_body().await, vec!["LOGIN"]);
    let ir = encode_base64(b"\0demo\0demo");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {ir}")).await,
        "-ERR Unsupported authentication mechanism."
    );
    assert_eq!(c.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(c.cmd(&encode_base64(b"demo")).await, "+ UGFzc3dvcmQ6");
    assert_eq!(c.cmd(&encode_base64(b"demo")).await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;

    // None configured: no SASL line, AUTH refused, USER/PASS still works.
    let config = Pop3Config {
        auth_mechanisms: Vec::new(),
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let mut c = pop3(&ctx).await;
    assert_eq!(c.cmd("CAPA").await, "+OK");
    let capa = c.dot_body().await;
    assert!(!capa.iter().any(|l| l.starts_with("SASL")), "{capa:?}");
    assert_eq!(c.cmd("AUTH").await, "+OK");
    assert!(c.dot_body().await.is_empty());
    assert_eq!(
        c.cmd("AUTH LOGIN").await,
        "-ERR Unsupported authentication mechanism."
    );
    assert_eq!(c.cmd("USER demo").await, "+OK");
    assert_eq!(c.cmd("PASS demo").await, "+OK Logged in.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
}

/// Operators grep for Dovecot's `+OK Dovecot ready.`; ours differs only in the name.
#[tokio::test]
async fn greeting_says_ready() {
    let (_, ctx) = mail_context();
    let mut c = TestClient::start(move |s| serve(s, loopback_conn("pop3-test"), ctx));
    assert_eq!(c.line().await, "+OK POP3 ready.");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out.");
    c.finished().await;
}

/// QUIT's deletions are in the store as soon as they are written, but the client hears they
/// are done only once the replica wait (`Backend::write_committed`) ends.
#[tokio::test]
async fn quit_is_not_acknowledged_before_the_replica_wait() {
    let (backend, ctx) = mail_context();
    let mut c = logged_in(&ctx).await;
    assert_eq!(c.cmd("DELE 2").await, "+OK Marked to be deleted.");
    backend.hold_commits();
    c.send(b"QUIT\r\n").await;
    backend.commit_calls_reach(1).await;
    assert_eq!(inbox_len(&backend), 2, "expunged when the wait began");
    let early = tokio::time::timeout(Duration::from_millis(200), c.line()).await;
    assert!(
        early.is_err(),
        "QUIT answered before the replica wait: {early:?}"
    );
    backend.release_commits();
    assert_eq!(c.line().await, "+OK Logging out, messages deleted.");
    c.finished().await;
}

/// APOP (RFC 1939): the greeting carries a timestamp only when `auth_mechanisms` lists apop;
/// the digest is MD5(timestamp + password).
#[tokio::test]
async fn apop_only_when_enabled() {
    use md5::{Digest, Md5};
    let backend = backend_with_mail();
    let ctx = context(&backend, false, Pop3Config::default());
    let ctx2 = ctx.clone();
    let mut c = TestClient::start(move |s| serve(s, loopback_conn("pop3-test"), ctx2));
    let greeting = c.line().await;
    assert!(!greeting.contains('<'), "{greeting}");
    assert_eq!(
        c.cmd("APOP demo c4c9334bac560ecc979e58001b3e22fb").await,
        "-ERR APOP not enabled."
    );

    let config = Pop3Config {
        auth_mechanisms: vec!["plain".into(), "apop".into()],
        ..Pop3Config::default()
    };
    let ctx = context(&backend, false, config);
    let digest = |ts: &str, pw: &str| {
        Md5::digest(format!("{ts}{pw}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for (pw, want) in [
        ("wrong", "-ERR [AUTH] Authentication failed."),
        ("demo", "+OK Logged in."),
    ] {
        let ctx2 = ctx.clone();
        let mut c = TestClient::start(move |s| serve(s, loopback_conn("pop3-test"), ctx2));
        let greeting = c.line().await;
        let ts = &greeting[greeting.find('<').expect("timestamp")..];
        assert!(ts.ends_with('>'), "{greeting}");
        assert_eq!(c.cmd("CAPA").await, "+OK");
        let capa = c.dot_body().await;
        // APOP is not a SASL mechanism.
        assert!(capa.iter().any(|l| l == "SASL PLAIN"), "{capa:?}");
        assert_eq!(c.cmd(&format!("APOP demo {}", digest(ts, pw))).await, want);
    }
}
