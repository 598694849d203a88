//! OAUTHBEARER (RFC 7628) and Google's XOAUTH2: the client sends a bearer token, the backend
//! asks the authorization server whether it is active and whose it is. On failure the server
//! sends the RFC 7628 error JSON as a challenge; the client answers it (OAUTHBEARER: `%x01`,
//! XOAUTH2: empty) and then gets the failure.

use super::SaslError;

fn malformed(mechanism: &'static str, reason: &'static str) -> SaslError {
    SaslError::Malformed { mechanism, reason }
}

/// What the client sent.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerResponse {
    /// The user the client claims (OAUTHBEARER's authzid, XOAUTH2's `user=`).
    pub user: String,
    pub token: String,
}

// Never print a token.
impl std::fmt::Debug for BearerResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerResponse")
            .field("user", &self.user)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// `auth=Bearer <token>` (the scheme name is case-insensitive, RFC 6750).
fn bearer(value: &str, mechanism: &'static str) -> Result<String, SaslError> {
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(malformed(mechanism, "auth is not a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed(mechanism, "auth is not a Bearer token"));
    }
    let token = token.trim_matches(' ');
    // b64token of RFC 6750.
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    if token.is_empty() || !token.bytes().all(b64token) {
        return Err(malformed(mechanism, "bad token"));
    }
    Ok(token.to_string())
}

/// `key=value` pairs separated by %x01, ending in %x01%x01.
fn kvpairs(text: &str, mechanism: &'static str) -> Result<Vec<(String, String)>, SaslError> {
    let body = text
        .strip_suffix("\x01\x01")
        .ok_or(malformed(mechanism, "missing the closing ^A^A"))?;
    let mut out = Vec::new();
    if body.is_empty() {
        return Ok(out);
    }
    for pair in body.split('\x01') {
        let (k, v) = pair
            .split_once('=')
            .ok_or(malformed(mechanism, "bad key=value pair"))?;
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(malformed(mechanism, "bad key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// An OAUTHBEARER client response: `gs2-header %x01 *(kvpair %x01) %x01`.
pub fn parse_oauthbearer(msg: &[u8]) -> Result<BearerResponse, SaslError> {
    const M: &str = "OAUTHBEARER";
    let text = std::str::from_utf8(msg).map_err(|_| SaslError::NotUtf8)?;
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or(malformed(M, "no GS2 header"))?;
    let mut parts = gs2.splitn(3, ',');
    let (Some(flag), Some(authzid), Some("")) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(M, "bad GS2 header"));
    };
    if flag != "n" && flag != "y" {
        return Err(malformed(M, "channel binding is not supported"));
    }
    let user = authzid.strip_prefix("a=").unwrap_or_default();
    let user = unescape(user).ok_or(malformed(M, "bad escape in authzid"))?;
    let mut token = None;
    for (k, v) in kvpairs(rest, M)? {
        if k == "auth" {
            token = Some(bearer(&v, M)?);
        }
    }
    let token = token.ok_or(malformed(M, "no auth"))?;
    // RFC 7628 allows an empty authzid (the token names the user); we need a name to look up.
    if user.is_empty() {
        return Err(malformed(M, "no authzid (a=user) given"));
    }
    Ok(BearerResponse { user, token })
}

/// `=2C` is `,` and `=3D` is `=` in a GS2 authzid.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        out.push(match rest.get(i..i + 3)? {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// An XOAUTH2 client response: `user=U %x01 auth=Bearer T %x01 %x01`.
pub fn parse_xoauth2(msg: &[u8]) -> Result<BearerResponse, SaslError> {
    const M: &str = "XOAUTH2";
    let text = std::str::from_utf8(msg).map_err(|_| SaslError::NotUtf8)?;
    let (mut user, mut token) = (None, None);
    for (k, v) in kvpairs(text, M)? {
        match k.as_str() {
            "user" => user = Some(v),
            "auth" => token = Some(bearer(&v, M)?),
            _ => {}
        }
    }
    match (user, token) {
        (Some(user), Some(token)) if !user.is_empty() => Ok(BearerResponse { user, token }),
        _ => Err(malformed(M, "expected user= and auth=")),
    }
}

/// The RFC 7628 error challenge (XOAUTH2 clients get the same, as Google sends).
pub fn error_json(status: &str) -> String {
    format!(r#"{{"status":"{status}","schemes":"bearer","scope":"mail"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauthbearer_rfc7628_example() {
        // RFC 7628 section 4.1, the initial client response (host and port included).
        let msg = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
                    auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        let r = parse_oauthbearer(msg).unwrap();
        assert_eq!(r.user, "user@example.com");
        assert_eq!(r.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        assert!(!format!("{r:?}").contains("vF9d"));
        for bad in [
            &b""[..],
            b"n,,\x01auth=Bearer x\x01\x01",
            b"n,a=u,\x01auth=Basic x\x01\x01",
            b"n,a=u,\x01auth=Bearer x\x01",
            b"p=tls-unique,a=u,\x01auth=Bearer x\x01\x01",
            b"n,a=u,\x01auth=Bearer \x01\x01",
            b"n,a=u,\x01auth=Bearer a b\x01\x01",
            b"n,a=u=1,\x01auth=Bearer x\x01\x01",
            b"n,a=u,\x01host\x01\x01",
            b"n,a=u\x01auth=Bearer x\x01\x01",
        ] {
            assert!(
                parse_oauthbearer(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn xoauth2_google_example() {
        // Google's documented form: base64 of "user=someuser@example.com^Aauth=Bearer ya29...^A^A".
        let r = parse_xoauth2(b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01").unwrap();
        assert_eq!(r.user, "someuser@example.com");
        assert_eq!(r.token, "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg");
        for bad in [
            &b"user=a\x01\x01"[..],
            b"auth=Bearer x\x01\x01",
            b"user=\x01auth=Bearer x\x01\x01",
            b"user=a\x01auth=Bearer x",
        ] {
            assert!(parse_xoauth2(bad).is_err());
        }
    }
}
