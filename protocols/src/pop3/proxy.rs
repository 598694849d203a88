//! A POP3 login the passdb routes to another server (Dovecot's proxy), and XCLIENT, by
//! which a trusted proxy tells a backend where its client comes from.

use super::session::{Session, Stop};
use crate::line::LineConn;
use crate::proxy::drive::{self, Logged};
use crate::proxy::pop3_login::Pop3Login;
use crate::proxy::{count_failure, count_session, ClientOrigin, LoginResult, ProxyTarget};

impl Session {
    /// Logs in at the backend; on success the backend's `+OK` goes to the client and the
    /// connections are spliced until either side closes.
    pub(super) async fn proxy(
        &mut self,
        user: String,
        target: ProxyTarget,
        mechanism: &'static str,
    ) -> Result<(), Stop> {
        let origin = ClientOrigin {
            remote: self.info.remote,
            local: self.info.local,
            session_id: self.info.session_id.clone(),
        };
        let port = target.port_or(110, 995);
        let at = target.display(port);
        let (rip, lip, session) = (
            self.info.remote.ip(),
            self.info.local.ip(),
            self.info.session_id.clone(),
        );
        let machine = Pop3Login::new(target.clone(), Some(origin));
        let backend = self.ctx.backend.clone();
        let logged = drive::login(&*backend, &target, port, machine).await;
        let Logged {
            stream,
            rest,
            result,
        } = match logged {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(
                    "pop3-login: proxy({user}): Login failed to {at}: {e}: rip={rip}, lip={lip}, session=<{session}>"
                );
                count_failure("pop3", "connect");
                self.io
                    .send_line("-ERR [SYS/TEMP] Account is temporarily unavailable.");
                return Ok(());
            }
        };
        let reply = match result {
            LoginResult::Ok { reply } => reply,
            LoginResult::AuthFailed { reply } => {
                tracing::info!(
                    "pop3-login: proxy({user}): Login failed to {at}: {}: rip={rip}, session=<{session}>",
                    crate::proxy::imap_login::shorten(&reply)
                );
                self.auth_failures += 1;
                self.io.send_line("-ERR [AUTH] Authentication failed.");
                if self.auth_failures >= self.ctx.config.max_auth_failures {
                    return Err(Stop::Said);
                }
                return Ok(());
            }
            LoginResult::TempFail { reason } => {
                tracing::error!(
                    "pop3-login: proxy({user}): Login failed to {at}: {reason}: rip={rip}, lip={lip}, session=<{session}>"
                );
                count_failure("pop3", "login");
                self.io
                    .send_line("-ERR [SYS/TEMP] Account is temporarily unavailable.");
                return Ok(());
            }
        };
        let (placeholder, _) = tokio::io::duplex(1);
        let io = std::mem::replace(&mut self.io, LineConn::new(Box::new(placeholder)));
        let Ok((client, pipelined)) = io.into_parts().await else {
            return Err(Stop::Closed);
        };
        let mut first = format!("{reply}\r\n").into_bytes();
        first.extend_from_slice(&rest);
        tracing::Span::current().record("user", user.as_str());
        tracing::info!(
            "pop3-login: proxy({user}): started proxying to {at}: method={mechanism}, rip={rip}, lip={lip}{}, session=<{session}>",
            if self.info.tls { ", TLS" } else { "" }
        );
        count_session("pop3");
        metrics::gauge!("node_proxy_sessions", "service" => "pop3").increment(1.0);
        let (from_client, to_client) = drive::splice(
            client,
            stream,
            &first,
            &pipelined,
            self.ctx.shutdown.clone(),
        )
        .await;
        metrics::gauge!("node_proxy_sessions", "service" => "pop3").decrement(1.0);
        tracing::info!(
            "pop3({user})<{session}>: Disconnected: Proxy session to {at} ended in={from_client} out={to_client}"
        );
        Err(Stop::Closed)
    }

    /// XCLIENT (Dovecot's, as its proxy sends it): `ADDR=` and `PORT=` become the client's
    /// address, `SESSION=` its session id. Only from `login_trusted_networks`.
    pub(super) fn xclient(&mut self, args: &str) {
        if !self.ctx.backend.trusted_network(self.info.remote.ip()) {
            self.io.send_line("-ERR You are not from trusted IP");
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
            "pop3-login: proxied connection from {proxy}: client rip={}, session=<{}>",
            remote.ip(),
            self.info.session_id
        );
        self.io.send_line("+OK");
    }
}
