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
    }
    s.send(&Untagged::Id(Some(vec![
        ("name", Some("Dovecot-compatible")),
        ("vendor", Some("mailstore")),
    ])));
    Ok(Done::Ok("ID completed.".into()))
}

pub(crate) fn namespace(s: &mut Session) -> Reply {
    s.send(&Untagged::Namespace {
        personal: vec![("", '/')],
        other: vec![(crate::imap::acl::SHARED_PREFIX, '/')],
        shared: vec![],
    });
    Ok(Done::Ok("Namespace completed.".into()))
}
