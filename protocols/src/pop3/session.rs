//! One POP3 session: the AUTHORIZATION and TRANSACTION states over a buffered connection, the
//! timeouts, shutdown, STLS and the UPDATE state at QUIT.

use super::command::{self, Command};
use super::lock::Pop3Lock;
use super::maildrop::Maildrop;
use super::Pop3Context;
use crate::backend::{ConnInfo, SessionGuard};
use crate::line::{LineConn, ReadError, CLOSE_TIMEOUT};
use crate::mail::UserMail;
use crate::stream::BoxStream;
use std::sync::Arc;
use tracing::Instrument;

/// Why the session stops.
pub(super) enum Stop {
    /// Peer closed or the socket failed.
    Closed,
    /// We said our last words and close.
    Said,
    /// We answered an over-long line and close, dropping what the client still sends.
    TooLong,
}

/// A logged-in user's state.
pub(super) struct Transaction {
    pub user: String,
    pub store: UserMail,
    pub maildrop: Maildrop,
    /// Counters for the logout line (Dovecot's `pop3_logout_format`).
    pub top: (u32, u64),
    pub retr: (u32, u64),
    /// Messages expunged at QUIT.
    pub expunged: usize,
    /// Held until QUIT is answered (released before the reply is written, so a client that
    /// reconnects at once finds the mailbox free), or until the session ends.
    pub lock: Option<Pop3Lock>,
    pub session: Option<SessionGuard>,
}

pub(super) struct Session {
    pub ctx: Arc<Pop3Context>,
    pub info: ConnInfo,
    pub io: LineConn,
    /// The name given with USER, awaiting PASS.
    pub user: Option<String>,
    /// The greeting's APOP timestamp, when APOP is enabled.
    pub apop_timestamp: Option<String>,
    pub auth_failures: u32,
    pub bad_commands: u32,
    pub tx: Option<Transaction>,
}

pub(super) async fn run(stream: BoxStream, info: ConnInfo, ctx: Arc<Pop3Context>) {
    let span = tracing::info_span!(
        "pop3",
        session = %info.session_id,
        remote = %info.remote.ip(),
        user = tracing::field::Empty,
    );
    async move {
        let mut s = Session {
            io: LineConn::new(stream),
            ctx,
            info,
            user: None,
            apop_timestamp: None,
            auth_failures: 0,
            bad_commands: 0,
            tx: None,
        };
        let mut greeting = format!("+OK {}", s.ctx.config.greeting);
        if s.ctx.config.apop() {
            let ts = crate::sasl::cram::timestamp(crate::sasl::hostname());
            greeting.push(' ');
            greeting.push_str(&ts);
            s.apop_timestamp = Some(ts);
        }
        s.io.send_line(&greeting);
        let stop = s.command_loop().await;
        match stop {
            Stop::Said => s.io.shutdown().await,
            Stop::TooLong => s.io.shutdown_lingering().await,
            Stop::Closed => {}
        }
        s.log_disconnect();
    }
    .instrument(span)
    .await
}

enum Interrupt {
    Shutdown,
    Timeout,
}

impl Session {
    async fn command_loop(&mut self) -> Stop {
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(stop) => return stop,
            };
            let result = match command::parse(&line) {
                Ok(cmd) => self.handle(cmd).await,
                Err(e) => {
                    self.io.send_line(&format!("-ERR {e}"));
                    self.bad_command()
                }
            };
            if let Err(stop) = result {
                return stop;
            }
        }
    }

    /// Counts a bad command; too many end the session.
    pub(super) fn bad_command(&mut self) -> Result<(), Stop> {
        self.bad_commands += 1;
        if self.bad_commands >= self.ctx.config.max_bad_commands {
            self.io.send_line("-ERR Too many bad commands.");
            return Err(Stop::Said);
        }
        Ok(())
    }

    /// The next command line; an over-long line is answered and ends the session (as in
    /// Dovecot: what follows it cannot be told apart from its rest).
    pub(super) async fn next_line(&mut self) -> Result<Vec<u8>, Stop> {
        match self.read_input().await? {
            Some(line) => Ok(line),
            None => {
                self.io.send_line("-ERR Input line too long.");
                Err(Stop::TooLong)
            }
        }
    }

    /// The next line under the state's timeout and the shutdown token; None when it is longer
    /// than the limit (the caller answers and ends the session with [`Stop::TooLong`]).
    pub(super) async fn read_input(&mut self) -> Result<Option<Vec<u8>>, Stop> {
        let max = self.ctx.config.max_line_length;
        let timeout = if self.tx.is_some() {
            self.ctx.config.idle_timeout
        } else {
            self.ctx.config.login_timeout
        };
        let shutdown = self.ctx.shutdown.clone();
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => Err(Interrupt::Shutdown),
            r = tokio::time::timeout(timeout, self.io.read_line(max)) => {
                r.map_err(|_| Interrupt::Timeout)
            }
        };
        match read {
            Err(Interrupt::Shutdown) => {
                self.io.send_line("-ERR [SYS/TEMP] Server shutting down.");
                Err(Stop::Said)
            }
            Err(Interrupt::Timeout) => {
                self.io.send_line("-ERR Disconnected for inactivity.");
                Err(Stop::Said)
            }
            Ok(Ok(line)) => Ok(Some(line)),
            Ok(Err(ReadError::TooLong)) => {
                let max = self.ctx.config.max_line_length;
                tracing::info!("Disconnected: input line longer than {max} bytes");
                Ok(None)
            }
            Ok(Err(ReadError::Closed)) => Err(Stop::Closed),
            Ok(Err(ReadError::Io(e))) => {
                tracing::debug!("read error: {e}");
                Err(Stop::Closed)
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Result<(), Stop> {
        if self.tx.is_some() {
            return self.transaction_command(cmd).await;
        }
        match cmd {
            Command::Capa => self.capa(),
            Command::User(user) => self.cmd_user(user),
            Command::Pass(password) => return self.cmd_pass(password).await,
            Command::Auth(None) => {
                let mut list = String::from("+OK\r\n");
                for m in self.ctx.config.mechanisms() {
                    list.push_str(m.as_str());
                    list.push_str("\r\n");
                }
                list.push('.');
                self.io.send_line(&list);
            }
            Command::Auth(Some((mech, ir))) => return self.cmd_auth(mech, ir).await,
            Command::Apop(user, digest) => return self.cmd_apop(user, digest).await,
            Command::Stls => return self.stls().await,
            Command::Xclient(args) => self.xclient(&args),
            Command::Noop => self.io.send_line("+OK"),
            Command::Quit => {
                self.io.send_line("+OK Logging out.");
                return Err(Stop::Said);
            }
            _ => {
                self.io.send_line("-ERR Unknown command.");
                return self.bad_command();
            }
        }
        Ok(())
    }

    pub(super) fn capa(&mut self) {
        let mut capa = String::from("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n");
        if self.tx.is_none() {
            capa.push_str("AUTH-RESP-CODE\r\nUSER\r\n");
            let plaintext = self.ctx.backend.allow_plaintext(&self.info);
            let mut mechanisms = self.ctx.config.mechanisms();
            mechanisms.retain(|m| m.offered(plaintext, &self.info));
            // RFC 2449: SASL lists the mechanisms; with none configured the line is left out.
            if !mechanisms.is_empty() {
                capa.push_str("SASL");
                for m in mechanisms {
                    capa.push(' ');
                    capa.push_str(m.as_str());
                }
                capa.push_str("\r\n");
            }
            if self.ctx.tls.is_some() && !self.info.tls {
                capa.push_str("STLS\r\n");
            }
            if self.ctx.backend.trusted_network(self.info.remote.ip()) {
                capa.push_str("XCLIENT\r\n");
            }
        }
        capa.push('.');
        self.io.send_line(&capa);
    }

    async fn stls(&mut self) -> Result<(), Stop> {
        let Some(tls) = self.ctx.tls.clone() else {
            self.io.send_line("-ERR TLS support isn't enabled.");
            return Ok(());
        };
        if self.info.tls {
            self.io.send_line("-ERR TLS is already active.");
            return Ok(());
        }
        self.io.send_line("+OK Begin TLS negotiation now.");
        // Swap the connection out: whatever the client pipelined after STLS in plaintext is
        // discarded with the old buffer (RFC 2595 / STARTTLS injection).
        let (placeholder, _) = tokio::io::duplex(1);
        let old = std::mem::replace(&mut self.io, LineConn::new(Box::new(placeholder)));
        let stream = match tokio::time::timeout(CLOSE_TIMEOUT, old.into_stream()).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => return Err(Stop::Closed),
        };
        match tls.upgrade_identified(stream).await {
            Ok((stream, client_user)) => {
                self.io = LineConn::new(stream);
                self.info.tls = true;
                self.info.tls_client_user = client_user;
                self.user = None;
                Ok(())
            }
            Err(e) => {
                tracing::info!(
                    "pop3-login: Disconnected: TLS handshaking failed: {e} (rip={}, lip={}, session=<{}>)",
                    self.info.remote.ip(),
                    self.info.local.ip(),
                    self.info.session_id
                );
                Err(Stop::Closed)
            }
        }
    }

    fn log_disconnect(&self) {
        match &self.tx {
            Some(tx) => {
                let (msgs, size) = tx.maildrop.total();
                let deleted = tx.expunged;
                tracing::info!(
                    "pop3({})<{}>: Disconnected: top={}/{}, retr={}/{}, del={}/{}, size={}",
                    tx.user,
                    self.info.session_id,
                    tx.top.0,
                    tx.top.1,
                    tx.retr.0,
                    tx.retr.1,
                    deleted,
                    msgs,
                    size
                );
            }
            None if self.auth_failures > 0 => tracing::info!(
                "pop3-login: Disconnected (auth failed, {} attempts): rip={}, lip={}, session=<{}>",
                self.auth_failures,
                self.info.remote.ip(),
                self.info.local.ip(),
                self.info.session_id
            ),
            None => tracing::debug!(
                "pop3-login: Disconnected (no auth attempts): rip={}, session=<{}>",
                self.info.remote.ip(),
                self.info.session_id
            ),
        }
    }
}
