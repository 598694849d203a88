//! An async line-oriented client connection (plain TCP or TLS) shared by `bench-idle` and
//! `bench`: CRLF lines with a bound on their length, literals read by count, and a line buffer
//! that survives a read cancelled by `select!`. Every bound is an error, never a panic.

use crate::bench::parse;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A byte stream a client speaks over: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
    buf: Vec<u8>,
    max_line: u64,
}

impl Conn {
    /// `capacity`: the read buffer (an idling client needs little); `max_line`: the longest
    /// line accepted.
    pub fn new(s: impl Stream + 'static, capacity: usize, max_line: u64) -> Conn {
        Conn {
            io: BufReader::with_capacity(capacity, Box::new(s)),
            buf: Vec::new(),
            max_line,
        }
    }

    /// Connects (within `timeout`), over TLS when `tls` is given (SNI `host`).
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<(&Arc<rustls::ClientConfig>, &str)>,
        timeout: Duration,
        max_line: u64,
    ) -> Result<Conn> {
        let fut = async {
            let s = TcpStream::connect(addr)
                .await
                .with_context(|| format!("connect {addr}"))?;
            let _ = s.set_nodelay(true);
            let Some((config, host)) = tls else {
                return Ok(Conn::new(s, 16 * 1024, max_line));
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .with_context(|| format!("TLS server name {host:?}"))?;
            let t = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, s)
                .await
                .with_context(|| format!("TLS handshake with {addr}"))?;
            Ok(Conn::new(t, 16 * 1024, max_line))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .with_context(|| format!("connect {addr}: timed out"))?
    }

    pub async fn send_raw(&mut self, b: &[u8]) -> Result<()> {
        self.io.get_mut().write_all(b).await.context("write")
    }

    /// `line` and CRLF in one write.
    pub async fn send(&mut self, line: &str) -> Result<()> {
        let mut b = Vec::with_capacity(line.len() + 2);
        b.extend_from_slice(line.as_bytes());
        b.extend_from_slice(b"\r\n");
        self.send_raw(&b).await
    }

    /// The next line's bytes without CRLF; EOF or an over-long line is an error.
    pub async fn line_bytes(&mut self) -> Result<Vec<u8>> {
        loop {
            let room = self.max_line.saturating_sub(self.buf.len() as u64);
            if room == 0 {
                bail!("server line longer than {} bytes", self.max_line);
            }
            let n = (&mut self.io)
                .take(room)
                .read_until(b'\n', &mut self.buf)
                .await
                .context("read")?;
            if n == 0 {
                bail!("connection closed by the server");
            }
            if self.buf.last() == Some(&b'\n') {
                let mut raw = std::mem::take(&mut self.buf);
                while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    raw.pop();
                }
                return Ok(raw);
            }
        }
    }

    /// The next line as UTF-8 (bench-idle's servers send nothing else).
    pub async fn line(&mut self) -> Result<String> {
        let raw = self.line_bytes().await?;
        String::from_utf8(raw).context("server line is not UTF-8")
    }

    /// Reads and discards `n` bytes (a literal); returns `n`.
    pub async fn skip(&mut self, n: u64) -> Result<u64> {
        let got = tokio::io::copy(&mut (&mut self.io).take(n), &mut tokio::io::sink())
            .await
            .context("read literal")?;
        if got != n {
            bail!("connection closed inside a literal ({got} of {n} bytes)");
        }
        Ok(n)
    }

    /// Reads up to the tagged reply for `tag`, reading literals by count; untagged lines
    /// (literal bytes left out) and the tagged reply.
    pub async fn imap_reply(&mut self, tag: &str, max_literal: u64) -> Result<parse::ImapReply> {
        let mut reply = parse::ImapReply::default();
        loop {
            let mut line = self.line_bytes().await?;
            reply.bytes += line.len() as u64 + 2;
            // A line announcing a literal continues after it: read the literal, then the rest.
            while let Some(n) = parse::literal_len(&line) {
                if n > max_literal {
                    bail!("literal of {n} bytes (more than {max_literal})");
                }
                reply.bytes += self.skip(n).await?;
                let rest = self.line_bytes().await?;
                reply.bytes += rest.len() as u64 + 2;
                line.extend_from_slice(b" ");
                line.extend_from_slice(&rest);
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some((status, rest)) = parse::tagged(&text, tag) {
                reply.status = status;
                reply.text = rest.to_string();
                return Ok(reply);
            }
            // `* BYE` stays among the untagged lines: LOGOUT expects it, and for any other
            // command the close that follows it ends the read with an error.
            reply.untagged.push(text);
        }
    }

    /// Reads up to the tagged reply for `tag`; anything but OK is an error.
    pub async fn until_tagged(&mut self, tag: &str) -> Result<()> {
        let r = self.imap_reply(tag, 1 << 20).await?;
        if r.status != parse::Status::Ok {
            bail!("{tag} {:?} {}", r.status, r.text);
        }
        Ok(())
    }

    /// One (possibly multi-line) SMTP/LMTP reply: its code and last line.
    pub async fn smtp_any(&mut self) -> Result<(u16, String)> {
        for _ in 0..1000 {
            let l = String::from_utf8_lossy(&self.line_bytes().await?).into_owned();
            let Some((code, more)) = parse::smtp_line(&l) else {
                bail!("malformed reply {l:?}");
            };
            if !more {
                return Ok((code, l));
            }
        }
        bail!("reply of more than 1000 lines")
    }

    /// One SMTP/LMTP reply that must have `code`.
    pub async fn smtp_reply(&mut self, code: u16) -> Result<()> {
        let (got, l) = self.smtp_any().await?;
        if got != code {
            bail!("expected {code}, got {l:?}");
        }
        Ok(())
    }
}

/// A TLS client configuration that accepts any certificate: a benchmark measures a server,
/// it does not authenticate it (test servers have self-signed certificates).
pub fn insecure_tls() -> Result<Arc<rustls::ClientConfig>> {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    #[derive(Debug)]
    struct AnyCert;
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_across_cancelled_reads_and_bounds_length() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"* 1 EX").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            s.write_all(b"ISTS\r\nc OK done\r\n").await.unwrap();
            s.write_all(&[b'x'; 8200]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let mut c = Conn::new(TcpStream::connect(addr).await.unwrap(), 1024, 8192);
        // A read cancelled mid-line keeps its bytes.
        let r = tokio::time::timeout(Duration::from_millis(30), c.line()).await;
        assert!(r.is_err());
        assert_eq!(c.line().await.unwrap(), "* 1 EXISTS");
        c.until_tagged("c").await.unwrap();
        assert!(c.line().await.is_err());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn imap_reply_reads_literals_by_count() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // A literal holding what looks like a tagged reply must not end the response.
            s.write_all(b"* 1 FETCH (UID 7 BODY[] {12}\r\na1 OK fake\r\n)\r\na1 OK done\r\n")
                .await
                .unwrap();
            s.write_all(b"* 2 FETCH (BODY[] {99}\r\n").await.unwrap();
        });
        let mut c = Conn::new(TcpStream::connect(addr).await.unwrap(), 1024, 8192);
        let r = c.imap_reply("a1", 100).await.unwrap();
        assert_eq!(r.status, parse::Status::Ok);
        assert_eq!(r.untagged.len(), 1);
        assert_eq!(parse::fetch_uid(&r.untagged[0]), Some(7));
        // A literal above the bound is refused.
        assert!(c.imap_reply("a2", 50).await.is_err());
        server.await.unwrap();
    }
}
