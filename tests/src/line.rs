//! A raw line-protocol client (IMAP, POP3, LMTP) over a plain socket, for transcripts
//! that must be checked line by line and byte by byte.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A blocking line client with a read timeout: every read either returns a line or fails
/// the test, so a hung server shows up as a clear error instead of a stuck test.
pub struct LineConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineConn {
    pub fn connect(addr: SocketAddr) -> Result<LineConn> {
        Self::connect_with(addr, Duration::from_secs(5), Duration::from_secs(20))
    }

    /// [`LineConn::connect`] with given connect and read timeouts (fail-over tests retry
    /// fast and must not wait 20 s on a dead peer).
    pub fn connect_with(addr: SocketAddr, connect: Duration, read: Duration) -> Result<LineConn> {
        let s = TcpStream::connect_timeout(&addr, connect)
            .with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(read))?;
        s.set_nodelay(true)?;
        Ok(LineConn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    pub fn set_timeout(&mut self, d: Duration) -> Result<()> {
        self.writer.set_read_timeout(Some(d))?;
        Ok(())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes)?;
        Ok(())
    }

    /// Sends `line` followed by CRLF.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let mut b = line.as_bytes().to_vec();
        b.extend_from_slice(b"\r\n");
        self.send_raw(&b)
    }

    /// One line without its CRLF; an error at EOF or timeout.
    pub fn line(&mut self) -> Result<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            bail!("connection closed by server");
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.reader.read_exact(&mut b)?;
        Ok(b)
    }

    /// IMAP: reads lines up to and including the one tagged `tag`, following literals
    /// (`{N}` at a line's end) so literal data is never mistaken for a response line.
    /// Returns all lines (literal bytes inlined) and the tagged line last.
    pub fn imap_until(&mut self, tag: &str) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let mut l = self.line()?;
            while let Some(n) = literal_len(&l) {
                let data = self.bytes(n)?;
                l.push_str("\r\n");
                l.push_str(&String::from_utf8_lossy(&data));
                l.push_str(&self.line()?);
            }
            let done = l.starts_with(&prefix);
            lines.push(l);
            if done {
                return Ok(lines);
            }
        }
    }

    /// IMAP: sends `tag command` and returns the response lines through the tagged one.
    pub fn imap(&mut self, tag: &str, command: &str) -> Result<Vec<String>> {
        self.send(&format!("{tag} {command}"))?;
        self.imap_until(tag)
    }
}

impl LineConn {
    /// IMAP: sends `tag command` and returns the bytes of the first literal in the
    /// response, exactly (8-bit safe), after reading through the tagged line.
    pub fn imap_literal(&mut self, tag: &str, command: &str) -> Result<Vec<u8>> {
        self.send(&format!("{tag} {command}"))?;
        let prefix = format!("{tag} ");
        let mut first: Option<Vec<u8>> = None;
        loop {
            let l = self.line()?;
            if l.starts_with(&prefix) {
                if !l.starts_with(&format!("{tag} OK")) {
                    bail!("{command}: {l}");
                }
                return first.with_context(|| format!("{command}: no literal in the response"));
            }
            let mut cur = l;
            while let Some(n) = literal_len(&cur) {
                let data = self.bytes(n)?;
                first.get_or_insert(data);
                cur = self.line()?;
            }
        }
    }

    /// POP3: reads a multi-line response body after its `+OK` line, up to the
    /// terminating `.` line. Returns the bytes as sent on the wire (still dot-stuffed).
    pub fn pop3_multiline(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            if self.reader.read_until(b'\n', &mut buf)? == 0 {
                bail!("connection closed inside a multi-line response");
            }
            if buf == b".\r\n" {
                return Ok(out);
            }
            out.extend_from_slice(&buf);
        }
    }
}

/// Logs in over POP3 (USER/PASS) on a plain socket.
pub fn pop3_login(addr: SocketAddr, user: &str, pass: &str) -> Result<LineConn> {
    let mut c = LineConn::connect(addr)?;
    let g = c.line()?;
    if !g.starts_with("+OK") {
        bail!("POP3 greeting: {g}");
    }
    for cmd in [format!("USER {user}"), format!("PASS {pass}")] {
        c.send(&cmd)?;
        let r = c.line()?;
        if !r.starts_with("+OK") {
            bail!("{cmd}: {r}");
        }
    }
    Ok(c)
}

/// `{N}` or `{N+}` at the end of a response line announces an N-byte literal.
fn literal_len(line: &str) -> Option<usize> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].trim_end_matches('+').parse().ok()
}

/// The tagged status line of an IMAP response (its last line).
pub fn tagged(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements_are_recognised() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_len("a APPEND INBOX {7+}"), Some(7));
        assert_eq!(literal_len("* OK done"), None);
        assert_eq!(literal_len("* OK {x}"), None);
    }
}
