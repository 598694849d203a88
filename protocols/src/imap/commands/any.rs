//! CAPABILITY, LOGOUT, ID, NAMESPACE.

use crate::imap::format;
use crate::imap::session::{Done, Reply, Session, State};
use imap_codec::imap_types::core::{IString, NString};

pub(crate) fn capability(s: &mut Session) -> Reply {
    let caps = s.capabilities().join(" ");
    s.untagged(&format!("CAPABILITY {caps}"));
    let text = if s.state == State::NotAuthenticated {
        "Pre-login capabilities listed, post-login capabilities have more."
    } else {
        "Capability completed."
    };
    Ok(Done::Ok(text.into()))
}

pub(crate) fn logout(s: &mut Session) -> Reply {
    s.untagged("BYE Logging out");
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
    }
    let mut out = b"* ID (\"name\" \"Dovecot-compatible\" \"vendor\" ".to_vec();
    format::string(&mut out, b"mailstore", false);
    out.extend_from_slice(b")\r\n");
    s.out.extend_from_slice(&out);
    Ok(Done::Ok("ID completed.".into()))
}

pub(crate) fn namespace(s: &mut Session) -> Reply {
    s.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
    Ok(Done::Ok("Namespace completed.".into()))
}
