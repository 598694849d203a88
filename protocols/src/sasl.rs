//! SASL PLAIN (RFC 4616) and LOGIN decoding, shared by IMAP AUTHENTICATE and POP3 AUTH.
//!
//! Pure: no I/O. A protocol session starts a [`SaslExchange`] with the mechanism name and the
//! optional initial response (SASL-IR, RFC 4959 / RFC 5034), sends each [`SaslStep::Challenge`]
//! to the client (already base64, the protocol adds its `+ ` prefix), feeds each client line back
//! through [`SaslExchange::step`], and gets [`Credentials`] at [`SaslStep::Done`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// LOGIN's first challenge, base64 of "Username:".
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// LOGIN's second challenge, base64 of "Password:".
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// The largest decoded response accepted; a client's line limit normally bounds it first.
pub const MAX_RESPONSE_LEN: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("Invalid base64 data in continued response")]
    Base64,
    #[error("Response is not valid UTF-8")]
    NotUtf8,
    #[error("Invalid {mechanism} response: {reason}")]
    Malformed {
        mechanism: &'static str,
        reason: &'static str,
    },
    #[error("Response too long")]
    TooLong,
    #[error("Authentication aborted by client.")]
    Cancelled,
    #[error("Unsupported authentication mechanism.")]
    UnsupportedMechanism,
    #[error("Exchange already finished")]
    Finished,
}

/// Mechanisms we offer. Both carry a plaintext password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// The mechanisms of an `auth_mechanisms` setting that we implement, in configured order,
    /// without repeats; names we do not implement are left out.
    pub fn select(names: &[String]) -> Vec<Mechanism> {
        let mut out = Vec::new();
        for m in names.iter().filter_map(|n| Mechanism::parse(n).ok()) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// Parses a mechanism name as a client sends it (case-insensitive).
    pub fn parse(name: &str) -> Result<Mechanism, SaslError> {
        if name.eq_ignore_ascii_case("PLAIN") {
            Ok(Mechanism::Plain)
        } else if name.eq_ignore_ascii_case("LOGIN") {
            Ok(Mechanism::Login)
        } else {
            Err(SaslError::UnsupportedMechanism)
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What the client proved it knows.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity when the client asked for a different one (master users).
    pub authzid: Option<String>,
    /// Authentication identity: the user name.
    pub authcid: String,
    pub password: String,
}

// Never print a password, even in a debug log.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Decodes base64 as SASL sends it; surrounding whitespace is tolerated.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, SaslError> {
    let s = s.trim();
    // Decoded length is at most 3/4 of the text: refuse before allocating.
    if s.len() / 4 * 3 > MAX_RESPONSE_LEN {
        return Err(SaslError::TooLong);
    }
    STANDARD.decode(s).map_err(|_| SaslError::Base64)
}

pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes a PLAIN message (already base64-decoded): `[authzid] NUL authcid NUL passwd`.
pub fn decode_plain_raw(msg: &[u8]) -> Result<Credentials, SaslError> {
    const M: &str = "PLAIN";
    let mut parts = msg.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed {
            mechanism: M,
            reason: "expected authzid NUL authcid NUL password",
        });
    };
    if authcid.is_empty() {
        return Err(SaslError::Malformed {
            mechanism: M,
            reason: "empty authentication identity",
        });
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::NotUtf8);
    let authzid = text(authzid)?;
    Ok(Credentials {
        authzid: (!authzid.is_empty()).then_some(authzid),
        authcid: text(authcid)?,
        password: text(password)?,
    })
}

/// Decodes a base64 PLAIN response.
pub fn decode_plain(b64: &str) -> Result<Credentials, SaslError> {
    decode_plain_raw(&decode_base64(b64)?)
}

/// One step of an exchange, for the protocol to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send this challenge (base64, possibly empty) and feed the client's next line to `step`.
    Challenge(String),
    Done(Credentials),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    PlainAwaitingResponse,
    LoginAwaitingUser,
    LoginAwaitingPassword { user: String },
    Finished,
}

/// A server-side SASL exchange for PLAIN or LOGIN.
#[derive(Clone, Debug)]
pub struct SaslExchange {
    mechanism: Mechanism,
    state: State,
}

impl SaslExchange {
    /// Starts an exchange. `initial` is the SASL-IR initial response as the client sent it:
    /// base64, or `=` for an empty one (RFC 4959 / RFC 5034).
    pub fn start(
        mechanism: Mechanism,
        initial: Option<&str>,
    ) -> Result<(SaslExchange, SaslStep), SaslError> {
        let state = match mechanism {
            Mechanism::Plain => State::PlainAwaitingResponse,
            Mechanism::Login => State::LoginAwaitingUser,
        };
        let mut ex = SaslExchange { mechanism, state };
        let step = match initial {
            Some(ir) => ex.respond(ir, true)?,
            None => ex.challenge(),
        };
        Ok((ex, step))
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feeds one client line (without CRLF). `*` cancels the exchange.
    pub fn step(&mut self, line: &str) -> Result<SaslStep, SaslError> {
        self.respond(line, false)
    }

    fn challenge(&self) -> SaslStep {
        SaslStep::Challenge(
            match self.state {
                State::LoginAwaitingUser => LOGIN_USERNAME_CHALLENGE,
                State::LoginAwaitingPassword { .. } => LOGIN_PASSWORD_CHALLENGE,
                _ => "",
            }
            .to_string(),
        )
    }

    fn respond(&mut self, line: &str, initial: bool) -> Result<SaslStep, SaslError> {
        let line = line.trim();
        if line == "*" {
            self.state = State::Finished;
            return Err(SaslError::Cancelled);
        }
        let decoded = if initial && line == "=" {
            Vec::new()
        } else {
            match decode_base64(line) {
                Ok(d) => d,
                Err(e) => {
                    self.state = State::Finished;
                    return Err(e);
                }
            }
        };
        let result = self.advance(decoded);
        if result.is_err() {
            self.state = State::Finished;
        }
        result
    }

    fn advance(&mut self, decoded: Vec<u8>) -> Result<SaslStep, SaslError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::PlainAwaitingResponse => Ok(SaslStep::Done(decode_plain_raw(&decoded)?)),
            State::LoginAwaitingUser => {
                let user = String::from_utf8(decoded).map_err(|_| SaslError::NotUtf8)?;
                if user.is_empty() {
                    return Err(SaslError::Malformed {
                        mechanism: "LOGIN",
                        reason: "empty user name",
                    });
                }
                self.state = State::LoginAwaitingPassword { user };
                Ok(self.challenge())
            }
            State::LoginAwaitingPassword { user } => {
                let password = String::from_utf8(decoded).map_err(|_| SaslError::NotUtf8)?;
                Ok(SaslStep::Done(Credentials {
                    authzid: None,
                    authcid: user,
                    password,
                }))
            }
            State::Finished => Err(SaslError::Finished),
        }
    }
}

/// The body of the `sasl` fuzz target (fuzz/), here so a normal test replays its seed corpus.
pub mod fuzzing {
    use super::*;

    /// The first byte picks the mechanism (bit 0) and whether the first line is an initial
    /// response (bit 1); the rest, split at LF, are the client's lines. Nothing may panic, an
    /// exchange that ended stays ended, and a decoded PLAIN message re-encodes to its bytes.
    pub fn exercise(data: &[u8]) {
        let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
        let mechanism = if mode & 1 == 0 {
            Mechanism::Plain
        } else {
            Mechanism::Login
        };
        let lines: Vec<String> = rest
            .split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
            .collect();
        let mut lines = lines.iter();
        let initial = if mode & 2 != 0 { lines.next() } else { None };
        if let Ok((exchange, step)) = SaslExchange::start(mechanism, initial.map(String::as_str)) {
            drive(exchange, step, &mut lines);
        }

        if let Ok(creds) = decode_plain_raw(rest) {
            let mut again = creds.authzid.clone().unwrap_or_default().into_bytes();
            again.push(0);
            again.extend_from_slice(creds.authcid.as_bytes());
            again.push(0);
            again.extend_from_slice(creds.password.as_bytes());
            assert_eq!(again, rest, "PLAIN message does not re-encode to its bytes");
            // Debug never shows the password: it reads the same whatever the password is.
            let other = Credentials {
                password: String::from("x"),
                ..creds.clone()
            };
            assert_eq!(format!("{creds:?}"), format!("{other:?}"));
        }
        // Within the length decode_base64 accepts (it bounds 3/4 of the text).
        if rest.len() + 2 <= MAX_RESPONSE_LEN {
            assert_eq!(decode_base64(&encode_base64(rest)).as_deref(), Ok(rest));
        }
    }

    /// Steps the exchange through the lines; once it ended (done or failed), it stays ended.
    fn drive<'a>(
        mut exchange: SaslExchange,
        mut step: SaslStep,
        lines: &mut impl Iterator<Item = &'a String>,
    ) {
        loop {
            match step {
                SaslStep::Done(_) => break,
                SaslStep::Challenge(_) => {
                    let Some(line) = lines.next() else {
                        return;
                    };
                    match exchange.step(line) {
                        Ok(next) => step = next,
                        Err(_) => break,
                    }
                }
            }
        }
        assert_eq!(exchange.step("AAAA"), Err(SaslError::Finished));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(authzid: Option<&str>, user: &str, pw: &str) -> Credentials {
        Credentials {
            authzid: authzid.map(str::to_string),
            authcid: user.into(),
            password: pw.into(),
        }
    }

    #[test]
    fn plain_without_authzid() {
        let b64 = encode_base64(b"\0demo\0secret");
        assert_eq!(decode_plain(&b64).unwrap(), creds(None, "demo", "secret"));
    }

    #[test]
    fn plain_with_authzid_and_empty_password() {
        let b64 = encode_base64(b"admin\0demo\0");
        assert_eq!(
            decode_plain(&b64).unwrap(),
            creds(Some("admin"), "demo", "")
        );
    }

    #[test]
    fn plain_malformed() {
        for raw in [&b"demo"[..], b"\0demo", b"\0\0pw", b"a\0b\0c\0d"] {
            assert!(
                matches!(
                    decode_plain(&encode_base64(raw)),
                    Err(SaslError::Malformed { .. })
                ),
                "{raw:?}"
            );
        }
        assert_eq!(decode_plain("not base64!"), Err(SaslError::Base64));
        assert_eq!(
            decode_plain(&encode_base64(b"\0demo\0\xff")),
            Err(SaslError::NotUtf8)
        );
    }

    #[test]
    fn fuzz_seed_corpus_replays() {
        let seeds = crate::lmtp::fuzzing::seeds("sasl");
        assert!(seeds.len() >= 4, "only {} seeds", seeds.len());
        for seed in &seeds {
            for cut in 0..=seed.len() {
                fuzzing::exercise(&seed[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn fuzz_body_on_random_bytes(data in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            fuzzing::exercise(&data);
        }
    }

    #[test]
    fn too_long_refused_before_decoding() {
        let long = "A".repeat(MAX_RESPONSE_LEN * 2);
        assert_eq!(decode_base64(&long), Err(SaslError::TooLong));
    }

    #[test]
    fn plain_exchange_with_and_without_initial_response() {
        let ir = encode_base64(b"\0demo\0pw");
        let (_, step) = SaslExchange::start(Mechanism::Plain, Some(&ir)).unwrap();
        assert_eq!(step, SaslStep::Done(creds(None, "demo", "pw")));

        let (mut ex, step) = SaslExchange::start(Mechanism::Plain, None).unwrap();
        assert_eq!(step, SaslStep::Challenge(String::new()));
        assert_eq!(
            ex.step(&ir).unwrap(),
            SaslStep::Done(creds(None, "demo", "pw"))
        );
        assert_eq!(ex.step(&ir), Err(SaslError::Finished));
    }

    #[test]
    fn plain_empty_initial_response_is_malformed() {
        assert!(matches!(
            SaslExchange::start(Mechanism::Plain, Some("=")),
            Err(SaslError::Malformed { .. })
        ));
    }

    #[test]
    fn login_two_steps() {
        let (mut ex, step) = SaslExchange::start(Mechanism::Login, None).unwrap();
        assert_eq!(step, SaslStep::Challenge(LOGIN_USERNAME_CHALLENGE.into()));
        assert_eq!(
            ex.step(&encode_base64(b"demo")).unwrap(),
            SaslStep::Challenge(LOGIN_PASSWORD_CHALLENGE.into())
        );
        assert_eq!(
            ex.step(&encode_base64(b"pw")).unwrap(),
            SaslStep::Done(creds(None, "demo", "pw"))
        );
    }

    #[test]
    fn login_with_initial_user() {
        let (mut ex, step) =
            SaslExchange::start(Mechanism::Login, Some(&encode_base64(b"demo"))).unwrap();
        assert_eq!(step, SaslStep::Challenge(LOGIN_PASSWORD_CHALLENGE.into()));
        assert_eq!(
            ex.step("").unwrap(),
            SaslStep::Done(creds(None, "demo", ""))
        );
    }

    #[test]
    fn challenges_decode_to_prompts() {
        assert_eq!(
            decode_base64(LOGIN_USERNAME_CHALLENGE).unwrap(),
            b"Username:"
        );
        assert_eq!(
            decode_base64(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            b"Password:"
        );
    }

    #[test]
    fn cancel_and_bad_base64_finish_the_exchange() {
        let (mut ex, _) = SaslExchange::start(Mechanism::Login, None).unwrap();
        assert_eq!(ex.step("*"), Err(SaslError::Cancelled));
        assert_eq!(ex.step(&encode_base64(b"x")), Err(SaslError::Finished));

        let (mut ex, _) = SaslExchange::start(Mechanism::Login, None).unwrap();
        assert_eq!(ex.step("%%%"), Err(SaslError::Base64));
        assert_eq!(ex.step(&encode_base64(b"x")), Err(SaslError::Finished));
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(Mechanism::parse("plain"), Ok(Mechanism::Plain));
        assert_eq!(Mechanism::parse("LOGIN"), Ok(Mechanism::Login));
        assert_eq!(
            Mechanism::parse("CRAM-MD5"),
            Err(SaslError::UnsupportedMechanism)
        );
    }

    #[test]
    fn debug_hides_password() {
        let s = format!("{:?}", creds(None, "demo", "hunter2"));
        assert!(!s.contains("hunter2"));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_exchanges_never_panic(
            mech in prop::sample::select(vec![Mechanism::Plain, Mechanism::Login]),
            ir in proptest::option::of("[A-Za-z0-9+/=*]{0,40}"),
            lines in proptest::collection::vec("[A-Za-z0-9+/=* ]{0,40}", 0..4),
        ) {
            if let Ok((mut ex, _)) = SaslExchange::start(mech, ir.as_deref()) {
                for l in &lines {
                    let _ = ex.step(l);
                }
            }
        }

        #[test]
        fn plain_round_trips(authcid in "[^\\x00]{1,20}", password in "[^\\x00]{0,20}") {
            let b64 = encode_base64(format!("\0{authcid}\0{password}").as_bytes());
            let creds = decode_plain(&b64).unwrap();
            prop_assert_eq!(creds.authcid, authcid);
            prop_assert_eq!(creds.password, password);
        }
    }
}
