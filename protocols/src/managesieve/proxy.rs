//! A ManageSieve login the passdb routes to another server (Dovecot's managesieve-login
//! proxy): log in at the backend, give the client the backend's `OK`, then splice the two
//! connections until either side closes. A backend that cannot be reached or logged in to
//! is `NO (TRYLATER)`, never a wrong password.

use super::session::{Session, Stop};
use crate::line::LineConn;
use crate::proxy::drive::{self, Logged};
use crate::proxy::sieve_login::SieveLogin;
use crate::proxy::{count_failure, count_session, ClientOrigin, LoginResult, ProxyTarget};
use crate::sasl::Mechanism;

const UNAVAILABLE: &str = "NO (TRYLATER) \"Account is temporarily unavailable.\"";

impl Session {
    pub(super) async fn proxy(
        &mut self,
        user: String,
        target: ProxyTarget,
        mech: Mechanism,
    ) -> Result<(), Stop> {
        let origin = ClientOrigin {
            remote: self.info.remote,
            local: self.info.local,
            session_id: self.info.session_id.clone(),
        };
        // Dovecot's default: ManageSieve has no implicit-TLS port of its own.
        let port = target.port_or(4190, 4190);
        let at = target.display(port);
        let (rip, lip, session) = (
            self.info.remote.ip(),
            self.info.local.ip(),
            self.info.session_id.clone(),
        );
        let machine = SieveLogin::new(target.clone(), Some(origin));
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
                    "managesieve-login: proxy({user}): Login failed to {at}: {e}: rip={rip}, lip={lip}, session=<{session}>"
                );
                count_failure("managesieve", "connect");
                self.io.send_line(UNAVAILABLE);
                return Ok(());
            }
        };
        let reply = match result {
            LoginResult::Ok { reply } => reply,
            LoginResult::AuthFailed { reply } => {
                tracing::info!(
                    "managesieve-login: proxy({user}): Login failed to {at}: {}: rip={rip}, session=<{session}>",
                    crate::proxy::imap_login::shorten(&reply)
                );
                self.io.send_line("NO \"Authentication failed.\"");
                return self.auth_failed();
            }
            LoginResult::TempFail { reason } => {
                tracing::error!(
                    "managesieve-login: proxy({user}): Login failed to {at}: {reason}: rip={rip}, lip={lip}, session=<{session}>"
                );
                count_failure("managesieve", "login");
                self.io.send_line(UNAVAILABLE);
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
        tracing::info!(
            "managesieve-login: proxy({user}): started proxying to {at}: method={}, rip={rip}, lip={lip}{}, session=<{session}>",
            mech.as_str(),
            if self.info.tls { ", TLS" } else { "" }
        );
        count_session("managesieve");
        metrics::gauge!("node_proxy_sessions", "service" => "managesieve").increment(1.0);
        let (from_client, to_client) = drive::splice(
            client,
            stream,
            &first,
            &pipelined,
            self.ctx.shutdown.clone(),
        )
        .await;
        metrics::gauge!("node_proxy_sessions", "service" => "managesieve").decrement(1.0);
        tracing::info!(
            "managesieve({user})<{session}>: Disconnected: Proxy session to {at} ended in={from_client} out={to_client}"
        );
        Err(Stop::Closed)
    }
}
