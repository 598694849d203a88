//! The body of the `proxy_reply` fuzz target: arbitrary bytes as a backend's replies, in
//! arbitrary chunks, through the reply-line splitter and each login machine (IMAP, POP3,
//! ManageSieve, LMTP). Nothing may panic, nothing sent to the backend carries a stray line break, and
//! every LMTP recipient ends with exactly one reply.

use super::imap_login::ImapLogin;
use super::lmtp_client::{LmtpForward, LmtpStep};
use super::pop3_login::Pop3Login;
use super::sieve_login::SieveLogin;
use super::{ProxyTarget, ProxyTls, ReplyLines, Step};

pub fn exercise(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut t = ProxyTarget::new("backend", Some(143), "user");
    t.password = Some("pw".into());
    if data.get(1).is_some_and(|b| b & 1 == 1) {
        t.tls = ProxyTls::StartTls;
    }
    let origin = super::ClientOrigin {
        remote: std::net::SocketAddr::from(([192, 0, 2, 7], 5555)),
        local: std::net::SocketAddr::from(([192, 0, 2, 1], 4190)),
        session_id: "s\r\n\"1".into(),
    };
    let mut imap = ImapLogin::new(t.clone(), None);
    let mut sieve = SieveLogin::new(t.clone(), Some(origin));
    let mut pop3 = Pop3Login::new(t, None);
    let rcpts = vec!["a@x".to_string(), "b@x".to_string()];
    let mut lmtp = LmtpForward::new("proxy", "s@x", rcpts.clone(), b"body\r\n");
    let mut lmtp_done = false;
    let mut lines = ReplyLines::new(1024);
    for piece in data.chunks(chunk) {
        lines.push(piece);
        loop {
            let line = match lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                // The driver gives up on the backend here.
                Err(_) => return,
            };
            let step = match imap.on_line(&line) {
                Step::StartTls => imap.tls_started(),
                s => s,
            };
            check_step(step);
            let step = match sieve.on_line(&line) {
                Step::StartTls => sieve.tls_started(),
                s => s,
            };
            check_step(step);
            let step = match pop3.on_line(&line) {
                Step::StartTls => pop3.tls_started(),
                s => s,
            };
            check_step(step);
            if !lmtp_done {
                match lmtp.on_line(&line) {
                    LmtpStep::Done(r) => {
                        assert_eq!(r.len(), rcpts.len());
                        lmtp_done = true;
                    }
                    LmtpStep::Send(b) if b.starts_with(b"LHLO") || b.starts_with(b"RCPT") => {
                        check_lines(&b)
                    }
                    _ => {}
                }
            }
        }
        assert!(lines.buffered() <= 1024 + chunk, "reply buffer unbounded");
    }
    if !lmtp_done {
        if let LmtpStep::Done(r) = lmtp.abort() {
            assert_eq!(r.len(), rcpts.len());
        }
    }
}

fn check_step(step: Step) {
    if let Step::Send(b) = step {
        check_lines(&b);
    }
}

/// Every CR is followed by LF and every LF ends a line the machine meant to send.
fn check_lines(bytes: &[u8]) {
    assert!(bytes.ends_with(b"\r\n"), "command without line end");
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(bytes.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_and_samples() {
        let seeds: [&[u8]; 8] = [
            b"\x02\x00\"SASL\" \"PLAIN\"\r\n\"XCLIENT\"\r\nOK hi\r\nNO x\r\nOK \"Logged in.\"\r\n",
            b"\x04\x01\"STARTTLS\"\r\nOK hi\r\nOK go\r\n\"VERSION\" \"1.0\"\r\nOK again\r\nNO (TRYLATER) x\r\n",
            b"\x01\x00* OK [CAPABILITY SASL-IR] hi\r\nP3 OK done\r\n",
            b"\x03\x01* OK hi\r\nP1 OK go\r\n+ \r\nP3 NO x\r\n",
            b"\x05\x00+OK\r\n+OK\r\n+OK\r\n-ERR [SYS/TEMP] x\r\n",
            b"\x07\x00220 hi\r\n250-x\r\n250 y\r\n250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n250 ok\r\n",
            b"\x02\x00\xff\xfe\r\n\n\n\r\r\r",
            &[b'x'; 5000],
        ];
        for s in seeds {
            super::exercise(s);
        }
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/proxy_reply");
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if let Ok(data) = std::fs::read(e.path()) {
                    super::exercise(&data);
                }
            }
        }
    }
}
