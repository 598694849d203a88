//! One ManageSieve session: greeting and capabilities, the command loop with its timeouts,
//! STARTTLS, AUTHENTICATE and UNAUTHENTICATE; a login the passdb routes elsewhere is proxied
//! ([`super::proxy`]).

use super::parse::{self, quote, Command, Parsed};
use super::storage::ScriptDir;
use super::ManageSieveContext;
use crate::backend::{AuthOutcome, ConnInfo, Service, SessionGuard};
use crate::line::{LineConn, CLOSE_TIMEOUT};
use crate::mail::UserMail;
use crate::sasl::{self, Mechanism, Resolved, SaslError, SaslExchange};
use crate::stream::BoxStream;
use std::sync::Arc;
use tracing::Instrument;

pub(super) enum Stop {
    Closed,
    Said,
}

pub(super) struct User {
    /// Scripts are attributes of the user's store (see [`super::attrs`]).
    pub store: UserMail,
    pub _guard: SessionGuard,
}

pub(super) struct Session {
    pub ctx: Arc<ManageSieveContext>,
    pub info: ConnInfo,
    pub io: LineConn,
    pub user: Option<User>,
    pub bad_commands: u32,
    pub auth_failures: u32,
}

pub(super) async fn run(stream: BoxStream, info: ConnInfo, ctx: Arc<ManageSieveContext>) {
    let span =
        tracing::info_span!("managesieve", session = %info.session_id, remote = %info.remote.ip());
    async move {
        let mut s = Session {
            ctx,
            info,
            io: LineConn::new(stream),
            user: None,
            bad_commands: 0,
            auth_failures: 0,
        };
        s.capability();
        s.io.send_line("OK \"ManageSieve ready.\"");
        if let Stop::Said = s.command_loop().await {
            s.io.shutdown().await;
        }
    }
    .instrument(span)
    .await
}

impl Session {
    fn capability(&mut self) {
        let mut out = String::from("\"IMPLEMENTATION\" \"mailstore\"\r\n");
        let plaintext = self.ctx.backend.allow_plaintext(&self.info);
        let mechs: Vec<&str> = if self.user.is_none() {
            self.ctx
                .config
                .mechanisms()
                .iter()
                .filter(|m| m.offered(plaintext, &self.info))
                .map(Mechanism::as_str)
                .collect()
        } else {
            Vec::new()
        };
        out.push_str(&format!("\"SASL\" \"{}\"\r\n", mechs.join(" ")));
        let caps = sieve::Compiler::new().capabilities().join(" ");
        out.push_str(&format!("\"SIEVE\" \"{caps}\"\r\n"));
        if self.ctx.tls.is_some() && !self.info.tls {
            out.push_str("\"STARTTLS\"\r\n");
        }
        // Only a trusted proxy may say where its client comes from (Pigeonhole's rule).
        if self.user.is_none() && self.ctx.backend.trusted_network(self.info.remote.ip()) {
            out.push_str("\"XCLIENT\"\r\n");
        }
        out.push_str(&format!(
            "\"MAXREDIRECTS\" \"{}\"\r\n",
            self.ctx.config.max_redirects
        ));
        out.push_str("\"NOTIFY\" \"\"\r\n\"VERSION\" \"1.0\"");
        self.io.send_line(&out);
    }

    /// The next command, parsed from the input buffer; bad ones are answered here.
    async fn next_command(&mut self) -> Result<Command, Stop> {
        let max_literal = self.ctx.config.max_script_size as usize;
        let max_line = self.ctx.config.max_line_length;
        loop {
            match parse::parse(self.io.input(), max_literal, max_line) {
                Parsed::Done(cmd, used) => {
                    let _ = self.io.input().split_to(used);
                    return Ok(cmd);
                }
                Parsed::Bad(e, used) => {
                    let input = self.io.input();
                    let _ = input.split_to(used.min(input.len()));
                    self.io.send_line(&format!("NO {}", quote(&e.to_string())));
                    self.bad_commands += 1;
                    if self.bad_commands >= self.ctx.config.max_bad_commands {
                        self.io.send_line("BYE \"Too many invalid commands.\"");
                        return Err(Stop::Said);
                    }
                }
                Parsed::Incomplete => self.fill().await?,
            }
        }
    }

    /// Flushes replies and reads more input, under the timeout and the shutdown token.
    pub(super) async fn fill(&mut self) -> Result<(), Stop> {
        let timeout = if self.user.is_some() {
            self.ctx.config.idle_timeout
        } else {
            self.ctx.config.login_timeout
        };
        if self.io.flush().await.is_err() {
            return Err(Stop::Closed);
        }
        let shutdown = self.ctx.shutdown.clone();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                self.io.send_line("BYE \"Server shutting down.\"");
                Err(Stop::Said)
            }
            r = tokio::time::timeout(timeout, self.io.fill()) => match r {
                Err(_) => {
                    self.io.send_line("BYE \"Disconnected for inactivity.\"");
                    Err(Stop::Said)
                }
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(Stop::Closed),
            }
        }
    }

    async fn command_loop(&mut self) -> Stop {
        loop {
            let cmd = match self.next_command().await {
                Ok(c) => c,
                Err(stop) => return stop,
            };
            if let Err(stop) = self.handle(cmd).await {
                return stop;
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Result<(), Stop> {
        match cmd {
            Command::Capability => {
                self.capability();
                self.io.send_line("OK \"Capability completed.\"");
            }
            Command::Noop(tag) => match tag {
                Some(t) => self
                    .io
                    .send_line(&format!("OK (TAG {}) \"Done\"", quote(&t))),
                None => self.io.send_line("OK \"NOOP completed.\""),
            },
            Command::Logout => {
                self.io.send_line("OK \"Logout completed.\"");
                return Err(Stop::Said);
            }
            Command::StartTls => return self.starttls().await,
            Command::Authenticate { mechanism, initial } => {
                return self.authenticate(&mechanism, initial).await;
            }
            Command::Xclient(args) => self.xclient(&args),
            Command::Unauthenticate => {
                if self.user.take().is_some() {
                    self.io.send_line("OK \"Unauthenticate completed.\"");
                } else {
                    self.io.send_line("NO \"Not authenticated.\"");
                }
            }
            other => match self.user.as_ref().map(|u| u.store.clone()) {
                Some(store) => self.script_command(store, other).await,
                None => self.io.send_line("NO \"Authenticate first.\""),
            },
        }
        Ok(())
    }

    async fn starttls(&mut self) -> Result<(), Stop> {
        let Some(tls) = self.ctx.tls.clone() else {
            self.io.send_line("NO \"TLS support isn't enabled.\"");
            return Ok(());
        };
        if self.info.tls || self.user.is_some() {
            self.io
                .send_line("NO \"TLS is already active or not allowed now.\"");
            return Ok(());
        }
        self.io.send_line("OK \"Begin TLS negotiation now.\"");
        let (placeholder, _) = tokio::io::duplex(1);
        let old = std::mem::replace(&mut self.io, LineConn::new(Box::new(placeholder)));
        let stream = match tokio::time::timeout(CLOSE_TIMEOUT, old.into_stream()).await {
            Ok(Ok(s)) => s,
            _ => return Err(Stop::Closed),
        };
        match tls.upgrade_identified(stream).await {
            Ok((stream, client_user)) => {
                self.io = LineConn::new(stream);
                self.info.tls = true;
                self.info.tls_client_user = client_user;
                // RFC 5804 2.2: the capabilities again, now over TLS.
                self.capability();
                self.io.send_line("OK \"TLS negotiation successful.\"");
                Ok(())
            }
            Err(e) => {
                tracing::info!("managesieve-login: TLS handshaking failed: {e}");
                Err(Stop::Closed)
            }
        }
    }

    /// The client's next SASL response (a string, or `*` to cancel).
    async fn sasl_response(&mut self) -> Result<Result<String, SaslError>, Stop> {
        loop {
            match parse::parse_response(self.io.input(), 8192) {
                Parsed::Done(r, used) => {
                    let _ = self.io.input().split_to(used);
                    return Ok(r.ok_or(SaslError::Cancelled));
                }
                Parsed::Bad(_, used) => {
                    let input = self.io.input();
                    let _ = input.split_to(used.min(input.len()));
                    return Ok(Err(SaslError::Malformed {
                        mechanism: "response",
                        reason: "not a string",
                    }));
                }
                Parsed::Incomplete => self.fill().await?,
            }
        }
    }

    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Result<(), Stop> {
        if self.user.is_some() {
            self.io.send_line("NO \"Already authenticated.\"");
            return Ok(());
        }
        let mech = Mechanism::parse(mechanism)
            .ok()
            .filter(|m| self.ctx.config.mechanisms().contains(m));
        let Some(mech) = mech else {
            self.io
                .send_line("NO \"Unsupported authentication mechanism.\"");
            return Ok(());
        };
        if mech.carries_plaintext() && !self.ctx.backend.allow_plaintext(&self.info) {
            self.io.send_line(
                "NO \"Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\"",
            );
            return Ok(());
        }
        let backend = self.ctx.backend.clone();
        let info = self.info.clone();
        let mut step = SaslExchange::start(mech, initial.as_deref());
        let outcome = loop {
            let resolved = match step {
                Ok((mut ex, st)) => {
                    let r =
                        sasl::advance(&*backend, Service::ManageSieve, &info, mech, &mut ex, st)
                            .await;
                    r.map(|r| (ex, r))
                }
                Err(e) => Err(e),
            };
            match resolved {
                Ok((mut ex, Resolved::Challenge(c))) => {
                    self.io.send_line(&quote(&c));
                    step = match self.sasl_response().await? {
                        Ok(line) => ex.step(&line).map(|s| (ex, s)),
                        Err(e) => Err(e),
                    };
                }
                Ok((_, Resolved::Outcome(outcome))) => break outcome,
                Err(SaslError::Cancelled) => {
                    self.io
                        .send_line("NO \"Authentication aborted by client.\"");
                    return Ok(());
                }
                Err(e) => {
                    self.io.send_line(&format!("NO {}", quote(&e.to_string())));
                    return self.auth_failed();
                }
            }
        };
        match outcome {
            AuthOutcome::Ok { user } => self.logged_in(user, mech).await,
            AuthOutcome::Failed => {
                self.io.send_line("NO \"Authentication failed.\"");
                self.auth_failed()
            }
            AuthOutcome::RateLimited => {
                self.io
                    .send_line("BYE \"Too many authentication failures, try again later.\"");
                Err(Stop::Said)
            }
            AuthOutcome::Proxy { user, target } => self.proxy(user, *target, mech).await,
            AuthOutcome::TempFail(why) => {
                tracing::warn!("managesieve-login: temporary authentication failure: {why}");
                self.io
                    .send_line("NO (TRYLATER) \"Temporary authentication failure.\"");
                Ok(())
            }
        }
    }

    /// XCLIENT (Dovecot's, as its proxy sends it): `ADDR=` and `PORT=` become the client's
    /// address, `SESSION=` its session id. Only from `login_trusted_networks`, before login.
    fn xclient(&mut self, args: &str) {
        if !self.ctx.backend.trusted_network(self.info.remote.ip()) {
            self.io.send_line("NO \"You are not from trusted IP\"");
            return;
        }
        if self.user.is_some() {
            self.io.send_line("NO \"Already authenticated.\"");
            return;
        }
        let proxy = self.info.remote;
        let mut remote = self.info.remote;
        for arg in args.split_ascii_whitespace() {
            let Some((k, v)) = arg.split_once('=') else {
                continue;
            };
            match k.to_ascii_uppercase().as_str() {
                "ADDR" => {
                    if let Ok(ip) = v.parse() {
                        remote.set_ip(ip);
                    }
                }
                "PORT" => {
                    if let Ok(port) = v.parse() {
                        remote.set_port(port);
                    }
                }
                "SESSION" if !v.is_empty() && v.len() <= 64 => {
                    self.info.session_id = v.to_string();
                }
                _ => {}
            }
        }
        self.info.remote = remote;
        tracing::info!(
            "managesieve-login: proxied connection from {proxy}: client rip={}, session=<{}>",
            remote.ip(),
            self.info.session_id
        );
        self.io.send_line("OK");
    }

    pub(super) fn auth_failed(&mut self) -> Result<(), Stop> {
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.max_auth_failures {
            self.io
                .send_line("BYE \"Too many authentication failures.\"");
            return Err(Stop::Said);
        }
        Ok(())
    }

    async fn logged_in(&mut self, user: String, mech: Mechanism) -> Result<(), Stop> {
        let backend = self.ctx.backend.clone();
        let guard =
            match backend.register_session(Service::ManageSieve, &user, self.info.remote.ip()) {
                Ok(g) => g,
                Err(why) => {
                    self.io.send_line(&format!("NO {}", quote(&why)));
                    return Ok(());
                }
            };
        let store = match crate::mail::UserMail::open(&backend, &user).await {
            Ok(s) => s,
            Err(why) => {
                tracing::error!("managesieve({user}): cannot open the user's store: {why}");
                self.io
                    .send_line("NO (TRYLATER) \"Cannot open the user's scripts.\"");
                return Ok(());
            }
        };
        let home = store.reader().dir().to_path_buf();
        let c = &self.ctx.config;
        let scripts = ScriptDir {
            dir: crate::lmtp::expand_path(&c.script_dir, &user, &home),
            active_link: crate::lmtp::expand_path(&c.active_path, &user, &home),
        };
        tracing::info!(
            "managesieve-login: Login: user=<{user}>, method={}, rip={}, lip={}, {}session=<{}>",
            mech.as_str(),
            self.info.remote.ip(),
            self.info.local.ip(),
            if self.info.tls { "TLS, " } else { "" },
            self.info.session_id
        );
        // A user's script files (Pigeonhole's layout) become attributes at the first login;
        // refused writes (not the active node) leave that to a later login.
        let import = store
            .write(move |st| super::attrs::import(st, &scripts))
            .await;
        match import {
            Ok(Ok(left)) if !left.is_empty() => tracing::warn!(
                "managesieve({user}): scripts too large to import (over {} bytes): {left:?}",
                super::attrs::MAX_SCRIPT
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("managesieve({user}): importing script files: {e}"),
            Err(e) => tracing::info!("managesieve({user}): script files not imported: {e}"),
        }
        self.user = Some(User {
            store,
            _guard: guard,
        });
        self.io.send_line("OK \"Logged in.\"");
        Ok(())
    }
}
