//! Proxying (Dovecot's): the passdb fields that route a user to another server, read into a
//! [`ProxyTarget`], and `proxy_maybe`'s "is that host me?".

use crate::auth::db::Fields;
use protocols::proxy::{ProxyTarget, ProxyTls, DEFAULT_TIMEOUT};
use protocols::BoxStream;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A boolean extra field is on when present, unless it says no (`proxy=n`).
fn flag(fields: &Fields, key: &str) -> bool {
    fields.get(key).is_some_and(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "n" | "no" | "0" | "false" | "off"
        )
    })
}

/// Whether a passdb entry routes its user elsewhere (`proxy` or `proxy_maybe`).
pub fn wants_proxy(fields: &Fields) -> bool {
    flag(fields, "proxy") || flag(fields, "proxy_maybe")
}

/// Whether the routing is `proxy_maybe` (served here when `host` is this node).
pub fn is_maybe(fields: &Fields) -> bool {
    !flag(fields, "proxy") && flag(fields, "proxy_maybe")
}

/// The target a passdb entry names. `user` is the canonical name (the default destuser).
/// The password is the `pass` field's; the caller puts in the client's own when there is
/// none. An entry without `host`, or with a field that does not parse, is an error.
pub fn target_from_fields(user: &str, fields: &Fields) -> Result<ProxyTarget, String> {
    let host = fields
        .get("host")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("user {user}: proxy field without host"))?;
    let port = match fields.get("port") {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("user {user}: port={p:?} is not a port"))?,
        ),
    };
    let hostip = match fields.get("hostip") {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| format!("user {user}: hostip={ip:?} is not an IP address"))?,
        ),
    };
    let mut target = ProxyTarget::new(host, port, fields.get("destuser").unwrap_or(user));
    target.hostip = hostip;
    target.maybe = is_maybe(fields);
    if target.destuser.is_empty() {
        target.destuser = user.to_string();
    }
    target.password = fields.get("pass").map(str::to_string);
    target.master = fields
        .get("master")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    // Dovecot: ssl=yes|any-cert (TLS from the start), starttls=yes|any-cert.
    let ssl = fields.get("ssl").map(str::to_ascii_lowercase);
    let starttls = fields.get("starttls").map(str::to_ascii_lowercase);
    for (key, v) in [("ssl", &ssl), ("starttls", &starttls)] {
        if let Some(v) = v {
            if !matches!(v.as_str(), "yes" | "y" | "any-cert" | "no" | "n" | "") {
                return Err(format!(
                    "user {user}: {key}={v:?} is not one of yes, any-cert, no"
                ));
            }
        }
    }
    let on = |v: &Option<String>| matches!(v.as_deref(), Some("yes" | "y" | "any-cert"));
    target.tls = if on(&starttls) {
        ProxyTls::StartTls
    } else if on(&ssl) {
        ProxyTls::Implicit
    } else {
        ProxyTls::None
    };
    target.verify_cert =
        ssl.as_deref() != Some("any-cert") && starttls.as_deref() != Some("any-cert");
    target.timeout = match fields.get("proxy_timeout") {
        None | Some("") => DEFAULT_TIMEOUT,
        Some(t) => parse_timeout(t)
            .ok_or_else(|| format!("user {user}: proxy_timeout={t:?} is not a duration"))?,
    };
    Ok(target)
}

/// Dovecot's proxy_timeout: seconds, or with a unit (`500ms`, `10s`, `1m`).
fn parse_timeout(t: &str) -> Option<Duration> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t.get(..split)?.parse().ok()?;
    let d = match t.get(split..)?.trim() {
        "" | "s" | "secs" => Duration::from_secs(n),
        "ms" | "msecs" => Duration::from_millis(n),
        "m" | "mins" => Duration::from_secs(n * 60),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// `proxy_maybe`: whether `target` is this very listener (the address the client reached
/// and its port), so the user is served here instead of looping through ourselves.
pub fn is_self(target: &ProxyTarget, local: SocketAddr, default_port: u16, own_name: &str) -> bool {
    if target.port.unwrap_or(default_port) != local.port() {
        return false;
    }
    let ip = target.hostip.or_else(|| target.host.parse().ok());
    match ip {
        Some(ip) => plain(ip) == plain(local.ip()),
        // A name: this node's own names.
        None => {
            target.host.eq_ignore_ascii_case("localhost") && local.ip().is_loopback()
                || (!own_name.is_empty() && own_name.eq_ignore_ascii_case(&target.host))
        }
    }
}

fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> Fields {
        Fields::parse_args(s).unwrap()
    }

    #[test]
    fn fields_to_target() {
        let f = fields(
            "proxy=y host=10.1.2.3 port=1143 destuser=a@b pass=x ssl=any-cert proxy_timeout=5",
        );
        assert!(wants_proxy(&f) && !is_maybe(&f));
        let t = target_from_fields("alice", &f).unwrap();
        assert_eq!(t.host, "10.1.2.3");
        assert_eq!(t.port, Some(1143));
        assert_eq!(t.destuser, "a@b");
        assert_eq!(t.password.as_deref(), Some("x"));
        assert_eq!(t.tls, ProxyTls::Implicit);
        assert!(!t.verify_cert);
        assert_eq!(t.timeout, Duration::from_secs(5));
        let t = target_from_fields("alice", &fields("proxy host=b starttls=yes")).unwrap();
        assert_eq!(
            (t.tls, t.verify_cert, t.destuser.as_str()),
            (ProxyTls::StartTls, true, "alice")
        );
        assert_eq!(t.port_or(143, 993), 143);
        assert!(is_maybe(&fields("proxy_maybe=y host=b")));
        assert!(!wants_proxy(&fields("proxy=n host=b")));
        assert!(!wants_proxy(&fields("host=b")));
        for bad in [
            "proxy",
            "proxy host=b port=x",
            "proxy host=b port=0",
            "proxy host=b hostip=nope",
            "proxy host=b ssl=maybe",
            "proxy host=b proxy_timeout=soon",
        ] {
            assert!(target_from_fields("u", &fields(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
    }

    #[test]
    fn proxy_maybe_recognises_this_listener() {
        let t = target_from_fields("u", &fields("proxy_maybe host=127.0.0.1 port=1143")).unwrap();
        assert!(is_self(&t, "127.0.0.1:1143".parse().unwrap(), 143, ""));
        assert!(!is_self(&t, "127.0.0.1:2143".parse().unwrap(), 143, ""));
        assert!(!is_self(&t, "127.0.0.2:1143".parse().unwrap(), 143, ""));
        let t = target_from_fields("u", &fields("proxy_maybe host=127.0.0.1")).unwrap();
        assert!(is_self(
            &t,
            "[::ffff:127.0.0.1]:143".parse().unwrap(),
            143,
            ""
        ));
    }
}

/// TLS towards backends (`ssl=yes|any-cert`, `starttls=yes|any-cert`): rustls with ring;
/// `yes` checks the backend's certificate against the system's roots and
/// `ssl_client_ca_file` (Dovecot's setting), `any-cert` takes any certificate.
pub struct Connector {
    verified: Arc<rustls::ClientConfig>,
    any_cert: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

impl Connector {
    pub fn new(ca_file: Option<&std::path::Path>) -> Result<Connector, String> {
        use rustls_pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = crate::auth::oauth2::system_roots();
        if let Some(path) = ca_file {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ssl_client_ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("ssl_client_ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ssl_client_ca_file {}: {e}", path.display()))?;
            }
        }
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))
        };
        let verified = builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let any_cert = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider.clone())))
            .with_no_client_auth();
        Ok(Connector {
            verified: Arc::new(verified),
            any_cert: Arc::new(any_cert),
        })
    }

    pub async fn tls(&self, stream: BoxStream, target: &ProxyTarget) -> std::io::Result<BoxStream> {
        let config = if target.verify_cert {
            self.verified.clone()
        } else {
            self.any_cert.clone()
        };
        let name = rustls_pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let s = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        Ok(Box::new(s))
    }
}

/// `any-cert`: the certificate is not checked (Dovecot's name says so); the handshake's
/// signatures still are.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
