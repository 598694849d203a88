//! A login the passdb routes to another server (Dovecot's proxy): log in at the backend
//! with the client's credentials, give the client the backend's tagged reply under its own
//! tag, then splice the two connections until either side closes.

use crate::imap::reply::{Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use crate::proxy::drive::{self, Logged};
use crate::proxy::imap_login::ImapLogin;
use crate::proxy::{count_failure, count_session, ClientOrigin, LoginResult, ProxyTarget};

fn unavailable() -> Done {
    Done::no(Code::Unavailable, "Account is temporarily unavailable.")
}

pub(super) async fn login(
    s: &mut Session,
    user: String,
    target: ProxyTarget,
    method: &str,
) -> Reply {
    let origin = ClientOrigin {
        remote: s.conn.remote,
        local: s.conn.local,
        session_id: s.conn.session_id.clone(),
    };
    let port = target.port_or(143, 993);
    let at = target.display(port);
    let (rip, lip, session) = (
        s.conn.remote.ip(),
        s.conn.local.ip(),
        s.conn.session_id.clone(),
    );
    let machine = ImapLogin::new(target.clone(), Some(origin));
    let backend = s.ctx.backend.clone();
    let logged = drive::login(&*backend, &target, port, machine).await;
    let Logged {
        stream,
        rest,
        result,
    } = match logged {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "imap-login: proxy({user}): Login failed to {at}: {e}: rip={rip}, lip={lip}, session=<{session}>"
            );
            count_failure("imap", "connect");
            return Err(unavailable());
        }
    };
    let reply = match result {
        LoginResult::Ok { reply } => reply,
        LoginResult::AuthFailed { reply } => {
            tracing::info!(
                "imap-login: proxy({user}): Login failed to {at}: {}: rip={rip}, session=<{session}>",
                crate::proxy::imap_login::shorten(&reply)
            );
            if !s.ctx.config.auth_failure_delay.is_zero() {
                tokio::time::sleep(s.ctx.config.auth_failure_delay).await;
            }
            return Err(Done::no(
                Code::AuthenticationFailed,
                "Authentication failed.",
            ));
        }
        LoginResult::TempFail { reason } => {
            tracing::error!(
                "imap-login: proxy({user}): Login failed to {at}: {reason}: rip={rip}, lip={lip}, session=<{session}>"
            );
            count_failure("imap", "login");
            return Err(unavailable());
        }
    };
    // What this session still owes the client goes out before the backend's bytes.
    if s.flush().await.is_err() {
        return Err(Done::Close);
    }
    let Some(client) = s.stream.take() else {
        return Err(Done::Close);
    };
    let mut first = format!("{} {reply}\r\n", s.current_tag).into_bytes();
    first.extend_from_slice(&rest);
    let pipelined = s.framer.take_buffered();
    s.span.record("user", user.as_str());
    tracing::info!(
        "imap-login: proxy({user}): started proxying to {at}: method={method}, rip={rip}, lip={lip}{}, session=<{session}>",
        if s.conn.tls { ", TLS" } else { "" }
    );
    count_session("imap");
    metrics::gauge!("node_proxy_sessions", "service" => "imap").increment(1.0);
    let (from_client, to_client) =
        drive::splice(client, stream, &first, &pipelined, s.ctx.shutdown.clone()).await;
    metrics::gauge!("node_proxy_sessions", "service" => "imap").decrement(1.0);
    s.bytes_in += from_client;
    s.bytes_out += to_client;
    s.user = Some(user);
    s.end_reason = Some(format!("Proxy session to {at} ended"));
    Err(Done::Close)
}
