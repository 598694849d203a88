//! RFC 5230: when a vacation reply may be sent, and the reply itself.

use crate::address;
use crate::message::Message;

/// The handle of a vacation without :handle (RFC 5230 4.2: same arguments, same vacation).
pub fn default_handle(
    reason: &str,
    subject: Option<&str>,
    from: Option<&str>,
    mime: bool,
) -> String {
    format!(
        "{}|{}|{}|{}",
        reason,
        subject.unwrap_or(""),
        from.unwrap_or(""),
        mime as u8
    )
}

/// Why no reply goes out, or `Ok` with the user's address found in the recipient fields (the
/// reply's default From) (RFC 5230 4.5, 4.6 and Pigeonhole's checks).
pub fn check(
    msg: &Message,
    sender: &str,
    recipient: &str,
    addresses: &[String],
) -> Result<String, &'static str> {
    check_with(msg, sender, recipient, addresses, true)
}

/// [`check`], optionally without the explicit-recipient rule (Pigeonhole's
/// `sieve_vacation_check_recipient = no`): the reply then comes from `recipient`.
pub fn check_with(
    msg: &Message,
    sender: &str,
    recipient: &str,
    addresses: &[String],
    check_recipient: bool,
) -> Result<String, &'static str> {
    let sender_l = sender.to_ascii_lowercase();
    if sender.is_empty() {
        return Err("null sender");
    }
    let local = sender_l.split('@').next().unwrap_or("");
    if local == "mailer-daemon"
        || local == "listserv"
        || local == "majordomo"
        || local.starts_with("owner-")
        || local.ends_with("-request")
    {
        return Err("sender is a system address");
    }
    if msg
        .values("auto-submitted")
        .iter()
        .any(|v| !v.eq_ignore_ascii_case("no"))
    {
        return Err("auto-submitted message");
    }
    if msg
        .values("precedence")
        .iter()
        .any(|v| matches!(v.to_ascii_lowercase().as_str(), "bulk" | "list" | "junk"))
    {
        return Err("bulk or list precedence");
    }
    if [
        "list-id",
        "list-owner",
        "list-unsubscribe",
        "list-post",
        "list-help",
        "list-subscribe",
    ]
    .iter()
    .any(|h| msg.exists(h))
    {
        return Err("mailing list message");
    }
    // Microsoft's marker: "All" or "OOF" asks for no out-of-office replies.
    if msg.values("x-auto-response-suppress").iter().any(|v| {
        v.split([',', ' '])
            .any(|w| w.eq_ignore_ascii_case("all") || w.eq_ignore_ascii_case("oof"))
    }) {
        return Err("auto responses suppressed");
    }
    let own: Vec<String> = std::iter::once(recipient.to_string())
        .chain(addresses.iter().cloned())
        .map(|a| address::bare(&a).to_ascii_lowercase())
        .collect();
    if own.contains(&sender_l) {
        return Err("sender is the user");
    }
    for h in ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"] {
        for v in msg.raw_values(h) {
            for a in address::parse_header(&crate::message::unfold(v)) {
                if own.contains(&a.all.to_ascii_lowercase()) {
                    return Ok(a.all);
                }
            }
        }
    }
    if !check_recipient {
        return Ok(address::bare(recipient));
    }
    Err("the user is not an explicit recipient")
}

/// Longest reply subject, in characters (Pigeonhole's limit too).
const MAX_SUBJECT: usize = 256;

/// The reply's To: the original field naming the envelope sender, as written (display name
/// kept), else the bare sender.
fn reply_to(msg: &Message, sender: &str, ignore_envelope: bool) -> String {
    for h in ["reply-to", "sender", "resent-from", "from"] {
        for v in msg.raw_values(h) {
            let v = crate::message::unfold(v);
            let addrs = address::parse_header(&v);
            if addrs.len() == 1 && (ignore_envelope || addrs[0].all.eq_ignore_ascii_case(sender)) {
                return v.trim().to_string();
            }
        }
    }
    format!("<{}>", sender.replace(['\r', '\n', '<', '>'], ""))
}

/// The reply to send to `sender` (RFC 5230 5).
pub fn build_reply(
    msg: &Message,
    v: &crate::action::Vacation,
    own_address: &str,
    sender: &str,
    date: &str,
    message_id: &str,
) -> Vec<u8> {
    let from = v.from.clone().unwrap_or_else(|| format!("<{own_address}>"));
    let subject = match &v.subject {
        Some(s) => s.clone(),
        None => {
            let orig = msg.values("subject").into_iter().next().unwrap_or_default();
            format!("Auto: {orig}")
        }
    };
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", clean(&from)));
    out.push_str(&format!(
        "To: {}\r\n",
        reply_to(msg, sender, v.to_ignore_envelope)
    ));
    let mut subject = clean(&subject);
    if subject.chars().count() > MAX_SUBJECT {
        subject = subject.chars().take(MAX_SUBJECT - 1).collect::<String>() + "\u{2026}";
    }
    out.push_str(&format!(
        "Subject: {}\r\n",
        crate::message::fold(&encode_header(&subject))
    ));
    out.push_str(&format!("Date: {date}\r\nMessage-ID: {message_id}\r\n"));
    if let Some(id) = msg.values("message-id").into_iter().next() {
        out.push_str(&format!("In-Reply-To: {}\r\n", clean(&id)));
        let refs = msg
            .values("references")
            .into_iter()
            .next()
            .unwrap_or_default();
        out.push_str(&format!(
            "References: {}\r\n",
            crate::message::fold(format!("{} {}", clean(&refs), clean(&id)).trim())
        ));
    }
    out.push_str(
        "Auto-Submitted: auto-replied (vacation)\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\n",
    );
    if v.mime {
        // The reason is a MIME entity of its own (headers and body).
        out.push_str(&v.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
        if !out.ends_with("\r\n") {
            out.push_str("\r\n");
        }
    } else {
        out.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        out.push_str(&v.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The rejection sent to `sender` for `reject` (RFC 5429 2.2: a bounce quoting the reason and
/// carrying the original message).
pub fn build_rejection(
    msg: &Message,
    reason: &str,
    recipient: &str,
    sender: &str,
    date: &str,
    message_id: &str,
) -> Vec<u8> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let subject = msg.values("subject").into_iter().next().unwrap_or_default();
    let boundary = format!(
        "reject-{}",
        message_id.trim_matches(['<', '>']).replace('@', ".")
    );
    let mut out = String::new();
    out.push_str("From: Postmaster <MAILER-DAEMON>\r\n");
    out.push_str(&format!("To: <{}>\r\n", clean(sender)));
    out.push_str(&format!(
        "Subject: {}\r\n",
        crate::message::fold(&encode_header(&format!("Rejected: {}", clean(&subject))))
    ));
    out.push_str(&format!("Date: {date}\r\nMessage-ID: {message_id}\r\n"));
    out.push_str(
        "Auto-Submitted: auto-replied (rejected)\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\n",
    );
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         This is a MIME-encapsulated message\r\n\r\n--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Your message to <{}> was automatically rejected:\r\n{}\r\n\r\n--{boundary}\r\n\
         Content-Type: message/rfc822\r\n\r\n",
        clean(recipient),
        reason.replace("\r\n", "\n").replace('\n', "\r\n")
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&msg.to_bytes());
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// RFC 2047 B-encoding for a non-ASCII header value.
fn encode_header(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    use std::fmt::Write;
    let mut b64 = String::new();
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::new();
    let _ = write!(out, "=?utf-8?b?{b64}?=");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_rules() {
        let m = Message::parse(b"From: a@x\r\nTo: me@y\r\nSubject: hi\r\n\r\n");
        assert_eq!(check(&m, "a@x", "me@y", &[]).as_deref(), Ok("me@y"));
        assert!(check(&m, "", "me@y", &[]).is_err());
        assert!(check(&m, "a@x", "other@y", &[]).is_err());
        assert_eq!(
            check(&m, "a@x", "other@y", &["me@y".into()]).as_deref(),
            Ok("me@y")
        );
        let l = Message::parse(b"To: me@y\r\nList-Id: <l.x>\r\n\r\n");
        assert!(check(&l, "a@x", "me@y", &[]).is_err());
        let a = Message::parse(b"To: me@y\r\nAuto-Submitted: auto-replied\r\n\r\n");
        assert!(check(&a, "a@x", "me@y", &[]).is_err());
        assert!(check(&m, "owner-list@x", "me@y", &[]).is_err());
    }

    #[test]
    fn reply_message() {
        let m =
            Message::parse(b"From: a@x\r\nTo: me@y\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\n");
        let v = crate::action::Vacation {
            reason: "away".into(),
            subject: None,
            from: None,
            addresses: vec![],
            mime: false,
            handle: "h".into(),
            period: 0,
            to_ignore_envelope: false,
        };
        let r = String::from_utf8(build_reply(
            &m,
            &v,
            "me@y",
            "a@x",
            "Mon, 7 Dec 2026 00:00:00 +0000",
            "<r@y>",
        ))
        .unwrap();
        assert!(r.contains("Subject: Auto: hi\r\n"));
        assert!(r.contains("In-Reply-To: <1@x>\r\n"));
        assert!(r.contains("Auto-Submitted: auto-replied"));
        assert!(r.ends_with("\r\n\r\naway\r\n"));
        assert_eq!(encode_header("é"), "=?utf-8?b?w6k=?=");
    }
}
