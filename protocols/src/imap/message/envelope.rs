//! ENVELOPE rendering (RFC 3501 7.4.2 / RFC 9051 7.5.2).

use super::istring::nstring;
use crate::imap::response::{Encoder, Value};
use storage::mime::{Address, Envelope};

/// Writes `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
pub fn render_envelope(env: &Envelope, out: &mut Vec<u8>) {
    Encoder::default().value(out, &envelope(env));
}

/// The ENVELOPE of a message, as the FETCH item's value.
pub fn envelope(env: &Envelope) -> Value<'_> {
    let mut v = vec![
        nstring(env.date.as_deref()),
        nstring(env.subject.as_deref()),
    ];
    for list in [
        &env.from,
        &env.sender,
        &env.reply_to,
        &env.to,
        &env.cc,
        &env.bcc,
    ] {
        v.push(addresses(list));
    }
    v.push(nstring(env.in_reply_to.as_deref()));
    v.push(nstring(env.message_id.as_deref()));
    Value::List(v)
}

/// `((name adl mailbox host)(...))`, or NIL for no addresses.
fn addresses(list: &[Address]) -> Value<'_> {
    if list.is_empty() {
        return Value::Nil;
    }
    // The addresses follow each other with no space between: `((...)(...))`.
    let each = list
        .iter()
        .map(|a| {
            Value::List(vec![
                nstring(a.name.as_deref()),
                nstring(a.adl.as_deref()),
                nstring(a.mailbox.as_deref()),
                nstring(a.host.as_deref()),
            ])
        })
        .collect();
    Value::List(vec![Value::Adjacent(each)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::parse_facts;

    fn render(raw: &str) -> String {
        let mut out = Vec::new();
        render_envelope(&parse_facts(raw.as_bytes()).envelope, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn rfc3501_example_shape() {
        let raw = "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: Terry Gray <gray@cac.washington.edu>\r\nSubject: IMAP4rev1 WG mtg summary and minutes\r\nTo: imap@cac.washington.edu\r\ncc: minutes@CNRI.Reston.VA.US,\r\n John Klensin <KLENSIN@MIT.EDU>\r\nMessage-Id: <B27397-0100000@cac.washington.edu>\r\n\r\nx\r\n";
        assert_eq!(
            render(raw),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) ((NIL NIL \"imap\" \"cac.washington.edu\")) ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
    }

    #[test]
    fn empty_message_is_all_nil() {
        assert_eq!(render(""), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    }

    #[test]
    fn eight_bit_name_is_a_literal_and_quotes_escaped() {
        let got = render("From: \"a \\\"q\\\" b\" <x@y>\r\nSubject: Grüße\r\n\r\n");
        assert!(
            got.starts_with("(NIL {7}\r\nGrüße ((\"a \\\"q\\\" b\" NIL \"x\" \"y\"))"),
            "{got}"
        );
    }
}
