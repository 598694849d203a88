//! One LMTP session: commands taken in order from the input buffer (PIPELINING), the
//! transaction state, DATA and BDAT reading, and one reply per recipient after the message.

use super::address::split_detail;
use super::command::{self, BodyType, Command};
use super::data::{normalize_crlf, DataDecoder, DataOutcome};
use super::deliver::{deliver, Accepted, Outcome, Received};
use super::LmtpContext;
use crate::backend::ConnInfo;
use crate::line::{LineConn, ReadError};
use crate::stream::BoxStream;
use bytes::Buf;
use std::sync::Arc;
use tracing::Instrument;

/// Why the session stops.
enum Stop {
    /// Peer closed or the socket failed: nothing more to say.
    Closed,
    /// We said our last words (421) and close.
    Said,
    /// We answered an over-long line and close, dropping what the client still sends.
    TooLong,
}

struct Transaction {
    sender: String,
    rcpts: Vec<Accepted>,
    /// Body assembled from BDAT chunks; `Some` once the first BDAT came.
    chunks: Option<Chunks>,
}

#[derive(Default)]
struct Chunks {
    body: Vec<u8>,
    size: u64,
}

struct Session {
    ctx: Arc<LmtpContext>,
    info: ConnInfo,
    io: LineConn,
    greeted: bool,
    tx: Option<Transaction>,
    bad_commands: u32,
}

pub(super) async fn run(stream: BoxStream, info: ConnInfo, ctx: Arc<LmtpContext>) {
    let span = tracing::info_span!(
        "lmtp",
        session = %info.session_id,
        remote = %info.remote.ip()
    );
    async move {
        tracing::debug!("Connect from {}", info.remote);
        let mut s = Session {
            io: LineConn::new(stream),
            ctx,
            info,
            greeted: false,
            tx: None,
            bad_commands: 0,
        };
        let greeting = format!("220 {} LMTP ready.", s.ctx.config.hostname);
        s.io.send_line(&greeting);
        let how = s.command_loop().await;
        match how {
            Stop::Said => s.io.shutdown().await,
            Stop::TooLong => s.io.shutdown_lingering().await,
            Stop::Closed => {}
        }
        tracing::debug!("Disconnected");
    }
    .instrument(span)
    .await
}

impl Session {
    fn host(&self) -> &str {
        &self.ctx.config.hostname
    }

    async fn command_loop(&mut self) -> Stop {
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(stop) => return stop,
            };
            let cmd = match command::parse(&line) {
                Ok(cmd) => cmd,
                Err(e) => {
                    self.io.send_line(&e.reply());
                    if let Some(stop) = self.bad_command() {
                        return stop;
                    }
                    continue;
                }
            };
            if let Some(stop) = self.handle(cmd).await {
                return stop;
            }
        }
    }

    /// Counts a bad command; too many end the session (Dovecot's smtp-server does the same).
    fn bad_command(&mut self) -> Option<Stop> {
        self.bad_commands += 1;
        if self.bad_commands >= self.ctx.config.max_bad_commands {
            self.io.send_line("421 4.7.0 Too many invalid commands");
            return Some(Stop::Said);
        }
        None
    }

    /// Answers what stopped a wait that produced no input.
    fn interrupted(&mut self, why: Interrupt) -> Stop {
        let bye = match why {
            Interrupt::Shutdown => format!("421 4.3.2 {} Server shutting down", self.host()),
            Interrupt::Timeout => format!("421 4.4.2 {} Disconnected for inactivity", self.host()),
        };
        self.io.send_line(&bye);
        Stop::Said
    }

    /// The next command line; an over-long line is answered here and ends the session (what
    /// follows it cannot be told apart from its rest).
    async fn next_line(&mut self) -> Result<Vec<u8>, Stop> {
        let max = self.ctx.config.max_line_length;
        match guarded(&self.ctx, self.io.read_line(max)).await {
            Err(why) => Err(self.interrupted(why)),
            Ok(Ok(line)) => Ok(line),
            Ok(Err(ReadError::TooLong)) => {
                tracing::info!("Disconnected: command line longer than {max} bytes");
                self.io.send_line("500 5.5.2 Line too long");
                Err(Stop::TooLong)
            }
            Ok(Err(ReadError::Closed)) => Err(Stop::Closed),
            Ok(Err(ReadError::Io(e))) => {
                tracing::debug!("read error: {e}");
                Err(Stop::Closed)
            }
        }
    }

    /// More input for DATA/BDAT, after flushing what we owe the client.
    async fn more_input(&mut self) -> Result<(), Stop> {
        let io = &mut self.io;
        let flush_then_fill = async move {
            io.flush().await?;
            io.fill().await
        };
        match guarded(&self.ctx, flush_then_fill).await {
            Err(why) => Err(self.interrupted(why)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!("message data: {e}");
                Err(Stop::Closed)
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Option<Stop> {
        match cmd {
            Command::Lhlo(_) => {
                self.greeted = true;
                self.tx = None;
                let reply = format!(
                    "250-{}\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n\
                     250-PIPELINING\r\n250 SIZE {}",
                    self.host(),
                    self.ctx.config.max_message_size
                );
                self.io.send_line(&reply);
            }
            Command::Helo => self.io.send_line("500 5.5.1 Use LHLO in LMTP"),
            Command::MailFrom { path, size, body } => self.mail(path, size, body),
            Command::RcptTo(addr) => self.rcpt(addr).await,
            Command::Data => return self.data().await.err(),
            Command::Bdat { size, last } => return self.bdat(size, last).await.err(),
            Command::Rset => {
                self.tx = None;
                self.io.send_line("250 2.0.0 OK");
            }
            Command::Noop => self.io.send_line("250 2.0.0 OK"),
            Command::Vrfy => self.io.send_line("252 2.3.3 Try RCPT instead"),
            Command::Quit => {
                let bye = format!(
                    "221 2.0.0 {} Service closing transmission channel",
                    self.host()
                );
                self.io.send_line(&bye);
                return Some(Stop::Said);
            }
        }
        None
    }

    fn mail(&mut self, path: String, size: Option<u64>, body: Option<BodyType>) {
        if !self.greeted {
            self.io.send_line("503 5.5.1 Send LHLO first");
        } else if self.tx.is_some() {
            self.io.send_line("503 5.5.1 MAIL already given");
        } else if body == Some(BodyType::BinaryMime) {
            // Not advertised: a binary body would be altered by the CRLF normalisation.
            self.io
                .send_line("555 5.5.4 Unsupported parameter BODY=BINARYMIME");
        } else if size.is_some_and(|s| s > self.ctx.config.max_message_size) {
            self.io
                .send_line("552 5.3.4 Message size exceeds fixed maximum message size");
        } else {
            // 8BITMIME and BINARYMIME bodies are stored as received: nothing to convert.
            self.tx = Some(Transaction {
                sender: path,
                rcpts: Vec::new(),
                chunks: None,
            });
            self.io.send_line("250 2.1.0 OK");
        }
    }

    async fn rcpt(&mut self, addr: String) {
        let max = self.ctx.config.max_recipients;
        let Some(tx) = self.tx.as_ref() else {
            self.io.send_line("503 5.5.1 MAIL needed first");
            return;
        };
        if tx.chunks.is_some() {
            self.io.send_line("503 5.5.1 RCPT not allowed during BDAT");
            return;
        }
        if tx.rcpts.len() >= max {
            self.io.send_line("452 4.5.3 Too many recipients");
            return;
        }
        let resolved = match proxy_route(&self.ctx, &addr).await {
            Ok(Some(accepted)) => Ok(Some(accepted)),
            Ok(None) => resolve(&self.ctx, &addr).await,
            Err(e) => Err(e),
        };
        let reply = match resolved {
            Ok(Some(accepted)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.rcpts.push(accepted);
                }
                "250 2.1.5 OK".to_string()
            }
            Ok(None) => {
                Outcome::UnknownUser.count();
                let reply = format!("550 5.1.1 <{addr}> User doesn't exist: {addr}");
                // The operator's trace of a bounce (a typo in an alias, a removed user).
                tracing::info!(rcpt = %addr, "lmtp: RCPT TO refused: {reply}");
                reply
            }
            Err(e) => {
                tracing::error!("user lookup for {addr} failed: {e}");
                Outcome::TempFail.count();
                format!("451 4.3.0 <{addr}> Temporary internal error")
            }
        };
        self.io.send_line(&reply);
    }

    /// Checks a transaction may take message data now; the reply when it may not.
    fn data_refusal(&self, bdat: bool) -> Option<&'static str> {
        match &self.tx {
            None => Some("503 5.5.1 MAIL needed first"),
            Some(tx) if tx.rcpts.is_empty() => Some("554 5.5.1 No valid recipients"),
            Some(tx) if !bdat && tx.chunks.is_some() => {
                Some("503 5.5.1 DATA not allowed after BDAT")
            }
            Some(_) => None,
        }
    }

    async fn data(&mut self) -> Result<(), Stop> {
        if let Some(refusal) = self.data_refusal(false) {
            self.io.send_line(refusal);
            return Ok(());
        }
        self.io.send_line("354 OK");
        let mut decoder = DataDecoder::new(self.ctx.config.max_message_size);
        let outcome = loop {
            let (used, done) = decoder.feed(self.io.input());
            self.io.input().advance(used);
            if let Some(outcome) = done {
                break outcome;
            }
            // A connection closing here leaves a truncated DATA: dropped, never stored.
            self.more_input().await?;
        };
        self.finish_message(outcome).await;
        Ok(())
    }

    async fn bdat(&mut self, size: u64, last: bool) -> Result<(), Stop> {
        let refusal = self.data_refusal(true);
        let max = self.ctx.config.max_message_size;
        let keep = refusal.is_none();
        let mut chunks = self
            .tx
            .as_mut()
            .filter(|_| keep)
            .map(|tx| tx.chunks.take().unwrap_or_default());
        // The chunk is always read off the wire, even when refused, so it is not taken as commands.
        let mut remaining = size;
        while remaining > 0 {
            if self.io.input().is_empty() {
                if let Err(stop) = self.more_input().await {
                    // Truncated BDAT: nothing of this transaction is stored.
                    self.tx = None;
                    return Err(stop);
                }
            }
            let input = self.io.input();
            let n = remaining.min(input.len() as u64) as usize;
            if let Some(c) = chunks.as_mut() {
                c.size += n as u64;
                if c.size <= max {
                    c.body.extend_from_slice(&input[..n]);
                } else {
                    c.body = Vec::new();
                }
            }
            input.advance(n);
            remaining -= n as u64;
        }
        let Some(chunks) = chunks else {
            self.io
                .send_line(refusal.unwrap_or("503 5.5.1 MAIL needed first"));
            return Ok(());
        };
        if !last {
            let reply = format!("250 2.0.0 OK {size} octets received");
            if let Some(tx) = self.tx.as_mut() {
                tx.chunks = Some(chunks);
            }
            self.io.send_line(&reply);
            return Ok(());
        }
        let outcome = if chunks.size > max {
            DataOutcome::TooLarge { size: chunks.size }
        } else {
            DataOutcome::Complete(normalize_crlf(&chunks.body))
        };
        self.finish_message(outcome).await;
        Ok(())
    }

    /// Delivers a complete message to every accepted recipient; one reply each, in RCPT order.
    async fn finish_message(&mut self, outcome: DataOutcome) {
        let Some(tx) = self.tx.take() else { return };
        let body = match outcome {
            DataOutcome::Complete(body) => body,
            DataOutcome::TooLarge { size } => {
                tracing::info!(
                    "from=<{}>: message of {size} bytes refused, limit {}",
                    tx.sender,
                    self.ctx.config.max_message_size
                );
                for rcpt in &tx.rcpts {
                    self.io.send_line(&format!(
                        "552 5.3.4 <{}> Message size exceeds fixed maximum message size",
                        rcpt.address
                    ));
                }
                return;
            }
        };
        let received = Received::new(tx.sender, body);
        // Recipients are delivered concurrently (different users never share an fsync; copies
        // for one user share its group commit); the replies keep RCPT order.
        let local = futures::future::join_all(
            tx.rcpts
                .iter()
                .filter(|r| r.proxy.is_none())
                .map(|rcpt| deliver(&self.ctx, &self.info.session_id, &received, rcpt)),
        );
        let (local, mut proxied) = futures::future::join(
            local,
            super::proxy::forward(&self.ctx, &received, &tx.rcpts),
        )
        .await;
        let mut local = local.into_iter();
        for (i, rcpt) in tx.rcpts.iter().enumerate() {
            let reply = if rcpt.proxy.is_some() {
                proxied.remove(&i)
            } else {
                local.next()
            };
            let reply = reply
                .unwrap_or_else(|| crate::proxy::lmtp_client::unavailable_reply(&rcpt.address));
            self.io.send_line(&reply);
        }
    }
}

enum Interrupt {
    Shutdown,
    Timeout,
}

/// Runs a read under the session timeout and the shutdown token.
async fn guarded<F: std::future::Future>(
    ctx: &LmtpContext,
    read: F,
) -> Result<F::Output, Interrupt> {
    tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => Err(Interrupt::Shutdown),
        r = tokio::time::timeout(ctx.config.timeout, read) => r.map_err(|_| Interrupt::Timeout),
    }
}

/// `lmtp_proxy`: the recipient's passdb entry routes them to another backend.
async fn proxy_route(ctx: &LmtpContext, addr: &str) -> Result<Option<Accepted>, String> {
    let split = split_detail(addr, &ctx.config.recipient_delimiter);
    let Some(target) = ctx.backend.lmtp_proxy_target(&split.lookup).await? else {
        return Ok(None);
    };
    Ok(Some(Accepted {
        address: addr.to_string(),
        user: target.destuser.clone(),
        detail: split.detail,
        proxy: Some(Box::new(target)),
    }))
}

/// Looks the recipient up without its detail; a userdb whose names contain the delimiter
/// still finds `a+b` by its full name.
async fn resolve(ctx: &LmtpContext, addr: &str) -> Result<Option<Accepted>, String> {
    let split = split_detail(addr, &ctx.config.recipient_delimiter);
    let backend = &ctx.backend;
    if let Some(info) = backend.lookup_user(&split.lookup).await? {
        return Ok(Some(Accepted {
            address: addr.to_string(),
            user: info.user,
            detail: split.detail,
            proxy: None,
        }));
    }
    if split.lookup != addr {
        if let Some(info) = backend.lookup_user(addr).await? {
            return Ok(Some(Accepted {
                address: addr.to_string(),
                user: info.user,
                detail: None,
                proxy: None,
            }));
        }
    }
    Ok(None)
}
