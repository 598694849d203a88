//! STARTTLS, LOGIN and AUTHENTICATE (the mechanisms of crate::sasl, SASL-IR).

use crate::backend::{AuthOutcome, AuthRequest, Service};
use crate::imap::reply::{server_bug, Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::{Session, State};
use crate::sasl::{self, Mechanism, Resolved, SaslExchange};
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::secret::Secret;
use std::borrow::Cow;

fn privacy_required() -> Done {
    Done::no(
        Code::PrivacyRequired,
        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
    )
}

pub(crate) async fn starttls(s: &mut Session, tag: &str) -> Reply {
    let Some(tls) = s.ctx.tls.clone() else {
        return Err(Done::Bad("TLS support isn't enabled.".into()));
    };
    if s.conn.tls {
        return Err(Done::Bad("TLS is already active.".into()));
    }
    // Anything the client pipelined after STARTTLS was sent in plaintext: drop it (CVE-2011-0411).
    s.framer = crate::imap::framing::Framer::new(
        s.ctx.config.max_line_length,
        crate::imap::session::PRE_AUTH_MAX_LITERAL.min(s.ctx.config.max_literal_size),
    );
    let stream = s
        .ok_then_take_stream(tag, "Begin TLS negotiation now.")
        .await?;
    match tls.upgrade_identified(stream).await {
        Ok((st, client_user)) => {
            s.stream = Some(st);
            s.conn.tls = true;
            s.conn.tls_client_user = client_user;
            // The tagged reply was already sent; nothing more to say for this command.
            Ok(Done::Silent)
        }
        Err(e) => {
            s.end_reason = Some(format!("TLS handshaking failed: {e}"));
            Err(Done::Close)
        }
    }
}

pub(crate) async fn login(
    s: &mut Session,
    username: AString<'static>,
    password: Secret<AString<'static>>,
) -> Reply {
    if !s.ctx.backend.allow_plaintext(&s.conn) {
        return Err(privacy_required());
    }
    let user = String::from_utf8_lossy(username.as_ref()).to_string();
    let pw = String::from_utf8_lossy(password.declassify().as_ref()).to_string();
    // Dovecot runs the LOGIN command through PLAIN and logs method=PLAIN.
    authenticate_as(s, &user, &pw, None, "PLAIN").await
}

pub(crate) async fn authenticate(
    s: &mut Session,
    mechanism: AuthMechanism<'static>,
    initial: Option<Secret<Cow<'static, [u8]>>>,
) -> Reply {
    // Only what `auth_mechanisms` offers, even where the SASL code knows more.
    let mech = match Mechanism::parse(mechanism.as_ref()) {
        Ok(m) if s.ctx.config.mechanisms().contains(&m) => m,
        _ => return Err(Done::No("Unsupported authentication mechanism.".into())),
    };
    if mech.carries_plaintext() && !s.ctx.backend.allow_plaintext(&s.conn) {
        return Err(privacy_required());
    }
    let ir = initial.map(|r| {
        let r = r.declassify();
        if r.is_empty() {
            "=".to_string()
        } else {
            sasl::encode_base64(r)
        }
    });
    let (mut ex, mut step) = match SaslExchange::start(mech, ir.as_deref()) {
        Ok(x) => x,
        Err(e) => return failed_exchange(s, e).await,
    };
    let backend = s.ctx.backend.clone();
    loop {
        let conn = s.conn.clone();
        match sasl::advance(&*backend, Service::Imap, &conn, mech, &mut ex, step).await {
            Err(e) => return failed_exchange(s, e).await,
            Ok(Resolved::Outcome(outcome)) => {
                s.auth_attempts += 1;
                let user = ex.user().unwrap_or_default();
                return finish_login(s, outcome, &user, mech.as_str()).await;
            }
            Ok(Resolved::Challenge(ch)) => {
                s.encoder().continuation(&mut s.out, &ch);
                if s.flush().await.is_err() {
                    return Err(Done::Close);
                }
                let line = loop {
                    match s.framer.next_raw_line() {
                        Some(Ok(l)) => break l,
                        Some(Err(())) => {
                            return Err(Done::Bad("Authentication response too long.".into()))
                        }
                        None => {
                            if s.fill().await.is_err() {
                                return Err(Done::Close);
                            }
                        }
                    }
                };
                let line = String::from_utf8_lossy(&line).to_string();
                step = match ex.step(&line) {
                    Ok(st) => st,
                    Err(e) => return failed_exchange(s, e).await,
                };
            }
        }
    }
}

async fn failed_exchange(s: &mut Session, e: sasl::SaslError) -> Reply {
    if e == sasl::SaslError::Cancelled {
        return Err(Done::Bad("Authentication aborted by client.".into()));
    }
    s.auth_attempts += 1;
    Err(Done::Bad(
        format!("Invalid authentication data: {e}").into(),
    ))
}

async fn authenticate_as(
    s: &mut Session,
    user: &str,
    password: &str,
    authzid: Option<&str>,
    method: &str,
) -> Reply {
    s.auth_attempts += 1;
    let outcome = s
        .ctx
        .backend
        .authenticate(AuthRequest {
            service: Service::Imap,
            user,
            password,
            authzid,
            mechanism: method,
            conn: &s.conn,
        })
        .await;
    finish_login(s, outcome, user, method).await
}

/// Acts on the backend's verdict: the tagged NO, or the authenticated state.
async fn finish_login(s: &mut Session, outcome: AuthOutcome, user: &str, method: &str) -> Reply {
    let user = match outcome {
        AuthOutcome::Ok { user } => user,
        AuthOutcome::Proxy { user, target } => {
            return super::proxy::login(s, user, *target, method).await;
        }
        AuthOutcome::Failed => {
            if !s.ctx.config.auth_failure_delay.is_zero() {
                tokio::time::sleep(s.ctx.config.auth_failure_delay).await;
            }
            return Err(Done::no(
                Code::AuthenticationFailed,
                "Authentication failed.",
            ));
        }
        AuthOutcome::RateLimited => {
            return Err(Done::no(
                Code::Unavailable,
                "Too many failed authentication attempts; try again later.",
            ))
        }
        AuthOutcome::TempFail(why) => {
            tracing::warn!("auth tempfail for user={user}: {why}");
            return Err(Done::no(
                Code::Unavailable,
                "Temporary authentication failure.",
            ));
        }
    };
    let guard = match s
        .ctx
        .backend
        .register_session(Service::Imap, &user, s.conn.remote.ip())
    {
        Ok(g) => g,
        Err(text) => {
            tracing::info!("imap-login: Login refused: user=<{user}>: {text}");
            return Err(Done::no(Code::Unavailable, text));
        }
    };
    let store = match crate::mail::UserMail::open(&s.ctx.backend, &user).await {
        Ok(st) => st,
        Err(e) => {
            tracing::error!("opening mail store of user={user} failed: {e}");
            return Err(server_bug());
        }
    };
    s.watch = Some(store.reader().watch());
    s.store = Some(store);
    s.guard = Some(guard);
    s.state = State::Authenticated;
    s.framer.set_max_literal(s.ctx.config.max_literal_size);
    s.span.record("user", user.as_str());
    tracing::info!(
        "imap-login: Login: user=<{user}>, method={method}, rip={}, lip={}, mpid={}{}, session=<{}>",
        s.conn.remote.ip(),
        s.conn.local.ip(),
        std::process::id(),
        if s.conn.tls { ", TLS" } else { "" },
        s.conn.session_id
    );
    s.user = Some(user);
    Ok(Done::ok_coded(
        Code::Capability(s.capabilities()),
        "Logged in",
    ))
}

/// UNAUTHENTICATE (RFC 8437): back to the not-authenticated state as on a new connection
/// (the mailbox closed without expunging, ENABLEd extensions off, the pre-login literal
/// limit), keeping TLS and compression.
pub(crate) fn unauthenticate(s: &mut Session) -> Reply {
    s.sel = None;
    s.shared = None;
    s.store = None;
    s.watch = None;
    // Dropping the guard gives the user's session slot back.
    s.guard = None;
    s.enabled = Default::default();
    s.notify = None;
    s.state = State::NotAuthenticated;
    // The login deadline counts from now, as for a new connection.
    s.started = std::time::Instant::now();
    s.framer.set_max_literal(
        crate::imap::session::PRE_AUTH_MAX_LITERAL.min(s.ctx.config.max_literal_size),
    );
    if let Some(user) = s.user.take() {
        tracing::info!("Unauthenticated: user=<{user}>");
    }
    Ok(Done::Ok("Unauthenticate completed.".into()))
}
