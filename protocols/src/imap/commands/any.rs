//! CAPABILITY, LOGOUT, ID, NAMESPACE.

use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::{Session, State};
use imap_codec::imap_types::core::{IString, NString};

pub(crate) fn capability(s: &mut Session) -> Reply {
    let caps = s.capabilities();
    s.send(&Untagged::Capability(&caps));
    let text = if s.state == State::NotAuthenticated {
        "Pre-login capabilities listed, post-login capabilities have more."
    } else {
        "Capability completed."
    };
    Ok(Done::Ok(text.into()))
}

pub(crate) fn logout(s: &mut Session) -> Reply {
    s.send(&Untagged::Bye("Logging out".into()));
    s.state = State::Logout;
    s.end_reason = Some("Logged out".into());
    // The tagged OK goes out before the connection closes.
    let tag_line = Done::Ok("Logout completed.".into());
    s.pending_close = true;
    Ok(tag_line)
}

pub(crate) fn id(
    s: &mut Session,
    params: Option<Vec<(IString<'static>, NString<'static>)>>,
) -> Reply {
    if let Some(params) = params {
        let fields: Vec<String> = params
            .iter()
            .take(30)
            .map(|(k, v)| {
                let v =
                    v.0.as_ref()
                        .map(|v| String::from_utf8_lossy(v.as_ref()).to_string());
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k.as_ref()),
                    v.unwrap_or_else(|| "NIL".into())
                )
            })
            .collect();
        tracing::debug!("client ID: {}", fields.join(", "));
        trusted_origin(s, &params);
    }
    s.send(&Untagged::Id(Some(vec![
        ("name", Some("Dovecot-compatible")),
        ("vendor", Some("mailstore")),
    ])));
    Ok(Done::Ok("ID completed.".into()))
}

/// A proxy in `login_trusted_networks` tells where its client comes from (Dovecot's
/// `x-originating-ip`/`x-originating-port`): logs, `allow_nets` and the failure limiter see
/// the client, not the proxy. Only before login, only from a trusted address.
fn trusted_origin(s: &mut Session, params: &[(IString<'static>, NString<'static>)]) {
    if s.state != State::NotAuthenticated || !s.ctx.backend.trusted_network(s.conn.remote.ip()) {
        return;
    }
    let value = |key: &str| {
        params.iter().find_map(|(k, v)| {
            let k = String::from_utf8_lossy(k.as_ref());
            if !k.eq_ignore_ascii_case(key) {
                return None;
            }
            v.0.as_ref()
                .map(|v| String::from_utf8_lossy(v.as_ref()).to_string())
        })
    };
    let Some(ip) = value("x-originating-ip").and_then(|v| v.parse().ok()) else {
        return;
    };
    let port = value("x-originating-port")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let proxy = s.conn.remote;
    s.conn.remote = std::net::SocketAddr::new(ip, port);
    if let Some(id) = value("x-session-ext-id").filter(|v| !v.is_empty() && v.len() <= 64) {
        s.conn.session_id = id;
    }
    tracing::info!(
        "imap-login: proxied connection from {proxy}: client rip={ip}, session=<{}>",
        s.conn.session_id
    );
}

pub(crate) fn namespace(s: &mut Session) -> Reply {
    s.send(&Untagged::Namespace {
        personal: vec![("", '/')],
        other: vec![(crate::imap::acl::SHARED_PREFIX, '/')],
        shared: vec![],
    });
    Ok(Done::Ok("Namespace completed.".into()))
}
