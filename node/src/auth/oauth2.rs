//! Bearer tokens for OAUTHBEARER and XOAUTH2, checked with OAuth 2.0 token introspection
//! (RFC 7662) at the `[oauth2]` section's `introspection_url`, with the setting names of
//! Dovecot's oauth2 configuration (`introspection_mode`, `username_attribute`,
//! `active_attribute`, `active_value`, `client_id`, `client_secret`).

use crate::config::OAuth2Settings;
use protocols::TokenCheck;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// POST `token=...` as a form (RFC 7662).
    Post,
    /// GET the URL with the token appended (Dovecot's `get`).
    Get,
    /// GET the URL with `Authorization: Bearer <token>` (Dovecot's `auth`).
    Auth,
}

#[derive(Clone)]
pub struct Introspector {
    client: reqwest::Client,
    url: String,
    mode: Mode,
    client_id: String,
    client_secret: String,
    username_attribute: String,
    active_attribute: String,
    active_value: String,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.url)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// None when no introspection URL is configured (every token is then refused).
    pub fn from_settings(s: &OAuth2Settings) -> Result<Option<Introspector>, String> {
        if s.introspection_url.is_empty() {
            return Ok(None);
        }
        let url = reqwest::Url::parse(&s.introspection_url)
            .map_err(|e| format!("oauth2.introspection_url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("oauth2.introspection_url: not an http(s) URL".into());
        }
        let mode = match s.introspection_mode.to_ascii_lowercase().as_str() {
            "" | "post" => Mode::Post,
            "get" => Mode::Get,
            "auth" => Mode::Auth,
            other => {
                return Err(format!(
                "oauth2.introspection_mode: {other:?} is not supported (supported: post get auth)"
            ))
            }
        };
        // The node's TLS stack is rustls with ring, with the web PKI roots the platform has.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("oauth2: TLS: {e}"))?
        .with_root_certificates(system_roots())
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(if s.timeout.0.is_zero() {
                Duration::from_secs(10)
            } else {
                s.timeout.0
            })
            .build()
            .map_err(|e| format!("oauth2: HTTP client: {e}"))?;
        Ok(Some(Introspector {
            client,
            url: s.introspection_url.clone(),
            mode,
            client_id: s.client_id.clone(),
            client_secret: s.client_secret.clone(),
            username_attribute: s.username_attribute.clone(),
            active_attribute: s.active_attribute.clone(),
            active_value: s.active_value.clone(),
        }))
    }

    /// Whether `token` is active and issued to `user` (compared after `canonical`, which
    /// applies the default realm and lower-cases).
    pub async fn check(
        &self,
        user: &str,
        token: &str,
        canonical: impl Fn(&str) -> String,
    ) -> TokenCheck {
        let request = match self.mode {
            Mode::Post => self
                .client
                .post(&self.url)
                .form(&[("token", token), ("token_type_hint", "access_token")]),
            Mode::Get => self.client.get(format!("{}{token}", self.url)),
            Mode::Auth => self.client.get(&self.url).bearer_auth(token),
        };
        let request = if self.client_id.is_empty() {
            request
        } else {
            request.basic_auth(&self.client_id, Some(&self.client_secret))
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return TokenCheck::TempFail(format!("oauth2 introspection: {e}")),
        };
        let status = response.status();
        if !status.is_success() {
            return TokenCheck::TempFail(format!("oauth2 introspection: HTTP {status}"));
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return TokenCheck::TempFail(format!("oauth2 introspection: {e}")),
        };
        self.judge(&body, user, canonical)
    }

    fn judge(&self, body: &[u8], user: &str, canonical: impl Fn(&str) -> String) -> TokenCheck {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
            return TokenCheck::TempFail(
                "oauth2 introspection: answer is not a JSON object".into(),
            );
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let active = fields
            .get(&self.active_attribute)
            .is_some_and(|v| text(v) == self.active_value);
        if !active {
            tracing::info!(target: "auth", "oauth2({user}): token is not active");
            return TokenCheck::Invalid;
        }
        match fields.get(&self.username_attribute).map(text) {
            Some(owner) if canonical(&owner) == canonical(user) => TokenCheck::Valid,
            Some(owner) => {
                tracing::info!(target: "auth", "oauth2({user}): token belongs to {owner}");
                TokenCheck::Invalid
            }
            None => {
                tracing::info!(target: "auth", "oauth2({user}): introspection names no user ({})", self.username_attribute);
                TokenCheck::Invalid
            }
        }
    }
}

/// The system's CA bundle (Debian's ca-certificates), as PEM; none found = an empty store,
/// so an https URL fails (temporary failure, logged) instead of trusting anything.
pub(crate) fn system_roots() -> rustls::RootCertStore {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(certs) = rustls_pki_types::CertificateDer::pem_file_iter(path) {
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn introspector() -> Introspector {
        Introspector::from_settings(&OAuth2Settings {
            introspection_url: "http://127.0.0.1:1/introspect".into(),
            ..OAuth2Settings::default()
        })
        .unwrap()
        .unwrap()
    }

    #[test]
    fn judging_the_answer() {
        let i = introspector();
        let canon = |u: &str| {
            let u = u.to_lowercase();
            if u.contains('@') {
                u
            } else {
                format!("{u}@example.org")
            }
        };
        let j = |body: &str, user: &str| i.judge(body.as_bytes(), user, canon);
        assert_eq!(
            j(r#"{"active":true,"username":"demo"}"#, "demo"),
            TokenCheck::Valid
        );
        assert_eq!(
            j(r#"{"active":true,"username":"Demo@example.org"}"#, "demo"),
            TokenCheck::Valid
        );
        assert_eq!(
            j(r#"{"active":true,"username":"bob"}"#, "demo"),
            TokenCheck::Invalid
        );
        assert_eq!(
            j(r#"{"active":false,"username":"demo"}"#, "demo"),
            TokenCheck::Invalid
        );
        assert_eq!(j(r#"{"username":"demo"}"#, "demo"), TokenCheck::Invalid);
        assert_eq!(j(r#"{"active":true}"#, "demo"), TokenCheck::Invalid);
        assert!(matches!(j("not json", "demo"), TokenCheck::TempFail(_)));
        assert!(matches!(j("[1]", "demo"), TokenCheck::TempFail(_)));
    }

    #[test]
    fn settings_are_checked() {
        let bad = |s: OAuth2Settings| Introspector::from_settings(&s).is_err();
        assert!(bad(OAuth2Settings {
            introspection_url: "ftp://x/".into(),
            ..OAuth2Settings::default()
        }));
        assert!(bad(OAuth2Settings {
            introspection_url: "http://x/".into(),
            introspection_mode: "local".into(),
            ..OAuth2Settings::default()
        }));
        assert!(Introspector::from_settings(&OAuth2Settings::default())
            .unwrap()
            .is_none());
    }

    /// Against a one-shot HTTP server on loopback: the form POST and its answer.
    #[tokio::test]
    async fn posts_the_token_and_reads_the_answer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains("token_type_hint") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"active":true,"username":"demo"}"#;
            s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let i = Introspector::from_settings(&OAuth2Settings {
            introspection_url: format!("http://{addr}/introspect"),
            client_id: "mail".into(),
            client_secret: "s3cret".into(),
            ..OAuth2Settings::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            i.check("demo", "abc.def", str::to_string).await,
            TokenCheck::Valid
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /introspect HTTP/1.1"),
            "{request}"
        );
        assert!(request.contains("token=abc.def"), "{request}");
        // Basic auth with client_id:client_secret.
        assert!(
            request
                .to_lowercase()
                .contains("authorization: basic bwfpbdpzm2nyzxq="),
            "{request}"
        );
        // Nobody listening: a temporary failure, never a wrong password.
        let down = Introspector::from_settings(&OAuth2Settings {
            introspection_url: format!("http://{addr}/introspect"),
            ..OAuth2Settings::default()
        })
        .unwrap()
        .unwrap();
        assert!(matches!(
            down.check("demo", "x", str::to_string).await,
            TokenCheck::TempFail(_)
        ));
    }
}
