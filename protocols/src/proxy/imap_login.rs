//! The proxy's IMAP login at the backend, as a state machine over the backend's lines:
//! greeting, optional STARTTLS, `ID` with the client's origin, then `AUTHENTICATE PLAIN`
//! (with SASL-IR when the greeting advertises it). The backend's tagged reply to the
//! AUTHENTICATE becomes the client's reply to its own LOGIN/AUTHENTICATE.

use super::{plain_identities, plain_response, ClientOrigin, LoginResult, ProxyTarget, Step};

const TAG_TLS: &str = "P1";
const TAG_ID: &str = "P2";
const TAG_AUTH: &str = "P3";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Greeting,
    StartTls,
    /// Sent AUTHENTICATE without an initial response; waiting for `+`.
    AuthContinue,
    /// Waiting for the AUTHENTICATE's tagged reply.
    Auth,
    Done,
}

pub struct ImapLogin {
    st: St,
    target: ProxyTarget,
    origin: Option<ClientOrigin>,
    sasl_ir: bool,
}

impl ImapLogin {
    /// `origin`: where the client comes from, sent as ID (None: send no ID).
    pub fn new(target: ProxyTarget, origin: Option<ClientOrigin>) -> ImapLogin {
        ImapLogin {
            st: St::Greeting,
            target,
            origin,
            sasl_ir: false,
        }
    }

    /// Feeds one backend line (without CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        match self.st {
            St::Greeting => {
                let Some(rest) = strip_word(text, "*").and_then(|r| strip_word(r, "OK")) else {
                    return self.fail(format!("unexpected greeting: {}", shorten(text)));
                };
                self.sasl_ir = has_capability(rest, "SASL-IR");
                if self.target.tls == super::ProxyTls::StartTls {
                    self.st = St::StartTls;
                    return Step::Send(format!("{TAG_TLS} STARTTLS\r\n").into_bytes());
                }
                self.login()
            }
            St::StartTls => match tagged(text, TAG_TLS) {
                None if text.starts_with('*') => self.untagged(text),
                Some(("OK", _)) => Step::StartTls,
                Some((_, _)) | None => self.fail(format!("STARTTLS refused: {}", shorten(text))),
            },
            St::AuthContinue => {
                if text == "+" || text.starts_with("+ ") {
                    self.st = St::Auth;
                    let Some(pw) = self.target.password.as_deref() else {
                        return self.fail("no password to give the backend".into());
                    };
                    let (authz, authc) = plain_identities(&self.target);
                    return Step::Send(
                        format!("{}\r\n", plain_response(authz, authc, pw)).into_bytes(),
                    );
                }
                self.auth_reply(text)
            }
            St::Auth => self.auth_reply(text),
            St::Done => Step::Wait,
        }
    }

    /// TLS is up (after [`Step::StartTls`]): log in.
    pub fn tls_started(&mut self) -> Step {
        self.login()
    }

    fn login(&mut self) -> Step {
        let Some(pw) = self.target.password.as_deref() else {
            return self.fail(
                "no password to give the backend (a non-plaintext mechanism and no pass field)"
                    .into(),
            );
        };
        let mut out = String::new();
        if let Some(o) = &self.origin {
            // Values are addresses, digits and the base64 session id: safe inside quotes.
            out.push_str(&format!(
                "{TAG_ID} ID (\"x-originating-ip\" \"{}\" \"x-originating-port\" \"{}\" \"x-connected-ip\" \"{}\" \"x-connected-port\" \"{}\" \"x-session-ext-id\" \"{}\")\r\n",
                o.remote.ip(),
                o.remote.port(),
                o.local.ip(),
                o.local.port(),
                o.session_id.replace(['"', '\\'], "")
            ));
        }
        if self.sasl_ir {
            let (authz, authc) = plain_identities(&self.target);
            out.push_str(&format!(
                "{TAG_AUTH} AUTHENTICATE PLAIN {}\r\n",
                plain_response(authz, authc, pw)
            ));
            self.st = St::Auth;
        } else {
            out.push_str(&format!("{TAG_AUTH} AUTHENTICATE PLAIN\r\n"));
            self.st = St::AuthContinue;
        }
        Step::Send(out.into_bytes())
    }

    fn auth_reply(&mut self, text: &str) -> Step {
        if text.starts_with('*') {
            return self.untagged(text);
        }
        if tagged(text, TAG_ID).is_some() {
            // The ID's answer, whatever it is, changes nothing.
            return Step::Wait;
        }
        let Some((status, rest)) = tagged(text, TAG_AUTH) else {
            return self.fail(format!("unexpected reply: {}", shorten(text)));
        };
        self.st = St::Done;
        let reply = format!("{status} {rest}").trim_end().to_string();
        match status {
            "OK" => Step::Done(LoginResult::Ok { reply }),
            "NO" if is_temporary(rest) => Step::Done(LoginResult::TempFail {
                reason: format!("backend: {}", shorten(&reply)),
            }),
            "NO" => Step::Done(LoginResult::AuthFailed { reply }),
            _ => Step::Done(LoginResult::TempFail {
                reason: format!("backend: {}", shorten(&reply)),
            }),
        }
    }

    fn untagged(&mut self, text: &str) -> Step {
        if strip_word(text, "*")
            .and_then(|r| strip_word(r, "BYE"))
            .is_some()
        {
            return self.fail(format!("backend said {}", shorten(text)));
        }
        Step::Wait
    }

    fn fail(&mut self, reason: String) -> Step {
        self.st = St::Done;
        Step::Done(LoginResult::TempFail { reason })
    }
}

/// `word` (case-insensitive) followed by a space or the end; the rest after it.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = text.get(word.len()..)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix(' ')
    }
}

/// `TAG STATUS rest` for this tag: (upper-cased status, rest).
fn tagged<'a>(text: &'a str, tag: &str) -> Option<(&'static str, &'a str)> {
    let rest = strip_word(text, tag)?;
    for status in ["OK", "NO", "BAD"] {
        if let Some(r) = strip_word(rest, status) {
            return Some((status, r));
        }
    }
    Some(("BAD", rest))
}

fn has_capability(text: &str, cap: &str) -> bool {
    let Some(start) = text.find('[') else {
        return false;
    };
    let Some(end) = text[start..].find(']') else {
        return false;
    };
    text[start + 1..start + end]
        .split_ascii_whitespace()
        .any(|w| w.eq_ignore_ascii_case(cap))
}

/// Response codes that say "not now" rather than "wrong password" (RFC 5530).
fn is_temporary(rest: &str) -> bool {
    let upper = rest.to_ascii_uppercase();
    [
        "[UNAVAILABLE]",
        "[SERVERBUG]",
        "[LIMIT]",
        "[INUSE]",
        "[OVERQUOTA]",
    ]
    .iter()
    .any(|c| upper.starts_with(c))
}

/// Backend text in a log line: bounded.
pub(crate) fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyTls;

    fn target() -> ProxyTarget {
        let mut t = ProxyTarget::new("10.0.0.1", Some(143), "alice");
        t.password = Some("secret".into());
        t
    }

    fn sent(step: Step) -> String {
        match step {
            Step::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn sasl_ir_login_pipelines_id_and_authenticate() {
        let origin = ClientOrigin {
            remote: "192.0.2.7:5555".parse().unwrap(),
            local: "192.0.2.1:143".parse().unwrap(),
            session_id: "abc+/=".into(),
        };
        let mut m = ImapLogin::new(target(), Some(origin));
        let out = sent(m.on_line(b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID] ready"));
        assert_eq!(
            out,
            "P2 ID (\"x-originating-ip\" \"192.0.2.7\" \"x-originating-port\" \"5555\" \"x-connected-ip\" \"192.0.2.1\" \"x-connected-port\" \"143\" \"x-session-ext-id\" \"abc+/=\")\r\n\
             P3 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n"
        );
        assert_eq!(m.on_line(b"* ID NIL"), Step::Wait);
        assert_eq!(m.on_line(b"P2 OK ID completed."), Step::Wait);
        assert_eq!(
            m.on_line(b"P3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in"),
            Step::Done(LoginResult::Ok {
                reply: "OK [CAPABILITY IMAP4rev1 IDLE] Logged in".into()
            })
        );
    }

    #[test]
    fn without_sasl_ir_waits_for_the_continuation() {
        let mut m = ImapLogin::new(target(), None);
        assert_eq!(sent(m.on_line(b"* OK ready")), "P3 AUTHENTICATE PLAIN\r\n");
        assert_eq!(sent(m.on_line(b"+ ")), "AGFsaWNlAHNlY3JldA==\r\n");
        assert_eq!(
            m.on_line(b"P3 NO [AUTHENTICATIONFAILED] Authentication failed."),
            Step::Done(LoginResult::AuthFailed {
                reply: "NO [AUTHENTICATIONFAILED] Authentication failed.".into()
            })
        );
    }

    #[test]
    fn master_user_logs_in_for_destuser() {
        let mut t = target();
        t.master = Some("master".into());
        t.password = Some("mpass".into());
        let mut m = ImapLogin::new(t, None);
        // "alice\0master\0mpass"
        assert_eq!(
            sent(m.on_line(b"* OK [CAPABILITY SASL-IR] x")),
            "P3 AUTHENTICATE PLAIN YWxpY2UAbWFzdGVyAG1wYXNz\r\n"
        );
    }

    #[test]
    fn starttls_then_login() {
        let mut t = target();
        t.tls = ProxyTls::StartTls;
        let mut m = ImapLogin::new(t, None);
        assert_eq!(
            sent(m.on_line(b"* OK [CAPABILITY STARTTLS] x")),
            "P1 STARTTLS\r\n"
        );
        assert_eq!(m.on_line(b"P1 OK Begin TLS"), Step::StartTls);
        assert_eq!(sent(m.tls_started()), "P3 AUTHENTICATE PLAIN\r\n");
        let mut m = ImapLogin::new(
            ProxyTarget {
                tls: ProxyTls::StartTls,
                ..target()
            },
            None,
        );
        m.on_line(b"* OK x");
        assert!(matches!(
            m.on_line(b"P1 BAD TLS support isn't enabled."),
            Step::Done(LoginResult::TempFail { .. })
        ));
    }

    #[test]
    fn temporary_failures() {
        for (greeting, line) in [
            (&b"* BYE too many"[..], None),
            (b"* PREAUTH hi", None),
            (b"garbage", None),
            (
                b"* OK hi",
                Some(&b"P3 NO [UNAVAILABLE] Temporary authentication failure."[..]),
            ),
            (b"* OK hi", Some(b"P3 BAD no")),
            (b"* OK hi", Some(b"* BYE shutting down")),
            (b"* OK hi", Some(b"X9 OK what")),
        ] {
            let mut m = ImapLogin::new(target(), None);
            let step = m.on_line(greeting);
            let step = match line {
                None => step,
                Some(l) => {
                    assert!(matches!(step, Step::Send(_)));
                    m.on_line(l)
                }
            };
            assert!(
                matches!(step, Step::Done(LoginResult::TempFail { .. })),
                "{greeting:?} {line:?}: {step:?}"
            );
        }
        // No password known: nothing is sent.
        let mut t = target();
        t.password = None;
        let mut m = ImapLogin::new(t, None);
        assert!(matches!(
            m.on_line(b"* OK hi"),
            Step::Done(LoginResult::TempFail { .. })
        ));
    }
}
