//! What a redirect sends (RFC 5228 4.2): the message with a trace field naming the user, so a
//! message that comes back to the same user is recognised as a loop and not sent again.

use crate::message::Message;

const TRACE: &str = "X-Sieve-Redirected-From";

/// Did this message already pass through a redirect of one of `own` addresses?
pub fn is_loop(msg: &Message, own: &[&str]) -> bool {
    msg.values(TRACE).iter().any(|v| {
        let v = crate::address::bare(v);
        own.iter()
            .any(|o| !o.is_empty() && v.eq_ignore_ascii_case(o))
    })
}

/// The message to send: the trace field, then the message as it is.
pub fn build(raw: &[u8], own: &str) -> Vec<u8> {
    let own: String = own.chars().filter(|c| !c.is_control()).collect();
    let mut out = format!("{TRACE}: {own}\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_recognised() {
        let sent = build(b"Subject: x\r\n\r\nbody\r\n", "me@example.org");
        let m = Message::parse(&sent);
        assert!(is_loop(&m, &["ME@example.org"]));
        assert!(!is_loop(&m, &["other@example.org"]));
        assert!(!is_loop(
            &Message::parse(b"Subject: x\r\n\r\n"),
            &["me@example.org"]
        ));
    }
}
