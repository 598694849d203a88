//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without channel binding
//! (the -PLUS variants are not offered, so a client asking for binding with `p=` is refused).
//!
//! Also the stored form Dovecot writes for `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}`:
//! `iterations,base64(salt),base64(StoredKey),base64(ServerKey)`.

use super::{decode_base64, encode_base64, SaslError};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const M: &str = "SCRAM";

/// Dovecot refuses stored secrets under 4096 iterations (the RFC's SHOULD) and uses 4096.
pub const MIN_ITERATIONS: u32 = 4096;
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Above this a stored secret is refused: a passdb typo must not cost minutes per login.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Dovecot's salt length.
pub const SALT_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    pub fn mechanism(&self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }
    pub fn digest_len(&self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    pub fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: new_from_slice cannot fail.
        match self {
            ScramHash::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            ScramHash::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    pub fn hash(&self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with one block of the hash's length.
    pub fn salted_password(&self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_len()];
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// What a server keeps for a user: enough to check a proof, not enough to log in elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub hash: ScramHash,
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramSecret")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid {scheme} passdb entry: {reason}")]
pub struct StoredFormatError {
    pub scheme: &'static str,
    pub reason: &'static str,
}

impl ScramSecret {
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let salted = hash.salted_password(password.as_bytes(), salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramSecret {
            hash,
            iterations,
            salt: salt.to_vec(),
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// With a fresh random salt (Dovecot's 16 bytes).
    pub fn generate(hash: ScramHash, password: &str, iterations: u32) -> ScramSecret {
        let mut salt = [0u8; SALT_LEN];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
        ScramSecret::derive(hash, password, &salt, iterations)
    }

    /// Parses Dovecot's stored form (without the `{SCHEME}` prefix).
    pub fn parse_dovecot(hash: ScramHash, text: &str) -> Result<ScramSecret, StoredFormatError> {
        let err = |reason| StoredFormatError {
            scheme: hash.mechanism(),
            reason,
        };
        let mut fields = text.split(',');
        let (Some(iter), Some(salt), Some(stored), Some(server), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(err("expected iterations,salt,StoredKey,ServerKey"));
        };
        let iterations: u32 = iter.parse().map_err(|_| err("bad iteration count"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(err("iteration count out of range"));
        }
        let salt = decode_base64(salt).map_err(|_| err("bad salt"))?;
        let key = |s: &str, what| {
            decode_base64(s)
                .ok()
                .filter(|k| k.len() == hash.digest_len())
                .ok_or(err(what))
        };
        Ok(ScramSecret {
            hash,
            iterations,
            salt,
            stored_key: key(stored, "bad StoredKey")?,
            server_key: key(server, "bad ServerKey")?,
        })
    }

    /// Dovecot's stored form, without the `{SCHEME}` prefix.
    pub fn to_dovecot(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            encode_base64(&self.salt),
            encode_base64(&self.stored_key),
            encode_base64(&self.server_key)
        )
    }

    /// Whether `password` is the one this secret was made from (a PLAIN login against a
    /// `{SCRAM-SHA-256}` passdb entry, as Dovecot allows).
    pub fn matches_password(&self, password: &str) -> bool {
        let other = ScramSecret::derive(self.hash, password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn malformed(reason: &'static str) -> SaslError {
    SaslError::Malformed {
        mechanism: M,
        reason,
    }
}

/// `saslname` of RFC 5802: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape_saslname(s: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3).ok_or(malformed("bad escape in name"))?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(malformed("bad escape in name")),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The parsed client-first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,` / `y,a=x,`): the client-final's `c=` must repeat it.
    pub gs2_header: String,
    pub authzid: Option<String>,
    pub user: String,
    pub nonce: String,
    /// client-first-message-bare: part of the AuthMessage.
    pub bare: String,
}

/// Parses `gs2-header client-first-message-bare`.
pub fn parse_client_first(msg: &str) -> Result<ClientFirst, SaslError> {
    // gs2-cbind-flag "," [authzid] ","
    let (flag, rest) = msg.split_once(',').ok_or(malformed("no GS2 header"))?;
    match flag {
        // "y": the client could bind but thinks we cannot; true, we offer no -PLUS.
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(malformed("channel binding is not supported"));
        }
        _ => return Err(malformed("bad channel binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or(malformed("no GS2 header"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_saslname(
            a.strip_prefix("a=").ok_or(malformed("bad authzid"))?,
        )?),
    };
    let gs2_header = msg
        .get(..msg.len() - bare.len())
        .ok_or(malformed("no GS2 header"))?
        .to_string();
    let mut attrs = bare.split(',');
    let user = match attrs.next() {
        Some(a) if a.starts_with("m=") => return Err(malformed("mandatory extension")),
        Some(a) => a.strip_prefix("n=").ok_or(malformed("no user name"))?,
        None => return Err(malformed("no user name")),
    };
    let user = unescape_saslname(user)?;
    if user.is_empty() {
        return Err(malformed("empty user name"));
    }
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("no nonce"))?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(malformed("bad nonce"));
    }
    // Optional extensions after the nonce are ignored, as the RFC asks.
    Ok(ClientFirst {
        gs2_header,
        authzid,
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// The parsed client-final message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// client-final-message-without-proof: part of the AuthMessage.
    pub without_proof: String,
}

pub fn parse_client_final(msg: &str) -> Result<ClientFinal, SaslError> {
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(malformed("no proof"))?;
    let mut attrs = without_proof.split(',');
    let cb = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(malformed("no channel binding attribute"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed("no nonce"))?;
    Ok(ClientFinal {
        channel_binding: decode_base64(cb).map_err(|_| malformed("bad channel binding"))?,
        nonce: nonce.to_string(),
        proof: decode_base64(proof).map_err(|_| malformed("bad proof"))?,
        without_proof: without_proof.to_string(),
    })
}

/// Server side of one exchange after the client-first message and the passdb lookup.
#[derive(Clone)]
pub struct ScramServer {
    secret: ScramSecret,
    first: ClientFirst,
    server_first: String,
    nonce: String,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("secret", &self.secret)
            .field("user", &self.first.user)
            .finish_non_exhaustive()
    }
}

/// The result of checking the client-final message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramFinal {
    /// Proof right: send this server-final message (`v=...`).
    Verified(String),
    /// Proof wrong (or the user unknown: its secret was made up).
    Rejected,
}

impl ScramServer {
    /// `server_nonce` is appended to the client's nonce (printable, no comma).
    pub fn new(secret: ScramSecret, first: ClientFirst, server_nonce: &str) -> ScramServer {
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            encode_base64(&secret.salt),
            secret.iterations
        );
        ScramServer {
            secret,
            first,
            server_first,
            nonce,
        }
    }

    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    pub fn finish(&self, client_final: &str) -> Result<ScramFinal, SaslError> {
        let fin = parse_client_final(client_final)?;
        if fin.channel_binding != self.first.gs2_header.as_bytes() {
            return Err(malformed("channel binding does not match the GS2 header"));
        }
        if fin.nonce != self.nonce {
            return Err(malformed("nonce mismatch"));
        }
        let h = self.secret.hash;
        if fin.proof.len() != h.digest_len() {
            return Ok(ScramFinal::Rejected);
        }
        let auth_message = format!(
            "{},{},{}",
            self.first.bare, self.server_first, fin.without_proof
        );
        let signature = h.hmac(&self.secret.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = fin
            .proof
            .iter()
            .zip(&signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&h.hash(&client_key), &self.secret.stored_key) {
            return Ok(ScramFinal::Rejected);
        }
        let server_signature = h.hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(ScramFinal::Verified(format!(
            "v={}",
            encode_base64(&server_signature)
        )))
    }
}

/// The client side, for tests (and the fuzz body): computes client-final for a password.
pub fn client_final(
    hash: ScramHash,
    password: &str,
    client_first_bare: &str,
    gs2_header: &str,
    server_first: &str,
) -> Option<(String, String)> {
    let mut nonce = None;
    let mut salt = None;
    let mut iter = None;
    for a in server_first.split(',') {
        if let Some(v) = a.strip_prefix("r=") {
            nonce = Some(v);
        } else if let Some(v) = a.strip_prefix("s=") {
            salt = decode_base64(v).ok();
        } else if let Some(v) = a.strip_prefix("i=") {
            iter = v.parse::<u32>().ok();
        }
    }
    let (nonce, salt, iter) = (nonce?, salt?, iter?);
    let salted = hash.salted_password(password.as_bytes(), &salt, iter);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored = hash.hash(&client_key);
    let without_proof = format!("c={},r={nonce}", encode_base64(gs2_header.as_bytes()));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hash.hmac(&stored, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let server_key = hash.hmac(&salted, b"Server Key");
    let expected_v = format!(
        "v={}",
        encode_base64(&hash.hmac(&server_key, auth_message.as_bytes()))
    );
    Some((
        format!("{without_proof},p={}", encode_base64(&proof)),
        expected_v,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange (user "user", password "pencil").
    #[test]
    fn rfc7677_example() {
        let salt = decode_base64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let secret = ScramSecret::derive(ScramHash::Sha256, "pencil", &salt, 4096);
        let first = parse_client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let server = ScramServer::new(secret, first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            server.server_first(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            server.finish(fin).unwrap(),
            ScramFinal::Verified("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".into())
        );
        let bad = fin.replace("p=dHzb", "p=dHzc");
        assert_eq!(server.finish(&bad).unwrap(), ScramFinal::Rejected);
    }

    /// RFC 5802 section 5's SCRAM-SHA-1 example.
    #[test]
    fn rfc5802_example() {
        let salt = decode_base64("QSXCR+Q6sek8bf92").unwrap();
        let secret = ScramSecret::derive(ScramHash::Sha1, "pencil", &salt, 4096);
        let first = parse_client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        let server = ScramServer::new(secret, first, "3rfcNHYJY1ZVvWVs7j");
        let fin =
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        assert_eq!(
            server.finish(fin).unwrap(),
            ScramFinal::Verified("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".into())
        );
    }

    /// Made with Dovecot 2.3's `doveadm pw -s SCRAM-SHA-256 -p pencil` format: iterations,
    /// salt, StoredKey, ServerKey (here from the RFC 7677 salt so the keys are known).
    #[test]
    fn dovecot_stored_form_round_trips() {
        let salt = decode_base64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let s = ScramSecret::derive(ScramHash::Sha256, "pencil", &salt, 4096);
        let text = s.to_dovecot();
        assert!(text.starts_with("4096,W22ZaJ0SNY7soEsUEjb6gQ==,"), "{text}");
        assert_eq!(
            ScramSecret::parse_dovecot(ScramHash::Sha256, &text),
            Ok(s.clone())
        );
        assert!(s.matches_password("pencil"));
        assert!(!s.matches_password("pencil "));
        for bad in [
            "",
            "4096,a,b",
            "100,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA",
            "x,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA",
            "4096,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA",
            "4096,%%,AAAA,AAAA,x",
        ] {
            assert!(
                ScramSecret::parse_dovecot(ScramHash::Sha256, bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_first_parsing() {
        let f = parse_client_first("y,a=ad=3Dmin=2Cx,n=us=2Cer,r=abc,ext=1").unwrap();
        assert_eq!(f.gs2_header, "y,a=ad=3Dmin=2Cx,");
        assert_eq!(f.authzid.as_deref(), Some("ad=min,x"));
        assert_eq!(f.user, "us,er");
        assert_eq!(f.bare, "n=us=2Cer,r=abc,ext=1");
        for bad in [
            "",
            "n",
            "n,",
            "p=tls-exporter,,n=u,r=a",
            "x,,n=u,r=a",
            "n,,m=x,n=u,r=a",
            "n,,n=,r=a",
            "n,,n=u=2,r=a",
            "n,,n=u=41,r=a",
            "n,,n=u,r=",
            "n,,n=u",
            "n,b=x,n=u,r=a",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_final_must_repeat_header_and_nonce() {
        let secret = ScramSecret::derive(ScramHash::Sha256, "pw", b"salty", 4096);
        let first = parse_client_first("n,,n=u,r=abc").unwrap();
        let server = ScramServer::new(secret, first, "def");
        let (good, v) = client_final(
            ScramHash::Sha256,
            "pw",
            "n=u,r=abc",
            "n,,",
            server.server_first(),
        )
        .unwrap();
        assert_eq!(server.finish(&good).unwrap(), ScramFinal::Verified(v));
        // A client-final that claims another GS2 header (a downgrade) is refused.
        let y = good.replace("c=biws", &format!("c={}", encode_base64(b"y,,")));
        assert!(server.finish(&y).is_err());
        let other_nonce = good.replace("r=abcdef", "r=abcdeX");
        assert!(server.finish(&other_nonce).is_err());
        assert!(server.finish("c=biws").is_err());
        let short = format!("c=biws,r=abcdef,p={}", encode_base64(b"short"));
        assert_eq!(server.finish(&short).unwrap(), ScramFinal::Rejected);
    }
}
