//! SASL exchanges shared by IMAP AUTHENTICATE, POP3 AUTH and ManageSieve AUTHENTICATE: PLAIN
//! (RFC 4616) and LOGIN, which carry the password, and CRAM-MD5 (RFC 2195) and SCRAM-SHA-1 /
//! SCRAM-SHA-256 (RFC 5802 / RFC 7677), which prove it without sending it.
//!
//! Pure: no I/O. A protocol session starts a [`SaslExchange`] with the mechanism name and the
//! optional initial response (SASL-IR, RFC 4959 / RFC 5034), sends each [`SaslStep::Challenge`]
//! to the client (already base64, the protocol adds its `+ ` prefix), feeds each client line back
//! through [`SaslExchange::step`]. A challenge-response mechanism asks for the passdb's stored
//! credential with [`SaslStep::NeedCredentials`] (answered through [`SaslExchange::supply`]) and
//! ends in [`SaslStep::Verified`]; PLAIN and LOGIN end in [`SaslStep::Done`] with the password.
//! [`drive`] runs those backend steps for a protocol.

pub mod cram;
mod drive;
pub mod oauth;
pub mod scram;

pub use drive::{advance, Resolved};

use crate::backend::{Credential, CredentialKind, CredentialsLookup, TokenCheck};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use scram::{ScramFinal, ScramHash, ScramSecret, ScramServer};

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

/// Mechanisms we implement; `auth_mechanisms` picks those offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
    ScramSha1,
    ScramSha256,
    OAuthBearer,
    XOAuth2,
    External,
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
        Mechanism::ALL
            .into_iter()
            .find(|m| name.eq_ignore_ascii_case(m.as_str()))
            .ok_or(SaslError::UnsupportedMechanism)
    }
    pub const ALL: [Mechanism; 8] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
        Mechanism::OAuthBearer,
        Mechanism::XOAuth2,
        Mechanism::External,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::External => "EXTERNAL",
        }
    }

    /// Whether to offer the mechanism on this connection: plaintext ones only where
    /// plaintext authentication is allowed, EXTERNAL only with a verified client certificate.
    pub fn offered(&self, plaintext_allowed: bool, conn: &crate::backend::ConnInfo) -> bool {
        match self {
            Mechanism::External => conn.tls_client_user.is_some(),
            m => plaintext_allowed || !m.carries_plaintext(),
        }
    }
    /// Whether the password (or a bearer token, as good as one) crosses the wire readable:
    /// such mechanisms are refused where plaintext authentication is (no TLS and not
    /// loopback, `ssl = required`).
    pub fn carries_plaintext(&self) -> bool {
        matches!(
            self,
            Mechanism::Plain | Mechanism::Login | Mechanism::OAuthBearer | Mechanism::XOAuth2
        )
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
    /// PLAIN/LOGIN: check this password with the backend.
    Done(Credentials),
    /// Look up what the passdb stores for this user and hand it to [`SaslExchange::supply`].
    NeedCredentials { user: String, kind: CredentialKind },
    /// Ask the authorization server about this bearer token, hand the answer to
    /// [`SaslExchange::supply_token`].
    NeedToken { user: String, token: String },
    /// EXTERNAL: log in as the connection's certificate user, if `authzid` (empty = none)
    /// names no one else.
    External { authzid: String },
    /// The mechanism checked the proof itself: finish the login with the backend.
    Verified(Verified),
}

/// The end of a challenge-response exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user as the passdb lookup named it (canonical), or as the client sent it.
    pub user: String,
    pub authzid: Option<String>,
    pub result: ProofResult,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofResult {
    Ok,
    /// Wrong proof, unknown user, or no credential the mechanism can use.
    Failed,
    /// The passdb could not be read.
    TempFail(String),
}

#[derive(Clone, Debug)]
enum State {
    PlainAwaitingResponse,
    LoginAwaitingUser,
    LoginAwaitingPassword {
        user: String,
    },
    CramAwaitingResponse {
        challenge: String,
    },
    CramAwaitingCredentials {
        challenge: String,
        user: String,
        digest: String,
    },
    ScramAwaitingFirst(ScramHash),
    ScramAwaitingCredentials(ScramHash, Box<scram::ClientFirst>),
    ScramAwaitingFinal {
        server: Box<ScramServer>,
        user: String,
        authzid: Option<String>,
    },
    OAuthAwaitingResponse,
    ExternalAwaitingAuthzid,
    OAuthAwaitingToken {
        user: String,
    },
    /// The error JSON was sent; the client's answer ends the exchange in failure.
    OAuthAwaitingErrorAck {
        user: String,
    },
    /// Server-final sent; RFC 5802 has the client answer with an empty response.
    ScramAwaitingAck {
        user: String,
        authzid: Option<String>,
    },
    Finished,
}

/// The host name in CRAM-MD5's challenge and APOP's timestamp.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    })
}

/// A nonce of printable characters without `,` (base64 of random bytes).
fn server_nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    encode_base64(&bytes)
}

/// A server-side SASL exchange.
#[derive(Clone, Debug)]
pub struct SaslExchange {
    mechanism: Mechanism,
    state: State,
    /// The user name once the client named it, for logs.
    user: Option<String>,
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
            Mechanism::CramMd5 => {
                // The server speaks first: an initial response makes no sense (RFC 2195).
                if initial.is_some() {
                    return Err(SaslError::Malformed {
                        mechanism: "CRAM-MD5",
                        reason: "no initial response allowed",
                    });
                }
                State::CramAwaitingResponse {
                    challenge: cram::timestamp(hostname()),
                }
            }
            Mechanism::ScramSha1 => State::ScramAwaitingFirst(ScramHash::Sha1),
            Mechanism::ScramSha256 => State::ScramAwaitingFirst(ScramHash::Sha256),
            Mechanism::OAuthBearer | Mechanism::XOAuth2 => State::OAuthAwaitingResponse,
            Mechanism::External => State::ExternalAwaitingAuthzid,
        };
        let mut ex = SaslExchange {
            mechanism,
            state,
            user: None,
        };
        let step = match initial {
            Some(ir) => ex.respond(ir, true)?,
            None => ex.challenge(),
        };
        Ok((ex, step))
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user name the client gave, once it did (for logs).
    pub fn user(&self) -> Option<String> {
        self.user.clone()
    }

    fn note_user(&mut self, step: &SaslStep) {
        let user = match step {
            SaslStep::Done(c) => &c.authcid,
            SaslStep::NeedCredentials { user, .. } => user,
            SaslStep::NeedToken { user, .. } => user,
            SaslStep::External { authzid } => authzid,
            SaslStep::Verified(v) => &v.user,
            SaslStep::Challenge(_) => return,
        };
        self.user = Some(user.clone());
    }

    /// Feeds one client line (without CRLF). `*` cancels the exchange.
    pub fn step(&mut self, line: &str) -> Result<SaslStep, SaslError> {
        self.respond(line, false)
    }

    fn challenge(&self) -> SaslStep {
        SaslStep::Challenge(match &self.state {
            State::LoginAwaitingUser => LOGIN_USERNAME_CHALLENGE.to_string(),
            State::LoginAwaitingPassword { .. } => LOGIN_PASSWORD_CHALLENGE.to_string(),
            State::CramAwaitingResponse { challenge } => encode_base64(challenge.as_bytes()),
            _ => String::new(),
        })
    }

    /// Answers [`SaslStep::NeedToken`] with the authorization server's verdict.
    pub fn supply_token(&mut self, check: TokenCheck) -> Result<SaslStep, SaslError> {
        let State::OAuthAwaitingToken { user } =
            std::mem::replace(&mut self.state, State::Finished)
        else {
            return Err(SaslError::Finished);
        };
        match check {
            TokenCheck::Valid => Ok(SaslStep::Verified(Verified {
                user,
                authzid: None,
                result: ProofResult::Ok,
            })),
            TokenCheck::Invalid => {
                self.state = State::OAuthAwaitingErrorAck { user };
                Ok(SaslStep::Challenge(encode_base64(
                    oauth::error_json("invalid_token").as_bytes(),
                )))
            }
            TokenCheck::TempFail(why) => Ok(SaslStep::Verified(Verified {
                user,
                authzid: None,
                result: ProofResult::TempFail(why),
            })),
        }
    }

    /// Answers [`SaslStep::NeedCredentials`] with the backend's lookup.
    pub fn supply(&mut self, lookup: CredentialsLookup) -> Result<SaslStep, SaslError> {
        let step = self.supply_inner(lookup);
        if let Ok(st) = &step {
            self.note_user(st);
        }
        step
    }

    fn supply_inner(&mut self, lookup: CredentialsLookup) -> Result<SaslStep, SaslError> {
        let (user, credential) = match lookup {
            CredentialsLookup::Found { user, credential } => (Some(user), Some(credential)),
            CredentialsLookup::Unusable { user } => (Some(user), None),
            CredentialsLookup::UnknownUser => (None, None),
            CredentialsLookup::TempFail(why) => {
                let user = match std::mem::replace(&mut self.state, State::Finished) {
                    State::CramAwaitingCredentials { user, .. } => user,
                    State::ScramAwaitingCredentials(_, first) => first.user,
                    _ => return Err(SaslError::Finished),
                };
                return Ok(SaslStep::Verified(Verified {
                    user,
                    authzid: None,
                    result: ProofResult::TempFail(why),
                }));
            }
        };
        match std::mem::replace(&mut self.state, State::Finished) {
            State::CramAwaitingCredentials {
                challenge,
                user: sent,
                digest,
            } => {
                let ok = match &credential {
                    Some(Credential::Plaintext(pw)) => {
                        cram::cram_md5_matches(pw, &challenge, &digest)
                    }
                    _ => false,
                };
                Ok(SaslStep::Verified(Verified {
                    user: user.unwrap_or(sent),
                    authzid: None,
                    result: if ok {
                        ProofResult::Ok
                    } else {
                        ProofResult::Failed
                    },
                }))
            }
            State::ScramAwaitingCredentials(hash, first) => {
                let secret = match credential {
                    Some(Credential::Scram(s)) if s.hash == hash => s,
                    Some(Credential::Plaintext(pw)) => {
                        ScramSecret::generate(hash, &pw, scram::DEFAULT_ITERATIONS)
                    }
                    // Unknown user or no usable secret: go on with a made-up one, so the
                    // exchange looks the same and only fails at the proof.
                    _ => {
                        let mut junk = ScramSecret::generate(hash, "", scram::MIN_ITERATIONS);
                        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut junk.stored_key);
                        junk
                    }
                };
                let first = *first;
                let (sent, authzid) = (first.user.clone(), first.authzid.clone());
                let server = ScramServer::new(secret, first, &server_nonce());
                let challenge = encode_base64(server.server_first().as_bytes());
                self.state = State::ScramAwaitingFinal {
                    server: Box::new(server),
                    user: user.unwrap_or(sent),
                    authzid,
                };
                Ok(SaslStep::Challenge(challenge))
            }
            _ => Err(SaslError::Finished),
        }
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
        match &result {
            Ok(step) => self.note_user(step),
            Err(_) => self.state = State::Finished,
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
            State::ExternalAwaitingAuthzid => {
                let authzid = String::from_utf8(decoded).map_err(|_| SaslError::NotUtf8)?;
                if authzid.contains('\0') {
                    return Err(SaslError::Malformed {
                        mechanism: "EXTERNAL",
                        reason: "NUL in authorization identity",
                    });
                }
                Ok(SaslStep::External { authzid })
            }
            State::OAuthAwaitingResponse => {
                let r = if self.mechanism == Mechanism::XOAuth2 {
                    oauth::parse_xoauth2(&decoded)?
                } else {
                    oauth::parse_oauthbearer(&decoded)?
                };
                self.state = State::OAuthAwaitingToken {
                    user: r.user.clone(),
                };
                Ok(SaslStep::NeedToken {
                    user: r.user,
                    token: r.token,
                })
            }
            State::OAuthAwaitingErrorAck { user } => Ok(SaslStep::Verified(Verified {
                user,
                authzid: None,
                result: ProofResult::Failed,
            })),
            State::CramAwaitingResponse { challenge } => {
                let (user, digest) = cram::parse_response(&decoded)?;
                self.state = State::CramAwaitingCredentials {
                    challenge,
                    user: user.clone(),
                    digest,
                };
                Ok(SaslStep::NeedCredentials {
                    user,
                    kind: CredentialKind::Plaintext,
                })
            }
            State::ScramAwaitingFirst(hash) => {
                let text = String::from_utf8(decoded).map_err(|_| SaslError::NotUtf8)?;
                let first = scram::parse_client_first(&text)?;
                let user = first.user.clone();
                self.state = State::ScramAwaitingCredentials(hash, Box::new(first));
                Ok(SaslStep::NeedCredentials {
                    user,
                    kind: CredentialKind::Scram(hash),
                })
            }
            State::ScramAwaitingFinal {
                server,
                user,
                authzid,
            } => {
                let text = String::from_utf8(decoded).map_err(|_| SaslError::NotUtf8)?;
                match server.finish(&text)? {
                    ScramFinal::Verified(server_final) => {
                        self.state = State::ScramAwaitingAck { user, authzid };
                        Ok(SaslStep::Challenge(encode_base64(server_final.as_bytes())))
                    }
                    ScramFinal::Rejected => Ok(SaslStep::Verified(Verified {
                        user,
                        authzid,
                        result: ProofResult::Failed,
                    })),
                }
            }
            State::ScramAwaitingAck { user, authzid } => {
                if !decoded.is_empty() {
                    return Err(SaslError::Malformed {
                        mechanism: "SCRAM",
                        reason: "expected an empty response after the server's signature",
                    });
                }
                Ok(SaslStep::Verified(Verified {
                    user,
                    authzid,
                    result: ProofResult::Ok,
                }))
            }
            State::CramAwaitingCredentials { .. }
            | State::ScramAwaitingCredentials(..)
            | State::OAuthAwaitingToken { .. } => {
                // A client line while the backend was to be asked: a caller bug, not input.
                Err(SaslError::Finished)
            }
            State::Finished => Err(SaslError::Finished),
        }
    }
}

/// The body of the `sasl` fuzz target (fuzz/), here so a normal test replays its seed corpus.
pub mod fuzzing {
    use super::*;

    /// The first byte picks the mechanism (bits 0-2: one of the eight), whether the first line
    /// is an initial response (bit 3) and what the passdb answers (bits 4-5: the plaintext
    /// "pencil", a SCRAM-SHA-256 secret of it, an unknown user, a temporary failure); the rest,
    /// split at LF, are the client's lines. The same bytes also go through every parser
    /// directly. Nothing may panic, an exchange that ended stays ended, and a decoded PLAIN
    /// message re-encodes to its bytes.
    pub fn exercise(data: &[u8]) {
        let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
        let mechanism = Mechanism::ALL[usize::from(mode & 7) % Mechanism::ALL.len()];
        let lines: Vec<String> = rest
            .split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
            .collect();
        let mut lines = lines.iter();
        let initial = if mode & 8 != 0 { lines.next() } else { None };
        if let Ok((exchange, step)) = SaslExchange::start(mechanism, initial.map(String::as_str)) {
            drive(exchange, step, mode >> 4, &mut lines);
        }

        let text = String::from_utf8_lossy(rest);
        if let Ok(first) = scram::parse_client_first(&text) {
            assert!(!first.user.is_empty());
            assert_eq!(format!("{}{}", first.gs2_header, first.bare), text);
        }
        let _ = scram::parse_client_final(&text);
        let _ = scram::ScramSecret::parse_dovecot(ScramHash::Sha256, &text);
        let _ = cram::parse_response(rest);
        let _ = oauth::parse_oauthbearer(rest);
        let _ = oauth::parse_xoauth2(rest);

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

    fn lookup(passdb: u8, user: &str) -> CredentialsLookup {
        let user = user.to_string();
        match passdb & 3 {
            0 => CredentialsLookup::Found {
                user,
                credential: Credential::Plaintext("pencil".into()),
            },
            1 => CredentialsLookup::Found {
                user,
                credential: Credential::Scram(ScramSecret::derive(
                    ScramHash::Sha256,
                    "pencil",
                    b"salt",
                    scram::MIN_ITERATIONS,
                )),
            },
            2 => CredentialsLookup::UnknownUser,
            _ => CredentialsLookup::TempFail("down".into()),
        }
    }

    /// Steps the exchange through the lines; once it ended (done or failed), it stays ended.
    fn drive<'a>(
        mut exchange: SaslExchange,
        mut step: SaslStep,
        passdb: u8,
        lines: &mut impl Iterator<Item = &'a String>,
    ) {
        let mut token_said_valid = false;
        loop {
            match step {
                SaslStep::Done(_) | SaslStep::External { .. } => break,
                SaslStep::Verified(v) => {
                    // Only the right password proves anything, and the fuzzer does not know it
                    // for SCRAM (its nonce is random) nor CRAM-MD5 (its challenge is); a token
                    // is good only when the authorization server said so.
                    if !token_said_valid {
                        assert_ne!(
                            v.result,
                            ProofResult::Ok,
                            "proof accepted from random input"
                        );
                    }
                    break;
                }
                SaslStep::NeedToken { .. } => {
                    let check = match passdb & 3 {
                        0 => TokenCheck::Valid,
                        1 | 2 => TokenCheck::Invalid,
                        _ => TokenCheck::TempFail("down".into()),
                    };
                    token_said_valid = check == TokenCheck::Valid;
                    match exchange.supply_token(check) {
                        Ok(next) => step = next,
                        Err(_) => break,
                    }
                }
                SaslStep::NeedCredentials { user, .. } => {
                    match exchange.supply(lookup(passdb, &user)) {
                        Ok(next) => step = next,
                        Err(_) => break,
                    }
                }
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
        assert_eq!(Mechanism::parse("cram-md5"), Ok(Mechanism::CramMd5));
        assert_eq!(
            Mechanism::parse("scram-sha-256"),
            Ok(Mechanism::ScramSha256)
        );
        assert_eq!(
            Mechanism::parse("SCRAM-SHA-256-PLUS"),
            Err(SaslError::UnsupportedMechanism)
        );
    }

    fn scram_login(
        mech: Mechanism,
        hash: ScramHash,
        lookup: CredentialsLookup,
        password: &str,
        ir: bool,
    ) -> Verified {
        let first = "n,,n=demo,r=clientnonce";
        let (mut ex, step) = if ir {
            SaslExchange::start(mech, Some(&encode_base64(first.as_bytes()))).unwrap()
        } else {
            let (mut ex, step) = SaslExchange::start(mech, None).unwrap();
            assert_eq!(step, SaslStep::Challenge(String::new()));
            let step = ex.step(&encode_base64(first.as_bytes())).unwrap();
            (ex, step)
        };
        assert_eq!(
            step,
            SaslStep::NeedCredentials {
                user: "demo".into(),
                kind: CredentialKind::Scram(hash)
            }
        );
        let SaslStep::Challenge(server_first) = ex.supply(lookup).unwrap() else {
            panic!("no server-first")
        };
        let server_first = String::from_utf8(decode_base64(&server_first).unwrap()).unwrap();
        assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
        let (fin, v) =
            scram::client_final(hash, password, "n=demo,r=clientnonce", "n,,", &server_first)
                .unwrap();
        match ex.step(&encode_base64(fin.as_bytes())).unwrap() {
            SaslStep::Verified(v) => v,
            SaslStep::Challenge(server_final) => {
                assert_eq!(decode_base64(&server_final).unwrap(), v.as_bytes());
                let SaslStep::Verified(v) = ex.step("").unwrap() else {
                    panic!("no end")
                };
                assert_eq!(ex.step(""), Err(SaslError::Finished));
                v
            }
            other => panic!("{other:?}"),
        }
    }

    fn found(credential: Credential) -> CredentialsLookup {
        CredentialsLookup::Found {
            user: "demo@example.org".into(),
            credential,
        }
    }

    #[test]
    fn scram_against_plaintext_and_stored_secrets() {
        for (mech, hash) in [
            (Mechanism::ScramSha1, ScramHash::Sha1),
            (Mechanism::ScramSha256, ScramHash::Sha256),
        ] {
            for ir in [false, true] {
                let plain = || found(Credential::Plaintext("pencil".into()));
                let v = scram_login(mech, hash, plain(), "pencil", ir);
                assert_eq!(v.result, ProofResult::Ok);
                assert_eq!(v.user, "demo@example.org");
                let v = scram_login(mech, hash, plain(), "pencil!", ir);
                assert_eq!(v.result, ProofResult::Failed);

                let stored = || {
                    found(Credential::Scram(ScramSecret::generate(
                        hash,
                        "pencil",
                        scram::MIN_ITERATIONS,
                    )))
                };
                assert_eq!(
                    scram_login(mech, hash, stored(), "pencil", ir).result,
                    ProofResult::Ok
                );
                assert_eq!(
                    scram_login(mech, hash, stored(), "Pencil", ir).result,
                    ProofResult::Failed
                );
            }
            // Unknown users and unusable entries get the same exchange and fail at the end.
            let v = scram_login(mech, hash, CredentialsLookup::UnknownUser, "", false);
            assert_eq!(v.result, ProofResult::Failed);
            assert_eq!(v.user, "demo");
            let v = scram_login(
                mech,
                hash,
                CredentialsLookup::Unusable {
                    user: "demo".into(),
                },
                "pencil",
                false,
            );
            assert_eq!(v.result, ProofResult::Failed);
        }
        // A secret of the other hash cannot serve.
        let other = found(Credential::Scram(ScramSecret::generate(
            ScramHash::Sha1,
            "pencil",
            scram::MIN_ITERATIONS,
        )));
        assert_eq!(
            scram_login(
                Mechanism::ScramSha256,
                ScramHash::Sha256,
                other,
                "pencil",
                false
            )
            .result,
            ProofResult::Failed
        );
    }

    #[test]
    fn scram_tempfail_and_non_empty_ack() {
        let (mut ex, _) = SaslExchange::start(
            Mechanism::ScramSha256,
            Some(&encode_base64(b"n,,n=demo,r=abc")),
        )
        .unwrap();
        let SaslStep::Verified(v) = ex
            .supply(CredentialsLookup::TempFail("ldap down".into()))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.result, ProofResult::TempFail("ldap down".into()));
        assert!(SaslExchange::start(
            Mechanism::ScramSha256,
            Some(&encode_base64(b"p=tls-unique,,n=demo,r=abc"))
        )
        .is_err());
    }

    #[test]
    fn cram_md5_exchange() {
        let (mut ex, SaslStep::Challenge(ch)) =
            SaslExchange::start(Mechanism::CramMd5, None).unwrap()
        else {
            panic!()
        };
        let challenge = String::from_utf8(decode_base64(&ch).unwrap()).unwrap();
        assert!(challenge.starts_with('<') && challenge.ends_with('>'));
        let digest = {
            use hmac::{KeyInit, Mac};
            let mut m = hmac::Hmac::<md5::Md5>::new_from_slice(b"pencil").unwrap();
            m.update(challenge.as_bytes());
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let resp = encode_base64(format!("demo {digest}").as_bytes());
        assert_eq!(
            ex.clone().step(&resp).unwrap(),
            SaslStep::NeedCredentials {
                user: "demo".into(),
                kind: CredentialKind::Plaintext
            }
        );
        for (lookup, want) in [
            (
                found(Credential::Plaintext("pencil".into())),
                ProofResult::Ok,
            ),
            (
                found(Credential::Plaintext("other".into())),
                ProofResult::Failed,
            ),
            (CredentialsLookup::UnknownUser, ProofResult::Failed),
        ] {
            let mut ex = ex.clone();
            ex.step(&resp).unwrap();
            let SaslStep::Verified(v) = ex.supply(lookup).unwrap() else {
                panic!()
            };
            assert_eq!(v.result, want);
        }
        assert!(ex.step(&encode_base64(b"demo nothex")).is_err());
        assert!(SaslExchange::start(Mechanism::CramMd5, Some("=")).is_err());
    }

    #[test]
    fn bearer_token_exchanges() {
        let ob = encode_base64(b"n,a=demo,\x01auth=Bearer tok\x01\x01");
        let (mut ex, step) = SaslExchange::start(Mechanism::OAuthBearer, Some(&ob)).unwrap();
        assert_eq!(
            step,
            SaslStep::NeedToken {
                user: "demo".into(),
                token: "tok".into()
            }
        );
        let SaslStep::Verified(v) = ex.clone().supply_token(TokenCheck::Valid).unwrap() else {
            panic!()
        };
        assert_eq!((v.user.as_str(), v.result), ("demo", ProofResult::Ok));
        // A bad token: the RFC 7628 error JSON, the client's %x01, then the failure.
        let SaslStep::Challenge(c) = ex.supply_token(TokenCheck::Invalid).unwrap() else {
            panic!()
        };
        assert_eq!(
            decode_base64(&c).unwrap(),
            oauth::error_json("invalid_token").as_bytes()
        );
        let SaslStep::Verified(v) = ex.step("AQ==").unwrap() else {
            panic!()
        };
        assert_eq!(v.result, ProofResult::Failed);

        let (mut ex, step) = SaslExchange::start(Mechanism::XOAuth2, None).unwrap();
        assert_eq!(step, SaslStep::Challenge(String::new()));
        let x = encode_base64(b"user=demo\x01auth=Bearer tok\x01\x01");
        assert!(matches!(ex.step(&x).unwrap(), SaslStep::NeedToken { .. }));
        let SaslStep::Verified(v) = ex
            .supply_token(TokenCheck::TempFail("down".into()))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(v.result, ProofResult::TempFail("down".into()));
        assert!(SaslExchange::start(Mechanism::XOAuth2, Some(&ob)).is_err());
    }

    #[test]
    fn external_takes_an_optional_authzid() {
        let (_, step) = SaslExchange::start(Mechanism::External, Some("=")).unwrap();
        assert_eq!(
            step,
            SaslStep::External {
                authzid: String::new()
            }
        );
        let (mut ex, step) = SaslExchange::start(Mechanism::External, None).unwrap();
        assert_eq!(step, SaslStep::Challenge(String::new()));
        assert_eq!(
            ex.step(&encode_base64(b"demo")).unwrap(),
            SaslStep::External {
                authzid: "demo".into()
            }
        );
        assert!(SaslExchange::start(Mechanism::External, Some(&encode_base64(b"a\0b"))).is_err());
        let mut conn = crate::testing::loopback_conn("x");
        assert!(!Mechanism::External.offered(true, &conn));
        conn.tls_client_user = Some("demo".into());
        assert!(Mechanism::External.offered(false, &conn));
        assert!(!Mechanism::Plain.offered(false, &conn));
        assert!(Mechanism::ScramSha256.offered(false, &conn));
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
