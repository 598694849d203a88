//! LMTP session tests over an in-memory duplex stream with the test backend (a real store).

use super::{serve, LmtpConfig, LmtpContext};
use crate::testing::{loopback_conn, TestBackend};
use std::sync::Arc;
use std::time::Duration;
use storage::QuotaLimits;
use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The client side of a session under test.
pub(crate) struct TestClient {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: Option<WriteHalf<DuplexStream>>,
    pub task: JoinHandle<()>,
}

impl TestClient {
    /// Starts `serve` on the other end of a duplex stream.
    pub(crate) fn start<F, Fut>(serve: F) -> TestClient
    where
        F: FnOnce(crate::stream::BoxStream) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (client, server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(Box::new(server)));
        let (r, w) = tokio::io::split(client);
        TestClient {
            reader: BufReader::new(r),
            writer: Some(w),
            task,
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        if let Some(w) = self.writer.as_mut() {
            // The server may have closed already; the test looks at the replies.
            let _ = w.write_all(bytes).await;
        }
    }

    /// One reply line without CRLF; "" at end of stream.
    pub(crate) async fn line(&mut self) -> String {
        let buf = self.raw_line().await;
        let s = String::from_utf8_lossy(&buf).into_owned();
        s.trim_end_matches(['\r', '\n']).to_string()
    }

    /// One reply line as raw bytes, with its line end.
    pub(crate) async fn raw_line(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(120),
            self.reader.read_until(b'\n', &mut buf),
        )
        .await
        .expect("reply within 120 s")
        .expect("read reply");
        buf
    }

    /// Sends a command line and returns the first reply line.
    pub(crate) async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// Lines up to and including a final SMTP line (`250 ...` without `-`).
    pub(crate) async fn smtp_reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                return lines;
            }
        }
    }

    /// Lines of a POP3 multi-line body, up to (not including) the `.` line.
    pub(crate) async fn dot_body(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." {
                return lines;
            }
            lines.push(l);
        }
    }

    /// Raw bytes until end of stream.
    pub(crate) async fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(120), self.reader.read_to_end(&mut out)).await;
        out
    }

    /// Sends 1 MiB without a line end from a task of its own, which then keeps the connection
    /// open, and checks the session answers `reply` and closes within a second, while the
    /// client has neither ended the line nor hung up.
    pub(crate) async fn unending_line_is_answered_and_closed(&mut self, reply: &str) {
        let Some(mut w) = self.writer.take() else {
            panic!("already hung up");
        };
        let sender = tokio::spawn(async move {
            let _ = w.write_all(&vec![b'x'; 1 << 20]).await;
            // Still connected, still no line end.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(w);
        });
        let second = Duration::from_secs(1);
        let mut line = Vec::new();
        tokio::time::timeout(second, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("answered within a second")
            .expect("read the answer");
        assert_eq!(String::from_utf8_lossy(&line), format!("{reply}\r\n"));
        let mut rest = Vec::new();
        tokio::time::timeout(second, self.reader.read_to_end(&mut rest))
            .await
            .expect("closed within a second")
            .expect("read to the end");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        sender.abort();
    }

    /// Closes our write side, as a client whose connection drops.
    pub(crate) async fn hang_up(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = w.shutdown().await;
        }
    }

    /// Waits for the server's session task to end.
    pub(crate) async fn finished(self) {
        drop(self.writer);
        drop(self.reader);
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("session ends")
            .expect("session task did not panic");
    }
}

pub(super) fn context(backend: &Arc<TestBackend>, config: LmtpConfig) -> Arc<LmtpContext> {
    Arc::new(LmtpContext {
        backend: backend.clone(),
        config,
        shutdown: CancellationToken::new(),
    })
}

fn lmtp(ctx: &Arc<LmtpContext>) -> TestClient {
    let ctx = ctx.clone();
    TestClient::start(move |s| serve(s, loopback_conn("lmtp-test"), ctx))
}

/// The demo user's backend and a context with the default settings over it.
fn demo_context() -> (Arc<TestBackend>, Arc<LmtpContext>) {
    let backend = TestBackend::demo();
    let ctx = context(&backend, LmtpConfig::default());
    (backend, ctx)
}

pub(super) async fn greeted(ctx: &Arc<LmtpContext>) -> TestClient {
    let mut c = lmtp(ctx);
    assert!(c.line().await.starts_with("220 "));
    c.send(b"LHLO client\r\n").await;
    let lhlo = c.smtp_reply().await;
    assert!(lhlo.iter().any(|l| l == "250-PIPELINING"), "{lhlo:?}");
    assert!(lhlo.iter().any(|l| l == "250-CHUNKING"), "{lhlo:?}");
    assert!(lhlo.iter().any(|l| l.starts_with("250 SIZE ")), "{lhlo:?}");
    c
}

pub(super) fn inbox(backend: &TestBackend, user: &str) -> Vec<Vec<u8>> {
    mailbox(backend, user, "INBOX")
}

pub(super) fn mailbox(backend: &TestBackend, user: &str, name: &str) -> Vec<Vec<u8>> {
    let store = backend.store.user(user).expect("open user");
    store
        .messages(name)
        .expect("list")
        .iter()
        .map(|m| store.read_message(&m.object).expect("read"))
        .collect()
}

const MSG: &str =
    "From: a@example.org\r\nMessage-ID: <m1@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";

/// MAIL FROM and one RCPT TO, both accepted.
async fn envelope(c: &mut TestClient, from: &str, rcpt: &str) {
    assert_eq!(c.cmd(&format!("MAIL FROM:<{from}>")).await, "250 2.1.0 OK");
    assert_eq!(c.cmd(&format!("RCPT TO:<{rcpt}>")).await, "250 2.1.5 OK");
}

/// A quota of 10 bytes for `user`: any delivery goes over it.
fn fill_quota(backend: &TestBackend, user: &str) {
    backend
        .store
        .user(user)
        .unwrap()
        .set_quota_limits(QuotaLimits {
            max_bytes: Some(10),
            max_messages: None,
        });
}

pub(super) async fn deliver_one(c: &mut TestClient, rcpt: &str, body: &str) -> String {
    envelope(c, "a@example.org", rcpt).await;
    assert_eq!(c.cmd("DATA").await, "354 OK");
    c.send(format!("{body}.\r\n").as_bytes()).await;
    c.line().await
}

#[tokio::test]
async fn multi_recipient_with_one_unknown() {
    let backend = TestBackend::new(&[("demo", "x"), ("bob", "y")]);
    let ctx = context(&backend, LmtpConfig::default());
    let mut c = greeted(&ctx).await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME").await,
        "250 2.1.0 OK"
    );
    assert_eq!(c.cmd("RCPT TO:<demo>").await, "250 2.1.5 OK");
    assert_eq!(
        c.cmd("RCPT TO:<nobody>").await,
        "550 5.1.1 <nobody> User doesn't exist: nobody"
    );
    assert_eq!(c.cmd("RCPT TO:<bob>").await, "250 2.1.5 OK");
    assert_eq!(c.cmd("DATA").await, "354 OK");
    c.send(format!("{MSG}.\r\n").as_bytes()).await;
    let r1 = c.line().await;
    let r2 = c.line().await;
    assert!(r1.starts_with("250 2.0.0 <demo> "), "{r1}");
    assert!(r2.starts_with("250 2.0.0 <bob> "), "{r2}");
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.finished().await;

    for user in ["demo", "bob"] {
        let msgs = inbox(&backend, user);
        assert_eq!(msgs.len(), 1, "{user}");
        let expected = format!("Return-Path: <a@example.org>\r\nDelivered-To: {user}\r\n{MSG}");
        assert_eq!(String::from_utf8_lossy(&msgs[0]), expected);
    }
    assert_eq!(
        backend.committed.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_megabyte_without_line_end_is_answered_at_once_and_closed() {
    let (_backend, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    assert_eq!(c.cmd("MAIL FROM:<a@x>").await, "250 2.1.0 OK");
    c.unending_line_is_answered_and_closed("500 5.5.2 Line too long")
        .await;
    c.finished().await;
}

#[tokio::test]
async fn a_complete_over_long_line_is_answered_and_closes() {
    let (_backend, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    let long = format!("RCPT TO:<{}>", "a".repeat(5000));
    assert_eq!(c.cmd(&long).await, "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP").await, "", "the session has closed");
    c.finished().await;
}

#[tokio::test]
async fn pipelined_transaction() {
    let (backend, ctx) = demo_context();
    let mut c = lmtp(&ctx);
    assert!(c.line().await.starts_with("220 "));
    // Everything in one write, as a PIPELINING client may: commands up to DATA, then the body
    // and the next commands in a second write.
    c.send(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<demo>\r\nRCPT TO:<ghost>\r\nDATA\r\n")
        .await;
    let lhlo = c.smtp_reply().await;
    assert!(lhlo.last().unwrap().starts_with("250 SIZE"));
    assert_eq!(c.line().await, "250 2.1.0 OK");
    assert_eq!(c.line().await, "250 2.1.5 OK");
    assert!(c.line().await.starts_with("550 5.1.1 <ghost>"));
    assert_eq!(c.line().await, "354 OK");
    c.send(b"Subject: p\r\n\r\none\r\n.\r\nMAIL FROM:<s@x>\r\nRCPT TO:<demo>\r\nDATA\r\n")
        .await;
    assert!(c.line().await.starts_with("250 2.0.0 <demo>"));
    assert_eq!(c.line().await, "250 2.1.0 OK");
    assert_eq!(c.line().await, "250 2.1.5 OK");
    assert_eq!(c.line().await, "354 OK");
    c.send(b"Subject: q\r\n\r\ntwo\r\n.\r\nQUIT\r\n").await;
    assert!(c.line().await.starts_with("250 2.0.0 <demo>"));
    assert!(c.line().await.starts_with("221 "));
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 2);
}

#[tokio::test]
async fn bare_lf_dot_does_not_end_data() {
    let (backend, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    let smuggled =
        "Subject: s\r\n\r\na\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<demo>\r\nDATA\r\nb\r\n.\nc\r\n";
    let reply = deliver_one(&mut c, "demo", smuggled).await;
    assert!(reply.starts_with("250 2.0.0 <demo>"), "{reply}");
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.finished().await;
    let msgs = inbox(&backend, "demo");
    assert_eq!(
        msgs.len(),
        1,
        "the smuggled message must not be a second delivery"
    );
    let text = String::from_utf8_lossy(&msgs[0]).into_owned();
    assert!(
        text.ends_with("a\r\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<demo>\r\nDATA\r\nb\r\n.\r\nc\r\n"),
        "{text:?}"
    );
}

#[tokio::test]
async fn truncated_data_is_not_stored() {
    let (backend, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    envelope(&mut c, "a@x", "demo").await;
    assert_eq!(c.cmd("DATA").await, "354 OK");
    c.send(b"Subject: cut\r\n\r\nhalf a message\r\n").await;
    c.hang_up().await;
    assert_eq!(c.rest().await, b"");
    c.finished().await;
    assert!(inbox(&backend, "demo").is_empty());
}

#[tokio::test]
async fn bdat_chunks_and_truncated_bdat() {
    let (backend, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    envelope(&mut c, "a@x", "demo").await;
    let part1 = b"Subject: chunks\n\nfirst ";
    let part2 = b"second\r\n.\r\nnot an end\n";
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes()).await;
    c.send(part1).await;
    assert!(c.line().await.starts_with("250 2.0.0 OK"));
    c.send(format!("BDAT {} LAST\r\n", part2.len()).as_bytes())
        .await;
    c.send(part2).await;
    assert!(c.line().await.starts_with("250 2.0.0 <demo>"));

    // A second transaction whose BDAT is cut off: never stored.
    envelope(&mut c, "a@x", "demo").await;
    c.send(b"BDAT 100 LAST\r\nSubject: cut\r\n\r\nonly part")
        .await;
    c.hang_up().await;
    assert_eq!(c.rest().await, b"");
    c.finished().await;

    let msgs = inbox(&backend, "demo");
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].ends_with(b"Subject: chunks\r\n\r\nfirst second\r\n.\r\nnot an end\r\n"));
}

#[tokio::test]
async fn bdat_refused_chunk_is_consumed_not_executed() {
    let (_, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    // No MAIL: the chunk is refused but its bytes are read off the wire, not run as commands.
    c.send(b"BDAT 6\r\nQUIT\r\n").await;
    assert_eq!(c.line().await, "503 5.5.1 MAIL needed first");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 OK");
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.finished().await;
}

#[tokio::test]
async fn retried_delivery_is_not_duplicated() {
    let (backend, ctx) = demo_context();
    for _ in 0..2 {
        let mut c = greeted(&ctx).await;
        let reply = deliver_one(&mut c, "demo", MSG).await;
        assert!(reply.starts_with("250 2.0.0 <demo>"), "{reply}");
        assert!(c.cmd("QUIT").await.starts_with("221 "));
        c.finished().await;
    }
    assert_eq!(inbox(&backend, "demo").len(), 1);
    // A different message from the same sender is a new delivery.
    let mut c = greeted(&ctx).await;
    let other = MSG.replace("<m1@", "<m2@");
    assert!(deliver_one(&mut c, "demo", &other)
        .await
        .starts_with("250 "));
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 2);
}

#[tokio::test]
async fn over_quota_is_552() {
    let (backend, ctx) = demo_context();
    fill_quota(&backend, "demo");
    let mut c = greeted(&ctx).await;
    assert_eq!(
        deliver_one(&mut c, "demo", MSG).await,
        "552 5.2.2 <demo> Quota exceeded (mailbox for user is full)"
    );
    c.finished().await;
    assert!(inbox(&backend, "demo").is_empty());
}

#[tokio::test]
async fn detail_mailbox_when_enabled_and_existing() {
    let backend = TestBackend::demo();
    backend
        .store
        .user("demo")
        .unwrap()
        .create_mailbox("lists", None)
        .unwrap();
    let config = LmtpConfig {
        save_to_detail_mailbox: true,
        ..LmtpConfig::default()
    };
    let ctx = context(&backend, config);
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo+lists", MSG)
        .await
        .starts_with("250 2.0.0 <demo+lists>"));
    let other = MSG.replace("<m1@", "<m2@");
    assert!(deliver_one(&mut c, "demo+nosuch", &other)
        .await
        .starts_with("250 "));
    c.finished().await;
    assert_eq!(mailbox(&backend, "demo", "lists").len(), 1);
    let inbox = inbox(&backend, "demo");
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("Delivered-To: demo+nosuch\r\n"));

    // Disabled: user+detail still delivers, into INBOX.
    let ctx = context(&backend, LmtpConfig::default());
    let mut c = greeted(&ctx).await;
    let third = MSG.replace("<m1@", "<m3@");
    assert!(deliver_one(&mut c, "demo+lists", &third)
        .await
        .starts_with("250 "));
    c.finished().await;
    assert_eq!(mailbox(&backend, "demo", "lists").len(), 1);
}

#[tokio::test]
async fn refused_write_is_451_not_a_silent_drop() {
    let backend = TestBackend::demo();
    backend.refuse_writes(Some("not the active node"));
    let ctx = context(&backend, LmtpConfig::default());
    let mut c = greeted(&ctx).await;
    assert_eq!(
        deliver_one(&mut c, "demo", MSG).await,
        "451 4.3.0 <demo> not the active node"
    );
    c.finished().await;
    backend.refuse_writes(None);
    assert!(inbox(&backend, "demo").is_empty());
}

#[tokio::test]
async fn delivery_whose_commit_is_refused_is_451_not_250() {
    let backend = TestBackend::demo();
    backend.refuse_commits(Some("this node is not active (epoch 3)"));
    let ctx = context(&backend, LmtpConfig::default());
    let mut c = greeted(&ctx).await;
    assert_eq!(
        deliver_one(&mut c, "demo", MSG).await,
        "451 4.3.0 <demo> this node is not active (epoch 3)"
    );
    c.finished().await;
}

#[tokio::test]
async fn sequence_and_size_errors() {
    let backend = TestBackend::demo();
    let config = LmtpConfig {
        max_message_size: 100,
        ..LmtpConfig::default()
    };
    let ctx = context(&backend, config);
    let mut c = lmtp(&ctx);
    c.line().await;
    assert!(c.cmd("MAIL FROM:<a@x>").await.starts_with("503 "));
    c.send(b"LHLO x\r\n").await;
    c.smtp_reply().await;
    assert!(c.cmd("RCPT TO:<demo>").await.starts_with("503 "));
    assert!(c.cmd("DATA").await.starts_with("503 "));
    assert_eq!(
        c.cmd("MAIL FROM:<a@x> SIZE=1000").await,
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    assert!(c
        .cmd("MAIL FROM:<a@x> BODY=BINARYMIME")
        .await
        .starts_with("555 5.5.4 "));
    assert_eq!(c.cmd("MAIL FROM:<a@x>").await, "250 2.1.0 OK");
    assert!(c.cmd("DATA").await.starts_with("554 "));
    assert_eq!(c.cmd("RCPT TO:<demo>").await, "250 2.1.5 OK");
    assert_eq!(c.cmd("DATA").await, "354 OK");
    c.send(format!("{}\r\n.\r\n", "x".repeat(200)).as_bytes())
        .await;
    assert!(c.line().await.starts_with("552 5.3.4 <demo>"));
    assert!(c.cmd("VRFY demo").await.starts_with("252 "));
    assert!(c.cmd("XYZZY").await.starts_with("500 "));
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.finished().await;
    assert!(inbox(&backend, "demo").is_empty());
}

#[tokio::test]
async fn shutdown_says_421() {
    let (_, ctx) = demo_context();
    let mut c = greeted(&ctx).await;
    ctx.shutdown.cancel();
    assert!(c.line().await.starts_with("421 4.3.2 "));
    c.finished().await;
}

#[tokio::test]
async fn idle_timeout_says_421() {
    let backend = TestBackend::demo();
    let config = LmtpConfig {
        timeout: Duration::from_millis(200),
        ..LmtpConfig::default()
    };
    let ctx = context(&backend, config);
    let mut c = greeted(&ctx).await;
    assert!(c.line().await.starts_with("421 4.4.2 "));
    c.finished().await;
}

#[tokio::test]
async fn random_bytes_get_answers_and_never_panic() {
    use rand_like::Lcg;
    let (_, ctx) = demo_context();
    let mut rng = Lcg(0x5eed);
    for round in 0..40 {
        let mut c = lmtp(&ctx);
        assert!(c.line().await.starts_with("220 "));
        let mut junk = rng.bytes(64 + round * 50);
        // Half the rounds mix in real verbs so the state machine goes deeper.
        if round % 2 == 0 {
            junk.extend_from_slice(b"\r\nLHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<demo>\r\nDATA\r\n");
            junk.extend(rng.bytes(300));
        }
        c.send(&junk).await;
        c.hang_up().await;
        let out = c.rest().await;
        if junk.contains(&b'\n') {
            assert!(!out.is_empty(), "no answer to {junk:?}");
        }
        c.finished().await;
    }
}

/// A tiny deterministic generator (no rand dependency for one test).
pub(crate) mod rand_like {
    pub(crate) struct Lcg(pub u64);
    impl Lcg {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        /// Random bytes, biased towards CR, LF, '.' and spaces so line handling is exercised.
        pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n)
                .map(|_| match self.next() % 8 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'.',
                    3 => b' ',
                    _ => self.next() as u8,
                })
                .collect()
        }
    }
}

/// The test backend with some answers replaced, for failures it cannot produce itself.
pub(crate) struct Overrides {
    pub inner: Arc<TestBackend>,
    pub auth: Option<crate::backend::AuthOutcome>,
    pub lookup_error: Option<String>,
}

#[async_trait::async_trait]
impl crate::backend::Backend for Overrides {
    async fn authenticate(
        &self,
        req: crate::backend::AuthRequest<'_>,
    ) -> crate::backend::AuthOutcome {
        match &self.auth {
            Some(outcome) => outcome.clone(),
            None => self.inner.authenticate(req).await,
        }
    }
    async fn lookup_credentials(
        &self,
        service: crate::backend::Service,
        user: &str,
        kind: crate::backend::CredentialKind,
    ) -> crate::backend::CredentialsLookup {
        self.inner.lookup_credentials(service, user, kind).await
    }
    async fn validate_token(
        &self,
        service: crate::backend::Service,
        user: &str,
        token: &str,
    ) -> crate::backend::TokenCheck {
        self.inner.validate_token(service, user, token).await
    }
    async fn complete_login(
        &self,
        req: crate::backend::VerifiedLogin<'_>,
    ) -> crate::backend::AuthOutcome {
        match &self.auth {
            Some(outcome) => outcome.clone(),
            None => self.inner.complete_login(req).await,
        }
    }
    async fn lookup_user(&self, user: &str) -> Result<Option<crate::backend::UserInfo>, String> {
        match &self.lookup_error {
            Some(e) => Err(e.clone()),
            None => self.inner.lookup_user(user).await,
        }
    }
    async fn open_user(&self, user: &str) -> Result<Arc<storage::UserStore>, String> {
        self.inner.open_user(user).await
    }
    fn may_write(&self, user: &str) -> Result<(), crate::backend::WriteRefused> {
        self.inner.may_write(user)
    }
    async fn write_committed(&self, user: &str) -> Result<(), crate::backend::WriteRefused> {
        self.inner.write_committed(user).await
    }
    fn allow_plaintext(&self, conn: &crate::backend::ConnInfo) -> bool {
        self.inner.allow_plaintext(conn)
    }
    fn register_session(
        &self,
        service: crate::backend::Service,
        user: &str,
        ip: std::net::IpAddr,
    ) -> Result<crate::backend::SessionGuard, String> {
        self.inner.register_session(service, user, ip)
    }
}

#[tokio::test]
async fn userdb_failure_is_451() {
    let inner = TestBackend::demo();
    let ctx = Arc::new(LmtpContext {
        backend: Arc::new(Overrides {
            inner,
            auth: None,
            lookup_error: Some("passwd-file unreadable".into()),
        }),
        config: LmtpConfig::default(),
        shutdown: CancellationToken::new(),
    });
    let mut c = greeted(&ctx).await;
    assert_eq!(c.cmd("MAIL FROM:<a@x>").await, "250 2.1.0 OK");
    assert_eq!(
        c.cmd("RCPT TO:<demo>").await,
        "451 4.3.0 <demo> Temporary internal error"
    );
    c.finished().await;
}

/// Counts `node_deliveries_total` by its `result` label, for one test thread.
#[derive(Default)]
struct DeliveryCounts(
    std::sync::Mutex<std::collections::HashMap<String, Arc<metrics::atomics::AtomicU64>>>,
);

impl DeliveryCounts {
    fn get(&self, result: &str) -> u64 {
        let map = self.0.lock().unwrap();
        map.get(result)
            .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl metrics::Recorder for DeliveryCounts {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        assert_eq!(key.name(), "node_deliveries_total");
        let result = key
            .labels()
            .find(|l| l.key() == "result")
            .map(|l| l.value().to_string())
            .expect("a result label");
        let counter = self.0.lock().unwrap().entry(result).or_default().clone();
        metrics::Counter::from_arc(counter)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

// A current-thread runtime: the session task runs on this thread, where the local recorder is.
#[tokio::test(flavor = "current_thread")]
async fn deliveries_are_counted_by_result() {
    let counts = DeliveryCounts::default();
    let _recorder = metrics::set_default_local_recorder(&counts);
    let backend = TestBackend::new(&[("demo", "x"), ("bob", "y")]);
    let ctx = context(&backend, LmtpConfig::default());
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG).await.starts_with("250 "));
    // The same message again: acknowledged, stored once, counted as a duplicate.
    assert!(deliver_one(&mut c, "demo", MSG).await.starts_with("250 "));
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await, "250 2.1.0 OK");
    assert!(c.cmd("RCPT TO:<nobody>").await.starts_with("550 5.1.1 "));
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 OK");
    fill_quota(&backend, "bob");
    assert!(deliver_one(&mut c, "bob", MSG)
        .await
        .starts_with("552 5.2.2 "));
    backend.refuse_writes(Some("not the active node"));
    let other = MSG.replace("<m1@", "<m2@");
    assert!(deliver_one(&mut c, "demo", &other)
        .await
        .starts_with("451 "));
    c.finished().await;
    for (result, n) in [
        ("ok", 1),
        ("duplicate", 1),
        ("unknown_user", 1),
        ("quota", 1),
        ("tempfail", 1),
        ("too_large", 0),
    ] {
        assert_eq!(counts.get(result), n, "result={result}");
    }
}

/// Operators grep for Dovecot's `ready.` (its greeting is `220 <host> Dovecot ready.`).
#[tokio::test]
async fn greeting_names_the_host_and_says_ready() {
    let backend = TestBackend::demo();
    let config = LmtpConfig {
        hostname: "mx1.example.com".into(),
        ..LmtpConfig::default()
    };
    let ctx = context(&backend, config);
    let mut c = lmtp(&ctx);
    assert_eq!(c.line().await, "220 mx1.example.com LMTP ready.");
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.finished().await;
}

/// A delivery is in the store as soon as it is written, but acknowledged only once the replica
/// wait (`Backend::write_committed`) ends; a retried delivery recognised as a duplicate waits
/// too (the first one's client may never have had its reply).
#[tokio::test]
async fn data_is_not_acknowledged_before_the_replica_wait() {
    let (backend, ctx) = demo_context();
    let mut calls = 0;
    for attempt in ["first", "retry"] {
        let mut c = greeted(&ctx).await;
        envelope(&mut c, "a@example.org", "demo").await;
        assert_eq!(c.cmd("DATA").await, "354 OK");
        backend.hold_commits();
        c.send(format!("{MSG}.\r\n").as_bytes()).await;
        calls += 1;
        backend.commit_calls_reach(calls).await;
        assert_eq!(inbox(&backend, "demo").len(), 1, "{attempt}: stored once");
        let early = tokio::time::timeout(Duration::from_millis(200), c.line()).await;
        assert!(
            early.is_err(),
            "{attempt}: answered before the wait: {early:?}"
        );
        backend.release_commits();
        let reply = c.line().await;
        assert!(reply.starts_with("250 2.0.0 <demo> "), "{attempt}: {reply}");
        c.finished().await;
    }
}
