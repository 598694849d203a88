//! OAUTHBEARER (RFC 7628) and XOAUTH2 against the node binary, with a token introspection
//! endpoint (RFC 7662) served by the test on loopback: curl's `--oauth2-bearer` and imaplib
//! with a hand-made client response, good tokens, someone else's, inactive ones, and the
//! endpoint gone (a temporary failure, not a wrong password).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::*;

/// A tiny RFC 7662 endpoint: `good-USER` is active for USER, anything else inactive. Returns
/// its URL and the request bodies it saw.
fn introspection_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/introspect", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).into_owned();
            log.lock().unwrap().push(body.clone());
            let token = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .unwrap_or_default()
                .to_string();
            let answer = match token.strip_prefix("good-") {
                Some(user) => format!(r#"{{"active":true,"username":"{user}","scope":"mail"}}"#),
                None => r#"{"active":false}"#.to_string(),
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

fn spec(url: &str) -> ServerSpec {
    ServerSpec {
        wait_for: vec![Proto::Imap],
        extra_toml: format!(
            "auth_mechanisms = \"plain oauthbearer xoauth2\"\nauth_failure_delay = \"0\"\n\
             [oauth2]\nintrospection_url = \"{url}\"\n"
        ),
        ..Default::default()
    }
}

#[test]
fn curl_and_imaplib_with_bearer_tokens() {
    let (url, seen) = introspection_server();
    let server = Server::start(spec(&url)).expect("start node");
    server.python(
        r#"
import base64, imaplib, json, os
def imap():
    return imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
M = imap()
assert 'AUTH=OAUTHBEARER' in M.capabilities and 'AUTH=XOAUTH2' in M.capabilities, M.capabilities
typ, _ = M.authenticate('XOAUTH2', lambda c: b'user=demo\x01auth=Bearer good-demo\x01\x01')
assert typ == 'OK'
typ, data = M.select('INBOX'); assert typ == 'OK', data
M.logout()

M = imap()
typ, _ = M.authenticate('OAUTHBEARER', lambda c: b'n,a=demo,\x01auth=Bearer good-demo\x01\x01')
assert typ == 'OK'
M.logout()

# Someone else's token and an inactive one: the RFC 7628 error JSON, then NO.
for mech, resp in [('OAUTHBEARER', b'n,a=demo,\x01auth=Bearer good-bob\x01\x01'),
                   ('XOAUTH2', b'user=demo\x01auth=Bearer expired\x01\x01')]:
    M = imap()
    challenges = []
    def step(c, resp=resp):
        if not challenges and c == b'':
            challenges.append(None)
            return resp
        challenges.append(c)
        return b'\x01'
    try:
        M.authenticate(mech, step)
        raise AssertionError('login with a bad token succeeded')
    except imaplib.IMAP4.error as e:
        assert 'AUTHENTICATIONFAILED' in str(e), e
    err = json.loads([c for c in challenges if c][0])
    assert err['status'] == 'invalid_token' and err['schemes'] == 'bearer', err
    M.logout()
"#,
        Duration::from_secs(60),
    );
    let bodies = seen.lock().unwrap().clone();
    assert!(
        bodies.iter().any(|b| b.contains("token=good-demo")),
        "introspection saw {bodies:?}"
    );

    if !missing_tool("curl") {
        let imap = format!("imap://127.0.0.1:{}/", server.ports.imap);
        let curl = |mech: &str, token: &str| {
            run(
                Command::new("curl")
                    .args(["-sS", "--max-time", "20", "--login-options"])
                    .arg(format!("AUTH={mech}"))
                    .args(["--oauth2-bearer", token, "-u", "demo:", &imap]),
                None,
                Duration::from_secs(30),
            )
            .expect("curl")
        };
        for mech in ["OAUTHBEARER", "XOAUTH2"] {
            let ok = curl(mech, "good-demo");
            assert!(ok.status.success(), "curl {mech}: {}", ok.stderr_text());
            assert!(ok.stdout_text().contains("INBOX"), "{}", ok.stdout_text());
            let bad = curl(mech, "good-alice");
            assert!(
                !bad.status.success(),
                "curl {mech} with alice's token logged in as demo"
            );
        }
        let log = server.log_text();
        assert!(
            log.contains("method=OAUTHBEARER") && log.contains("method=XOAUTH2"),
            "{}",
            tail(&log, 30)
        );
    }
}

/// The endpoint unreachable: a temporary failure (`[UNAVAILABLE]`), not AUTHENTICATIONFAILED.
#[test]
fn introspection_down_is_a_temporary_failure() {
    let port = free_port();
    let server =
        Server::start(spec(&format!("http://127.0.0.1:{port}/introspect"))).expect("start node");
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    use base64::Engine;
    let ir = base64::engine::general_purpose::STANDARD
        .encode(b"n,a=demo,\x01auth=Bearer good-demo\x01\x01");
    let r = c
        .imap("a", &format!("AUTHENTICATE OAUTHBEARER {ir}"))
        .expect("auth");
    assert!(tagged(&r).starts_with("a NO [UNAVAILABLE]"), "{r:?}");
}
