//! CRAM-MD5 (RFC 2195) and POP3's APOP (RFC 1939): both need the plaintext password on the
//! server side; the client proves it knows it with an MD5 digest over a server timestamp.

use super::scram::constant_time_eq;
use super::SaslError;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

/// A fresh `<random.time@host>` challenge, as both mechanisms want it (RFC 2195 / RFC 1939).
pub fn timestamp(hostname: &str) -> String {
    let random: u64 = rand::random();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("<{random:x}.{now}@{hostname}>")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a CRAM-MD5 response (decoded): `user SP 32-hex-digest`.
pub fn parse_response(msg: &[u8]) -> Result<(String, String), SaslError> {
    let malformed = |reason| SaslError::Malformed {
        mechanism: "CRAM-MD5",
        reason,
    };
    let text = std::str::from_utf8(msg).map_err(|_| SaslError::NotUtf8)?;
    // The user name may itself contain spaces: the digest is after the last one.
    let (user, digest) = text.rsplit_once(' ').ok_or(malformed("no digest"))?;
    if user.is_empty() {
        return Err(malformed("empty user name"));
    }
    if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("digest is not 32 hex digits"));
    }
    Ok((user.to_string(), digest.to_ascii_lowercase()))
}

/// Whether `digest` (lower-case hex) is HMAC-MD5(password, challenge).
pub fn cram_md5_matches(password: &str, challenge: &str, digest: &str) -> bool {
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(password.as_bytes()) else {
        return false;
    };
    mac.update(challenge.as_bytes());
    let expected = hex(&mac.finalize().into_bytes());
    constant_time_eq(expected.as_bytes(), digest.as_bytes())
}

/// Whether `digest` is APOP's MD5(timestamp || password), hex (either case).
pub fn apop_matches(password: &str, timestamp: &str, digest: &str) -> bool {
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(password.as_bytes());
    let expected = hex(&h.finalize());
    constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example() {
        let challenge = "<1896.697170952@postoffice.reston.mci.net>";
        let (user, digest) = parse_response(b"tim b913a602c7eda7a495b4e6e7334d3890").unwrap();
        assert_eq!(user, "tim");
        assert!(cram_md5_matches("tanstaaftanstaaf", challenge, &digest));
        assert!(!cram_md5_matches("tanstaaf", challenge, &digest));
        for bad in [
            &b"tim"[..],
            b" b913a602c7eda7a495b4e6e7334d3890",
            b"tim xyz",
            b"tim \xff",
        ] {
            assert!(parse_response(bad).is_err());
        }
    }

    #[test]
    fn rfc1939_apop_example() {
        let ts = "<1896.697170952@dbc.mtview.ca.us>";
        assert!(apop_matches(
            "tanstaaf",
            ts,
            "c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(apop_matches(
            "tanstaaf",
            ts,
            "C4C9334BAC560ECC979E58001B3E22FB"
        ));
        assert!(!apop_matches(
            "tanstaaF",
            ts,
            "c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(!apop_matches("tanstaaf", ts, "c4c9"));
    }

    #[test]
    fn timestamps_differ_and_look_right() {
        let (a, b) = (timestamp("h.example"), timestamp("h.example"));
        assert_ne!(a, b);
        assert!(a.starts_with('<') && a.ends_with("@h.example>"), "{a}");
    }
}
