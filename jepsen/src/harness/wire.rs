//! Minimal blocking IMAP and LMTP clients over plain TCP, with timeouts on every read and
//! bounds on every response: a misbehaving server gives an error, never a hang or a panic.

use anyhow::{bail, Context, Result};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A line or a literal larger than this is refused.
const MAX_LINE: usize = 1 << 20;
/// An IMAP response of more lines than this is refused (our mailboxes hold a few thousand).
const MAX_LINES: usize = 200_000;

pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// The whole of one command may take no longer than this.
    deadline: Duration,
    /// Node id from the greeting ("lab-nN"), if it names one.
    pub node: Option<u32>,
    tag: u32,
}

/// "lab-n2" anywhere in a greeting -> 2.
pub fn node_in_greeting(g: &str) -> Option<u32> {
    let i = g.find("lab-n")?;
    let digits: String = g[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Conn {
    pub fn connect(addr: SocketAddr, connect: Duration, io: Duration) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, connect)
            .with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(io))?;
        s.set_write_timeout(Some(io))?;
        let _ = s.set_nodelay(true);
        let w = s.try_clone()?;
        Ok(Conn {
            r: BufReader::new(s),
            w,
            deadline: io * 3,
            node: None,
            tag: 0,
        })
    }

    /// One CRLF line, without the CRLF.
    pub fn line(&mut self) -> Result<String> {
        let mut buf = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .context("read")?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        if !buf.ends_with(b"\n") {
            bail!("line longer than {MAX_LINE} bytes or cut off");
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).context("write")
    }

    /// Greeting: must start with `ok`; remembers the node it names.
    pub fn greeting(&mut self, ok: &str) -> Result<String> {
        let g = self.line()?;
        if !g.starts_with(ok) {
            bail!("greeting {g:?}");
        }
        self.node = node_in_greeting(&g);
        Ok(g)
    }

    /// One IMAP response line with any literals it announces inlined ("{N}" then N bytes).
    fn imap_line(&mut self) -> Result<String> {
        let mut line = self.line()?;
        for _ in 0..64 {
            let Some(n) = literal_len(&line) else {
                return Ok(line);
            };
            if n > MAX_LINE {
                bail!("literal of {n} bytes");
            }
            let mut lit = vec![0u8; n];
            self.r.read_exact(&mut lit).context("read literal")?;
            line.push_str("\r\n");
            line.push_str(&String::from_utf8_lossy(&lit));
            line.push_str(&self.line()?);
        }
        bail!("too many literals in one response line")
    }

    /// Sends `TAG cmd` and reads up to the tagged reply: (untagged lines, tagged line).
    pub fn imap(&mut self, cmd: &str) -> Result<(Vec<String>, String)> {
        self.tag += 1;
        let tag = format!("j{}", self.tag);
        self.send(format!("{tag} {cmd}\r\n").as_bytes())?;
        self.until_tagged(&tag)
    }

    fn until_tagged(&mut self, tag: &str) -> Result<(Vec<String>, String)> {
        let start = Instant::now();
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        while untagged.len() < MAX_LINES {
            if start.elapsed() > self.deadline {
                bail!("no tagged reply within {:?}", self.deadline);
            }
            let l = self.imap_line()?;
            if l.starts_with(&prefix) {
                return Ok((untagged, l[prefix.len()..].to_string()));
            }
            if l.starts_with("* BYE") {
                bail!("server said {l:?}");
            }
            untagged.push(l);
        }
        bail!("response of more than {MAX_LINES} lines")
    }

    /// APPEND with a synchronising literal; the tagged reply.
    pub fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<String> {
        self.tag += 1;
        let tag = format!("j{}", self.tag);
        self.send(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes())?;
        let cont = self.line()?;
        if !cont.starts_with('+') {
            bail!("APPEND: no continuation: {cont:?}");
        }
        self.send(msg)?;
        self.send(b"\r\n")?;
        Ok(self.until_tagged(&tag)?.1)
    }

    pub fn imap_login(addr: SocketAddr, user: &str, pass: &str, io: Duration) -> Result<Conn> {
        let mut c = Conn::connect(addr, Duration::from_millis(500), io)?;
        c.greeting("* OK")?;
        let (_, t) = c.imap(&format!("LOGIN {user} {pass}"))?;
        if !t.starts_with("OK") {
            bail!("LOGIN: {t}");
        }
        Ok(c)
    }

    /// LMTP reply: every line of a multi-line reply; the code of the last.
    fn lmtp_reply(&mut self) -> Result<String> {
        for _ in 0..100 {
            let l = self.line()?;
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return Ok(l);
            }
        }
        bail!("LMTP reply of more than 100 lines")
    }

    fn lmtp_cmd(&mut self, cmd: &str, want: &str) -> Result<String> {
        self.send(format!("{cmd}\r\n").as_bytes())?;
        let r = self.lmtp_reply()?;
        if !r.starts_with(want) {
            bail!("LMTP {cmd}: {r}");
        }
        Ok(r)
    }
}

/// "... {123}" or "... {123+}" at the end of a line -> 123.
fn literal_len(line: &str) -> Option<usize> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
}

/// Outcome of one LMTP delivery.
pub enum Delivery {
    /// 250 for the recipient.
    Ok(Option<u32>),
    /// A definite refusal (4xx/5xx): not stored.
    Refused(String),
}

/// Delivers `msg` to `rcpt` over LMTP; an Err is an unknown outcome (connection or timeout)
/// only after DATA was sent, else a definite failure: the caller tells them apart by `sent`.
pub fn lmtp_deliver(
    addr: SocketAddr,
    rcpt: &str,
    msg: &[u8],
    io: Duration,
    sent: &mut bool,
) -> Result<Delivery> {
    *sent = false;
    let mut c = Conn::connect(addr, Duration::from_millis(500), io)?;
    c.greeting("220")?;
    let node = c.node;
    c.lmtp_cmd("LHLO jepsen.test", "250")?;
    c.lmtp_cmd("MAIL FROM:<jepsen@lab.test>", "250")?;
    let r = c.lmtp_cmd_any(&format!("RCPT TO:<{rcpt}>"))?;
    if !r.starts_with("250") {
        return Ok(Delivery::Refused(r));
    }
    c.lmtp_cmd("DATA", "354")?;
    *sent = true;
    // Dot-stuffing: our messages have no line starting with '.'.
    c.send(msg)?;
    c.send(b"\r\n.\r\n")?;
    let r = c.lmtp_reply()?;
    let _ = c.send(b"QUIT\r\n");
    if r.starts_with("250") {
        Ok(Delivery::Ok(node))
    } else {
        Ok(Delivery::Refused(r))
    }
}

impl Conn {
    fn lmtp_cmd_any(&mut self, cmd: &str) -> Result<String> {
        self.send(format!("{cmd}\r\n").as_bytes())?;
        self.lmtp_reply()
    }
}

/// A test message with a unique Message-ID.
pub fn message(msgid: &str) -> Vec<u8> {
    format!(
        "From: jepsen <jepsen@lab.test>\r\nTo: demo@lab.test\r\nSubject: {msgid}\r\nMessage-ID: <{msgid}>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nbody of {msgid}\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_greetings() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len("a APPEND x {3+}"), Some(3));
        assert_eq!(literal_len("* OK {x}"), None);
        assert_eq!(literal_len("plain"), None);
        assert_eq!(
            node_in_greeting("* OK [CAPABILITY IMAP4rev1] lab-n2 ready"),
            Some(2)
        );
        assert_eq!(node_in_greeting("220 lab-n13 LMTP"), Some(13));
        assert_eq!(node_in_greeting("* OK hi"), None);
    }
}
