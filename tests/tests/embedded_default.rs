//! `node serve` with no configuration, in an empty working directory: the embedded
//! default a new user starts with. Fixed ports (1143, 1993, 1110, 1995, 2424, 9143), so
//! these tests run one at a time (a lock here; a nextest test group in CI) and skip with
//! a clear message when something else holds a port.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;
use tests::*;

static FIXED_PORTS: Mutex<()> = Mutex::new(());

/// Starts the embedded default, or None (skipped, said why) if a fixed port is busy.
fn embedded() -> Option<Server> {
    let p = EMBEDDED_PORTS;
    for port in [p.imap, p.imaps, p.pop3, p.pop3s, p.lmtp, p.http, p.sieve] {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!("SKIPPED: 127.0.0.1:{port} is in use; the embedded default needs it free");
            return None;
        }
    }
    Some(Server::start_embedded_default().expect("node serve (embedded default)"))
}

#[test]
fn serves_every_protocol_for_demo_on_the_fixed_ports() {
    let _serial = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = embedded() else { return };

    assert!(
        server.paths.data.is_dir(),
        "no ./data directory made in the working directory"
    );
    assert!(
        server.paths.data.join("tls").is_dir(),
        "no self-signed certificate under ./data/tls"
    );
    let log = server.log_text();
    assert!(
        log.contains("demo"),
        "start-up should print the demo user's credentials:\n{log}"
    );

    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.org",
        &["demo@localhost"],
        &sample_message("embedded default", "hello from LMTP 2424"),
    )
    .expect("LMTP on 2424");
    assert!(replies[0].starts_with("250"), "{replies:?}");

    // IMAP 1143 and IMAPS 1993 (self-signed: the client does not verify here), POP3 1110,
    // POP3S 1995, all as demo/demo, all seeing the delivered message.
    server.python(
        r#"
import imaplib, poplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for M in (imaplib.IMAP4('127.0.0.1', 1143), imaplib.IMAP4_SSL('127.0.0.1', 1993, ssl_context=ctx)):
    typ, _ = M.login('demo', 'demo'); assert typ == 'OK'
    typ, data = M.select('INBOX'); assert typ == 'OK' and int(data[0]) == 1, data
    typ, data = M.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    assert b'embedded default' in data[0][1], data
    M.logout()
for P in (poplib.POP3('127.0.0.1', 1110, timeout=20), poplib.POP3_SSL('127.0.0.1', 1995, context=ctx, timeout=20)):
    P.user('demo'); P.pass_('demo')
    assert P.stat()[0] == 1
    P.quit()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn health_endpoint_answers_on_9143() {
    let _serial = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = embedded() else { return };
    let mut c = LineConn::connect(server.addr(Proto::Http)).expect("connect 9143");
    c.send_raw(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("request");
    let status = c.line().expect("status line");
    assert!(
        status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"),
        "{status}"
    );
}
