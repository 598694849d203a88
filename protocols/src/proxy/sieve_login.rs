//! The proxy's ManageSieve login at the backend (RFC 5804), as a state machine over the
//! backend's lines, as Pigeonhole's managesieve-login does it: the greeting's capability
//! lines up to `OK`, optional STARTTLS (after which the backend sends its capabilities
//! again, RFC 5804 2.2; a backend that does not offer it is a failure), `XCLIENT` with the client's origin when the backend advertises it
//! (Dovecot's extension; its answer is ignored), then `AUTHENTICATE "PLAIN"` with the
//! initial response. The backend's `OK` line becomes the client's reply to its own
//! AUTHENTICATE.

use super::imap_login::shorten;
use super::{plain_identities, plain_response, ClientOrigin, LoginResult, ProxyTarget, Step};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Greeting,
    StartTls,
    /// The capabilities the backend sends again once TLS is up.
    TlsGreeting,
    Xclient,
    Auth,
    Done,
}

pub struct SieveLogin {
    st: St,
    target: ProxyTarget,
    origin: Option<ClientOrigin>,
    xclient: bool,
    starttls: bool,
}

/// A response's status word, upper-cased, and the rest after it.
fn status(text: &str) -> Option<(&'static str, &str)> {
    for word in ["OK", "NO", "BYE"] {
        let Some(head) = text.get(..word.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(word) {
            continue;
        }
        let rest = text.get(word.len()..).unwrap_or("");
        if rest.is_empty() {
            return Some((word, rest));
        }
        if let Some(r) = rest.strip_prefix(' ') {
            return Some((word, r));
        }
    }
    None
}

/// The capability a line names: its first quoted string (`"STARTTLS"`, `"SASL" "PLAIN"`).
fn capability_name(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('"')?;
    rest.get(..rest.find('"')?)
}

impl SieveLogin {
    /// `origin`: where the client comes from, sent as XCLIENT when the backend offers it.
    pub fn new(target: ProxyTarget, origin: Option<ClientOrigin>) -> SieveLogin {
        SieveLogin {
            st: St::Greeting,
            target,
            origin,
            xclient: false,
            starttls: false,
        }
    }

    /// Feeds one backend line (without CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        match self.st {
            St::Greeting | St::TlsGreeting => match status(text) {
                Some(("OK", _)) => {
                    if self.st == St::Greeting && self.target.tls == super::ProxyTls::StartTls {
                        if !self.starttls {
                            return self.fail("backend does not offer STARTTLS".into());
                        }
                        self.st = St::StartTls;
                        return Step::Send(b"STARTTLS\r\n".to_vec());
                    }
                    self.after_greeting()
                }
                Some(_) => self.fail(format!("backend refused: {}", shorten(text))),
                None => {
                    // A capability line (or a literal's content: nothing to act on).
                    match capability_name(text) {
                        Some(c) if c.eq_ignore_ascii_case("XCLIENT") => self.xclient = true,
                        Some(c) if c.eq_ignore_ascii_case("STARTTLS") => self.starttls = true,
                        _ => {}
                    }
                    Step::Wait
                }
            },
            St::StartTls => match status(text) {
                Some(("OK", _)) => {
                    // Capabilities before TLS are not to be believed after it.
                    self.xclient = false;
                    self.st = St::TlsGreeting;
                    Step::StartTls
                }
                _ => self.fail(format!("STARTTLS refused: {}", shorten(text))),
            },
            St::Xclient => match status(text) {
                // Trusted or not, the login goes on.
                Some(("OK" | "NO", _)) => self.login(),
                _ => self.fail(format!("XCLIENT: {}", shorten(text))),
            },
            St::Auth => self.auth_reply(text),
            St::Done => Step::Wait,
        }
    }

    /// TLS is up (after [`Step::StartTls`]): the backend's capabilities come again.
    pub fn tls_started(&mut self) -> Step {
        Step::Wait
    }

    fn after_greeting(&mut self) -> Step {
        match (&self.origin, self.xclient) {
            (Some(o), true) => {
                self.st = St::Xclient;
                Step::Send(
                    format!(
                        "XCLIENT ADDR={} PORT={} SESSION={} TTL=5\r\n",
                        o.remote.ip(),
                        o.remote.port(),
                        o.session_id
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric() || "+/=-_".contains(*c))
                            .collect::<String>()
                    )
                    .into_bytes(),
                )
            }
            _ => self.login(),
        }
    }

    fn login(&mut self) -> Step {
        let Some(pw) = self.target.password.as_deref() else {
            return self.fail(
                "no password to give the backend (a non-plaintext mechanism and no pass field)"
                    .into(),
            );
        };
        let (authz, authc) = plain_identities(&self.target);
        self.st = St::Auth;
        // base64 needs no quoting; ManageSieve takes the initial response inline.
        Step::Send(
            format!(
                "AUTHENTICATE \"PLAIN\" \"{}\"\r\n",
                plain_response(authz, authc, pw)
            )
            .into_bytes(),
        )
    }

    fn auth_reply(&mut self, text: &str) -> Step {
        self.st = St::Done;
        match status(text) {
            Some(("OK", _)) => Step::Done(LoginResult::Ok {
                reply: text.to_string(),
            }),
            Some(("NO", rest)) if is_temporary(rest) => Step::Done(LoginResult::TempFail {
                reason: format!("backend: {}", shorten(text)),
            }),
            Some(("NO", _)) => Step::Done(LoginResult::AuthFailed {
                reply: text.to_string(),
            }),
            // BYE, or a challenge PLAIN with an initial response never gets.
            _ => Step::Done(LoginResult::TempFail {
                reason: format!("backend: {}", shorten(text)),
            }),
        }
    }

    fn fail(&mut self, reason: String) -> Step {
        self.st = St::Done;
        Step::Done(LoginResult::TempFail { reason })
    }
}

/// RFC 5804's response codes that say "not now" rather than "wrong password".
fn is_temporary(rest: &str) -> bool {
    let upper = rest.to_ascii_uppercase();
    upper.starts_with("(TRYLATER") || upper.starts_with("(QUOTA")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyTls;

    fn target() -> ProxyTarget {
        let mut t = ProxyTarget::new("10.0.0.1", Some(4190), "alice");
        t.password = Some("secret".into());
        t
    }

    fn sent(step: Step) -> String {
        match step {
            Step::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    const CAPS: [&[u8]; 4] = [
        b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"",
        b"\"SASL\" \"PLAIN LOGIN\"",
        b"\"SIEVE\" \"fileinto reject\"",
        b"\"VERSION\" \"1.0\"",
    ];

    #[test]
    fn greeting_then_authenticate_plain() {
        let mut m = SieveLogin::new(target(), None);
        for c in CAPS {
            assert_eq!(m.on_line(c), Step::Wait);
        }
        // "\0alice\0secret"
        assert_eq!(
            sent(m.on_line(b"OK \"Dovecot ready.\"")),
            "AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\n"
        );
        assert_eq!(
            m.on_line(b"OK \"Logged in.\""),
            Step::Done(LoginResult::Ok {
                reply: "OK \"Logged in.\"".into()
            })
        );
        assert_eq!(m.on_line(b"anything"), Step::Wait);
    }

    #[test]
    fn wrong_password_is_an_auth_failure_and_trylater_is_not() {
        let mut m = SieveLogin::new(target(), None);
        m.on_line(b"OK hi");
        assert_eq!(
            m.on_line(b"NO \"Authentication failed.\""),
            Step::Done(LoginResult::AuthFailed {
                reply: "NO \"Authentication failed.\"".into()
            })
        );
        for (lines, what) in [
            (&[&b"OK hi"[..], b"NO (TRYLATER) \"later\""][..], "trylater"),
            (&[b"OK hi", b"no (trylater) x"], "lower case"),
            (&[b"OK hi", b"BYE \"shutting down\""], "bye"),
            (&[b"OK hi", b"\"\""], "a challenge"),
            (&[b"BYE \"too many\""], "greeting bye"),
            (&[b"NO x"], "greeting no"),
            (&[b"OKAY"], "no status"),
        ] {
            let mut m = SieveLogin::new(target(), None);
            let mut last = Step::Wait;
            for l in lines {
                last = m.on_line(l);
            }
            if what == "no status" {
                // Not a status word: a capability line, still waiting for OK.
                assert_eq!(last, Step::Wait);
                continue;
            }
            assert!(
                matches!(last, Step::Done(LoginResult::TempFail { .. })),
                "{what}: {last:?}"
            );
        }
        // No password known: nothing is sent.
        let mut t = target();
        t.password = None;
        let mut m = SieveLogin::new(t, None);
        assert!(matches!(
            m.on_line(b"OK hi"),
            Step::Done(LoginResult::TempFail { .. })
        ));
    }

    #[test]
    fn starttls_waits_for_the_capabilities_again() {
        let mut t = target();
        t.tls = ProxyTls::StartTls;
        t.master = Some("master".into());
        t.password = Some("mpass".into());
        let mut m = SieveLogin::new(t.clone(), None);
        m.on_line(b"\"STARTTLS\"");
        assert_eq!(sent(m.on_line(b"OK ready")), "STARTTLS\r\n");
        assert_eq!(
            m.on_line(b"OK \"Begin TLS negotiation now.\""),
            Step::StartTls
        );
        assert_eq!(m.tls_started(), Step::Wait);
        for c in CAPS {
            assert_eq!(m.on_line(c), Step::Wait);
        }
        // "alice\0master\0mpass": the master user logs in for destuser.
        assert_eq!(
            sent(m.on_line(b"OK \"TLS negotiation successful.\"")),
            "AUTHENTICATE \"PLAIN\" \"YWxpY2UAbWFzdGVyAG1wYXNz\"\r\n"
        );
        let mut m = SieveLogin::new(t.clone(), None);
        m.on_line(b"\"STARTTLS\"");
        m.on_line(b"OK ready");
        assert!(matches!(
            m.on_line(b"NO \"TLS support isn't enabled.\""),
            Step::Done(LoginResult::TempFail { .. })
        ));
        // A backend that does not offer STARTTLS is not asked.
        let mut m = SieveLogin::new(t, None);
        assert!(matches!(
            m.on_line(b"OK ready"),
            Step::Done(LoginResult::TempFail { .. })
        ));
    }

    #[test]
    fn xclient_only_when_offered() {
        let origin = ClientOrigin {
            remote: "192.0.2.7:5555".parse().unwrap(),
            local: "192.0.2.1:4190".parse().unwrap(),
            session_id: "ab\"c\r\n".into(),
        };
        let mut m = SieveLogin::new(target(), Some(origin.clone()));
        m.on_line(b"\"XCLIENT\"");
        assert_eq!(
            sent(m.on_line(b"OK hi")),
            "XCLIENT ADDR=192.0.2.7 PORT=5555 SESSION=abc TTL=5\r\n"
        );
        // An untrusting backend says NO: the login goes on.
        assert!(sent(m.on_line(b"NO \"not trusted\"")).starts_with("AUTHENTICATE"));
        let mut m = SieveLogin::new(target(), Some(origin));
        assert!(sent(m.on_line(b"OK hi")).starts_with("AUTHENTICATE"));
    }
}
