//! The proxy's POP3 login at the backend, as a state machine over the backend's lines:
//! greeting, optional STLS, `XCLIENT` with the client's origin (its answer is ignored: a
//! backend that does not trust us says -ERR and logs the proxy's address instead), then
//! `USER`/`PASS`, or `AUTH PLAIN` for a master user.

use super::imap_login::shorten;
use super::{plain_identities, plain_response, ClientOrigin, LoginResult, ProxyTarget, Step};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Greeting,
    Stls,
    Xclient,
    User,
    Pass,
    Done,
}

pub struct Pop3Login {
    st: St,
    target: ProxyTarget,
    origin: Option<ClientOrigin>,
}

impl Pop3Login {
    pub fn new(target: ProxyTarget, origin: Option<ClientOrigin>) -> Pop3Login {
        Pop3Login {
            st: St::Greeting,
            target,
            origin,
        }
    }

    pub fn on_line(&mut self, line: &[u8]) -> Step {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let ok = text == "+OK" || text.starts_with("+OK ");
        match self.st {
            St::Greeting if !ok => self.fail(format!("unexpected greeting: {}", shorten(text))),
            St::Greeting if self.target.tls == super::ProxyTls::StartTls => {
                self.st = St::Stls;
                Step::Send(b"STLS\r\n".to_vec())
            }
            St::Greeting => self.after_tls(),
            St::Stls if ok => Step::StartTls,
            St::Stls => self.fail(format!("STLS refused: {}", shorten(text))),
            // Trusted or not, the login goes on.
            St::Xclient => self.login(),
            St::User if ok => {
                self.st = St::Pass;
                match self.target.password.as_deref() {
                    Some(pw) if !has_line_break(pw) => {
                        Step::Send(format!("PASS {pw}\r\n").into_bytes())
                    }
                    _ => self.fail("no password that PASS can carry".into()),
                }
            }
            St::User => self.fail(format!("USER refused: {}", shorten(text))),
            St::Pass if ok => {
                self.st = St::Done;
                Step::Done(LoginResult::Ok {
                    reply: text.to_string(),
                })
            }
            St::Pass => {
                self.st = St::Done;
                let upper = text.to_ascii_uppercase();
                // RFC 3206: [SYS/TEMP] and [IN-USE] are "not now", not "wrong password".
                if upper.contains("[SYS/")
                    || upper.contains("[IN-USE]")
                    || !text.starts_with("-ERR")
                {
                    Step::Done(LoginResult::TempFail {
                        reason: format!("backend: {}", shorten(text)),
                    })
                } else {
                    Step::Done(LoginResult::AuthFailed {
                        reply: text.to_string(),
                    })
                }
            }
            St::Done => Step::Wait,
        }
    }

    /// TLS is up (after [`Step::StartTls`]).
    pub fn tls_started(&mut self) -> Step {
        self.after_tls()
    }

    fn after_tls(&mut self) -> Step {
        match &self.origin {
            Some(o) => {
                self.st = St::Xclient;
                Step::Send(
                    format!(
                        "XCLIENT ADDR={} PORT={} SESSION={}\r\n",
                        o.remote.ip(),
                        o.remote.port(),
                        o.session_id
                            .chars()
                            .filter(|c| c.is_ascii_graphic())
                            .collect::<String>()
                    )
                    .into_bytes(),
                )
            }
            None => self.login(),
        }
    }

    fn login(&mut self) -> Step {
        let Some(pw) = self.target.password.clone() else {
            return self.fail(
                "no password to give the backend (a non-plaintext mechanism and no pass field)"
                    .into(),
            );
        };
        if self.target.master.is_some() {
            let (authz, authc) = plain_identities(&self.target);
            self.st = St::Pass;
            return Step::Send(
                format!("AUTH PLAIN {}\r\n", plain_response(authz, authc, &pw)).into_bytes(),
            );
        }
        let user = &self.target.destuser;
        if has_line_break(user) || user.contains(' ') {
            return self.fail("a user name USER cannot carry".into());
        }
        self.st = St::User;
        Step::Send(format!("USER {user}\r\n").into_bytes())
    }

    fn fail(&mut self, reason: String) -> Step {
        self.st = St::Done;
        Step::Done(LoginResult::TempFail { reason })
    }
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyTls;

    fn target() -> ProxyTarget {
        let mut t = ProxyTarget::new("10.0.0.1", Some(110), "bob");
        t.password = Some("pw 1".into());
        t
    }

    fn sent(step: Step) -> String {
        match step {
            Step::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn xclient_user_pass() {
        let origin = ClientOrigin {
            remote: "192.0.2.7:5555".parse().unwrap(),
            local: "192.0.2.1:110".parse().unwrap(),
            session_id: "s1".into(),
        };
        let mut m = Pop3Login::new(target(), Some(origin));
        assert_eq!(
            sent(m.on_line(b"+OK Dovecot ready.")),
            "XCLIENT ADDR=192.0.2.7 PORT=5555 SESSION=s1\r\n"
        );
        // An untrusting backend refuses XCLIENT: the login goes on.
        assert_eq!(sent(m.on_line(b"-ERR Not trusted")), "USER bob\r\n");
        assert_eq!(sent(m.on_line(b"+OK")), "PASS pw 1\r\n");
        assert_eq!(
            m.on_line(b"+OK Logged in."),
            Step::Done(LoginResult::Ok {
                reply: "+OK Logged in.".into()
            })
        );
    }

    #[test]
    fn wrong_password_and_temporary_failures() {
        let mut m = Pop3Login::new(target(), None);
        m.on_line(b"+OK hi");
        m.on_line(b"+OK");
        assert_eq!(
            m.on_line(b"-ERR [AUTH] Authentication failed."),
            Step::Done(LoginResult::AuthFailed {
                reply: "-ERR [AUTH] Authentication failed.".into()
            })
        );
        for (lines, what) in [
            (&[&b"-ERR go away"[..]][..], "greeting"),
            (&[b"+OK hi", b"+OK", b"-ERR [SYS/TEMP] try later"], "temp"),
            (&[b"+OK hi", b"+OK", b"-ERR [IN-USE] locked"], "in use"),
            (&[b"+OK hi", b"-ERR no USER here"], "user"),
            (&[b"+OK hi", b"+OK", b"garbage"], "garbage"),
        ] {
            let mut m = Pop3Login::new(target(), None);
            let mut last = Step::Wait;
            for l in lines {
                last = m.on_line(l);
            }
            assert!(
                matches!(last, Step::Done(LoginResult::TempFail { .. })),
                "{what}: {last:?}"
            );
        }
    }

    #[test]
    fn stls_and_master_user() {
        let mut t = target();
        t.tls = ProxyTls::StartTls;
        t.master = Some("m".into());
        t.password = Some("mp".into());
        let mut m = Pop3Login::new(t, None);
        assert_eq!(sent(m.on_line(b"+OK hi")), "STLS\r\n");
        assert_eq!(m.on_line(b"+OK Begin TLS"), Step::StartTls);
        // "bob\0m\0mp"
        assert_eq!(sent(m.tls_started()), "AUTH PLAIN Ym9iAG0AbXA=\r\n");
        assert!(matches!(
            m.on_line(b"+OK Logged in."),
            Step::Done(LoginResult::Ok { .. })
        ));
    }

    #[test]
    fn line_breaks_never_reach_the_backend() {
        let mut t = target();
        t.destuser = "bob\r\nDELE 1".into();
        let mut m = Pop3Login::new(t, None);
        assert!(matches!(
            m.on_line(b"+OK hi"),
            Step::Done(LoginResult::TempFail { .. })
        ));
        let mut t = target();
        t.password = Some("x\r\nDELE 1".into());
        let mut m = Pop3Login::new(t, None);
        m.on_line(b"+OK hi");
        assert!(matches!(
            m.on_line(b"+OK"),
            Step::Done(LoginResult::TempFail { .. })
        ));
    }
}
