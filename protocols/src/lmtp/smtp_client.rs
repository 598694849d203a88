//! A small SMTP client (RFC 5321) for the mail Sieve sends: redirects and vacation replies go
//! to the configured `submission_host` (Dovecot's setting), which relays them.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);
/// A reply line longer than this is a broken server, not a reply.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("timed out during {0}")]
    Timeout(&'static str),
    #[error("{0} refused: {1}")]
    Refused(&'static str, String),
    #[error("malformed reply during {0}")]
    Malformed(&'static str),
}

/// One message to send.
pub struct Outgoing<'a> {
    /// The envelope sender; "" for the null reverse path (vacation replies).
    pub from: &'a str,
    pub to: &'a str,
    /// CRLF-terminated lines; dot-stuffed here.
    pub data: &'a [u8],
}

/// Sends one message; `Ok` once the server accepted it.
pub async fn send(host: &str, helo: &str, msg: &Outgoing<'_>) -> Result<(), SmtpError> {
    let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(host))
        .await
        .map_err(|_| SmtpError::Timeout("connect"))?
        .map_err(|e| SmtpError::Io("connect", e))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    expect(&mut r, "greeting", 2).await?;
    command(&mut r, &mut w, format!("EHLO {helo}\r\n"), "EHLO", 2).await?;
    let from = clean(msg.from);
    let to = clean(msg.to);
    command(
        &mut r,
        &mut w,
        format!("MAIL FROM:<{from}>\r\n"),
        "MAIL FROM",
        2,
    )
    .await?;
    command(&mut r, &mut w, format!("RCPT TO:<{to}>\r\n"), "RCPT TO", 2).await?;
    command(&mut r, &mut w, "DATA\r\n".to_string(), "DATA", 3).await?;
    let body = dot_stuff(msg.data);
    write(&mut w, &body, "message data").await?;
    expect(&mut r, "end of data", 2).await?;
    // The message is accepted; a failed QUIT changes nothing.
    let _ = write(&mut w, b"QUIT\r\n", "QUIT").await;
    Ok(())
}

/// No line breaks or angle brackets from a script reach the command line.
fn clean(addr: &str) -> String {
    addr.chars()
        .filter(|c| !c.is_control() && *c != '<' && *c != '>')
        .collect()
}

/// CRLF line ends, leading dots doubled, and the final "." line (RFC 5321 4.5.2).
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in data {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

async fn write(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), SmtpError> {
    tokio::time::timeout(TIMEOUT, w.write_all(bytes))
        .await
        .map_err(|_| SmtpError::Timeout(what))?
        .map_err(|e| SmtpError::Io(what, e))
}

async fn command(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    line: String,
    what: &'static str,
    class: u8,
) -> Result<(), SmtpError> {
    write(w, line.as_bytes(), what).await?;
    expect(r, what, class).await
}

/// Reads one (possibly multi-line) reply and checks its first digit.
async fn expect(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    what: &'static str,
    class: u8,
) -> Result<(), SmtpError> {
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            TIMEOUT,
            (&mut *r).take(MAX_LINE as u64).read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| SmtpError::Timeout(what))?
        .map_err(|e| SmtpError::Io(what, e))?;
        if n == 0 || !line.ends_with(b"\n") {
            return Err(SmtpError::Malformed(what));
        }
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        let code = line
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
        let Some(code) = code else {
            return Err(SmtpError::Malformed(what));
        };
        let more = line.as_bytes().get(3) == Some(&b'-');
        if !more {
            if code.as_bytes().first() != Some(&(b'0' + class)) {
                return Err(SmtpError::Refused(what, line));
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b"x"), b"x\r\n.\r\n");
    }

    /// A scripted server: answers each command, records what it got.
    async fn server(replies: Vec<&'static str>) -> (String, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut replies = replies.into_iter();
            s.write_all(b"220 hi\r\n").await.unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                let in_data = text.contains("DATA\r\n") && !text.ends_with("\r\n.\r\n");
                if in_data && !text.ends_with("DATA\r\n") {
                    continue;
                }
                match replies.next() {
                    Some(r) => s.write_all(r.as_bytes()).await.unwrap(),
                    None => break,
                }
            }
            String::from_utf8_lossy(&got).to_string()
        });
        (addr, h)
    }

    #[tokio::test]
    async fn sends_a_message() {
        let (addr, h) = server(vec![
            "250-x\r\n250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
            "221 bye\r\n",
        ])
        .await;
        let msg = Outgoing {
            from: "",
            to: "a@x.example",
            data: b"Subject: s\r\n\r\n.dot\r\n",
        };
        send(&addr, "me", &msg).await.unwrap();
        let got = h.await.unwrap();
        assert!(got.contains("MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n"));
        assert!(got.contains("\r\n..dot\r\n.\r\n"));
    }

    #[tokio::test]
    async fn refusal_is_an_error() {
        let (addr, _h) = server(vec!["250 ok\r\n", "250 ok\r\n", "550 no such user\r\n"]).await;
        let msg = Outgoing {
            from: "s@x",
            to: "a@x.example",
            data: b"x\r\n",
        };
        let e = send(&addr, "me", &msg).await.unwrap_err();
        assert!(e.to_string().contains("550"), "{e}");
    }
}
