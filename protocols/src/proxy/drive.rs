//! The I/O edge of proxying: connect to the backend (through the node's connector, which
//! knows TLS), run a login machine over the backend's lines under `proxy_timeout`, and once
//! logged in splice the client and the backend until either side closes.

use super::lmtp_client::{unavailable_reply, LmtpForward, LmtpStep};
use super::{LineTooLong, LoginResult, ProxyError, ProxyTarget, ReplyLines, Step};
use crate::backend::Backend;
use crate::stream::BoxStream;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A backend reply line longer than this is a broken backend.
const MAX_LINE: usize = 64 * 1024;

/// A login dialogue (IMAP, POP3 or ManageSieve) as the driver sees it.
pub trait LoginMachine: Send {
    fn on_line(&mut self, line: &[u8]) -> Step;
    fn tls_started(&mut self) -> Step;
}

impl LoginMachine for super::imap_login::ImapLogin {
    fn on_line(&mut self, line: &[u8]) -> Step {
        super::imap_login::ImapLogin::on_line(self, line)
    }
    fn tls_started(&mut self) -> Step {
        super::imap_login::ImapLogin::tls_started(self)
    }
}

impl LoginMachine for super::pop3_login::Pop3Login {
    fn on_line(&mut self, line: &[u8]) -> Step {
        super::pop3_login::Pop3Login::on_line(self, line)
    }
    fn tls_started(&mut self) -> Step {
        super::pop3_login::Pop3Login::tls_started(self)
    }
}

impl LoginMachine for super::sieve_login::SieveLogin {
    fn on_line(&mut self, line: &[u8]) -> Step {
        super::sieve_login::SieveLogin::on_line(self, line)
    }
    fn tls_started(&mut self) -> Step {
        super::sieve_login::SieveLogin::tls_started(self)
    }
}

/// A finished backend login.
pub struct Logged {
    pub stream: BoxStream,
    /// What the backend sent after the login reply (goes to the client first).
    pub rest: Vec<u8>,
    pub result: LoginResult,
}

/// Plain TCP to `hostip` (if given) or `host`, under `timeout`. The default connector.
pub async fn connect_tcp(target: &ProxyTarget, port: u16) -> std::io::Result<BoxStream> {
    let stream = match target.hostip {
        Some(ip) => tokio::net::TcpStream::connect((ip, port)).await?,
        None => tokio::net::TcpStream::connect((target.host.as_str(), port)).await?,
    };
    let _ = stream.set_nodelay(true);
    Ok(Box::new(stream))
}

/// Connects (through `backend`'s connector) and runs `machine` to its end.
pub async fn login<M: LoginMachine>(
    backend: &dyn Backend,
    target: &ProxyTarget,
    port: u16,
    mut machine: M,
) -> Result<Logged, ProxyError> {
    let at = target.display(port);
    let timeout = target.timeout;
    let run = async {
        let mut stream = backend
            .proxy_connect(target, port)
            .await
            .map_err(|e| ProxyError::Connect(at.clone(), e.to_string()))?;
        let mut lines = ReplyLines::new(MAX_LINE);
        loop {
            let line = match next_line(&mut stream, &mut lines).await {
                Ok(l) => l,
                Err(e) => return Err(ProxyError::Backend(at.clone(), e)),
            };
            let mut step = machine.on_line(&line);
            loop {
                match step {
                    Step::Wait => break,
                    Step::Send(bytes) => {
                        write_all(&mut stream, &bytes)
                            .await
                            .map_err(|e| ProxyError::Backend(at.clone(), e))?;
                        break;
                    }
                    Step::StartTls => {
                        if lines.buffered() > 0 {
                            // Bytes before the handshake would be read as TLS (CVE-2011-0411).
                            return Err(ProxyError::Backend(
                                at.clone(),
                                "data after the STARTTLS reply".into(),
                            ));
                        }
                        stream = backend
                            .proxy_starttls(stream, target)
                            .await
                            .map_err(|e| ProxyError::Backend(at.clone(), format!("TLS: {e}")))?;
                        step = machine.tls_started();
                    }
                    Step::Done(result) => {
                        return Ok(Logged {
                            stream,
                            rest: lines.take_rest(),
                            result,
                        })
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(ProxyError::Timeout(at.clone(), timeout.as_secs())))
}

async fn next_line(stream: &mut BoxStream, lines: &mut ReplyLines) -> Result<Vec<u8>, String> {
    loop {
        match lines.next_line() {
            Ok(Some(l)) => return Ok(l),
            Ok(None) => {}
            Err(LineTooLong) => return Err("reply line too long".into()),
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf).await {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => lines.push(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn write_all(stream: &mut BoxStream, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

/// Splices the logged-in client and backend until either side closes or `stop` is
/// cancelled (`node kick`, shutdown). `to_client` goes to the client first (the backend's
/// login reply and anything after it), `to_backend` to the backend first (commands the
/// client pipelined after its login). Returns (bytes from the client, bytes to the client).
pub async fn splice(
    mut client: BoxStream,
    mut server: BoxStream,
    to_client: &[u8],
    to_backend: &[u8],
    stop: CancellationToken,
) -> (u64, u64) {
    if write_all(&mut client, to_client).await.is_err() {
        return (0, 0);
    }
    if !to_backend.is_empty() && write_all(&mut server, to_backend).await.is_err() {
        return (0, 0);
    }
    let copied = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut server) => r.ok(),
        _ = stop.cancelled() => None,
    };
    // Both halves close: the client sees the end once the backend's last bytes are out.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
    })
    .await;
    let (a, b) = copied.unwrap_or((0, 0));
    (a + to_backend.len() as u64, b + to_client.len() as u64)
}

/// Forwards one message over LMTP to one backend for `rcpts`; one final reply per
/// recipient, in order. A backend that cannot be reached, breaks off or times out gives
/// `451 4.4.0` to each recipient it did not answer.
#[allow(clippy::too_many_arguments)]
pub async fn lmtp_forward(
    backend: &dyn Backend,
    target: &ProxyTarget,
    port: u16,
    helo: &str,
    sender: &str,
    rcpts: Vec<String>,
    body: &[u8],
) -> Vec<String> {
    let at = target.display(port);
    let mut machine = LmtpForward::new(helo, sender, rcpts.clone(), body);
    let timeout = target.timeout;
    let run = async {
        let mut stream = match backend.proxy_connect(target, port).await {
            Ok(s) => s,
            Err(e) => return Err(format!("connect({at}) failed: {e}")),
        };
        let mut lines = ReplyLines::new(MAX_LINE);
        loop {
            let line = match next_line(&mut stream, &mut lines).await {
                Ok(l) => l,
                Err(e) => return Ok(done_or(machine.abort(), &rcpts, &at, &e)),
            };
            match machine.on_line(&line) {
                LmtpStep::Wait => {}
                LmtpStep::Send(b) => {
                    if let Err(e) = write_all(&mut stream, &b).await {
                        return Ok(done_or(machine.abort(), &rcpts, &at, &e));
                    }
                }
                LmtpStep::Done(replies) => {
                    // The replies are in; a failed QUIT changes nothing.
                    let _ = write_all(&mut stream, b"QUIT\r\n").await;
                    return Ok(replies);
                }
            }
        }
    };
    let outcome = match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "lmtp {at}: timed out after {} secs",
            timeout.as_secs()
        )),
    };
    match outcome {
        Ok(replies) => replies,
        Err(e) => {
            tracing::error!("lmtp proxy: {e}");
            super::count_failure("lmtp", "connect");
            rcpts.iter().map(|a| unavailable_reply(a)).collect()
        }
    }
}

fn done_or(step: LmtpStep, rcpts: &[String], at: &str, why: &str) -> Vec<String> {
    tracing::error!("lmtp proxy: backend {at}: {why}");
    super::count_failure("lmtp", "broken");
    match step {
        LmtpStep::Done(r) => r,
        _ => rcpts.iter().map(|a| unavailable_reply(a)).collect(),
    }
}
