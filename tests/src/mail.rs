//! Mail for the tests: LMTP delivery from Rust, dot-stuffing, sample messages.

use crate::LineConn;
use anyhow::{bail, Result};
use std::net::SocketAddr;

/// Delivers one message over LMTP from Rust (for tests that need mail to be there):
/// returns the reply lines after DATA, one per accepted recipient.
pub fn lmtp_deliver(
    addr: SocketAddr,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Vec<String>> {
    lmtp_deliver_with(addr, from, "", rcpts, message)
}

/// [`lmtp_deliver`] with MAIL FROM parameters (e.g. `BODY=8BITMIME`). The message is
/// dot-stuffed here and otherwise sent as given (bare LFs stay bare).
pub fn lmtp_deliver_with(
    addr: SocketAddr,
    from: &str,
    mail_params: &str,
    rcpts: &[&str],
    message: &[u8],
) -> Result<Vec<String>> {
    let mut c = LineConn::connect(addr)?;
    let greeting = c.line()?;
    if !greeting.starts_with("220") {
        bail!("LMTP greeting: {greeting}");
    }
    c.send("LHLO tests.local")?;
    smtp_reply(&mut c, "250")?;
    if mail_params.is_empty() {
        c.send(&format!("MAIL FROM:<{from}>"))?;
    } else {
        c.send(&format!("MAIL FROM:<{from}> {mail_params}"))?;
    }
    smtp_reply(&mut c, "250")?;
    let mut accepted = 0;
    for r in rcpts {
        c.send(&format!("RCPT TO:<{r}>"))?;
        if smtp_reply(&mut c, "")?.starts_with("250") {
            accepted += 1;
        }
    }
    if accepted == 0 {
        bail!("no recipient accepted");
    }
    c.send("DATA")?;
    smtp_reply(&mut c, "354")?;
    c.send_raw(&dot_stuff(message))?;
    c.send_raw(b".\r\n")?;
    let mut replies = Vec::new();
    for _ in 0..accepted {
        replies.push(smtp_reply(&mut c, "")?);
    }
    c.send("QUIT")?;
    Ok(replies)
}

/// Reads one (possibly multi-line) SMTP/LMTP reply and returns its last line; when
/// `expect` is non-empty the code must match.
pub fn smtp_reply(c: &mut LineConn, expect: &str) -> Result<String> {
    loop {
        let l = c.line()?;
        if l.len() >= 4 && l.as_bytes()[3] == b'-' {
            continue;
        }
        if !expect.is_empty() && !l.starts_with(expect) {
            bail!("expected {expect}, got {l:?}");
        }
        return Ok(l);
    }
}

/// Message text for DATA: lines starting with '.' doubled, ending in CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A small RFC 5322 message with a unique Message-ID.
pub fn sample_message(subject: &str, body: &str) -> Vec<u8> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "From: Sender <sender@example.org>\r\nTo: demo@example.org\r\nSubject: {subject}\r\n\
         Message-ID: <{n}.{pid}.{subject_id}@tests.local>\r\nDate: Mon, 23 Nov 2026 05:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n",
        pid = std::process::id(),
        subject_id = subject.len(),
    )
    .into_bytes()
}

/// Undoes POP3/SMTP dot-stuffing: a line starting with ".." loses one dot.
pub fn dot_unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut at_line_start = true;
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        if at_line_start && b == b'.' && wire.get(i + 1) == Some(&b'.') {
            i += 1;
        }
        out.push(wire[i]);
        at_line_start = wire[i] == b'\n';
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_in_crlf() {
        assert_eq!(
            dot_stuff(b".a\r\nb\r\n..c"),
            b"..a\r\nb\r\n...c\r\n".to_vec()
        );
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n".to_vec());
    }

    #[test]
    fn dot_unstuffing_reverses_stuffing() {
        let msg = b"..a\r\nb\r\n...c\r\n.\r\n";
        assert_eq!(dot_unstuff(msg), b".a\r\nb\r\n..c\r\n.\r\n".to_vec());
        let orig = b".x\r\n.\r\ny\r\n";
        assert_eq!(dot_unstuff(&dot_stuff(orig)), orig.to_vec());
    }
}
