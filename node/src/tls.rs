//! TLS shared by every listener: rustls with the ring provider, PEM certificate chain and key,
//! TLS 1.2 minimum (or ssl_min_protocol), a self-signed certificate for the embedded default,
//! and reload on SIGHUP (new handshakes get the new certificate; running sessions keep theirs).

use crate::config::TlsMinProtocol;
use async_trait::async_trait;
use parking_lot::RwLock;
use protocols::{BoxStream, TlsUpgrade};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// A client that does not finish its handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ssl_cert {path}: cannot read the certificate ({reason}); check the path and that the node's user may read it")]
    CertUnreadable { path: PathBuf, reason: String },
    #[error("ssl_cert {path}: no PEM certificate found; give the full chain in PEM (-----BEGIN CERTIFICATE-----), server certificate first")]
    NoCertificate { path: PathBuf },
    #[error("ssl_key {path}: cannot read a private key ({reason}); give an unencrypted PEM key (PKCS#8, RSA or EC) readable by the node's user")]
    KeyUnreadable { path: PathBuf, reason: String },
    #[error("ssl_cert {cert} does not match ssl_key {key}; give the key the certificate was issued for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("ssl_cert {cert} / ssl_key {key}: {reason}")]
    Invalid {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot create the self-signed certificate in {dir}: {reason}")]
    SelfSigned { dir: PathBuf, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the certificate chain and key, and builds a server configuration.
pub fn load_server_config(
    files: &TlsFiles,
    min: TlsMinProtocol,
) -> Result<Arc<ServerConfig>, TlsError> {
    load_server_config_with(files, min, None)
}

/// Client certificates for SASL EXTERNAL (Dovecot's `ssl_ca`, `ssl_verify_client_cert`,
/// `ssl_cert_username_field`): asked for, optional, verified against `ca` when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCerts {
    pub ca: PathBuf,
    /// `commonName` (default) or `emailAddress`: the subject field naming the user.
    pub username_field: String,
}

fn client_verifier(
    client: &ClientCerts,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let bad = |reason: String| TlsError::CertUnreadable {
        path: client.ca.clone(),
        reason,
    };
    let pem = std::fs::read(&client.ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: client.ca.clone(),
        });
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        // A client without a certificate still gets TLS (and the other mechanisms).
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// The user a verified client certificate names, from its subject's `field`.
pub fn certificate_user(cert: &[u8], field: &str) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let subject = parsed.subject();
    let value = if field.eq_ignore_ascii_case("emailAddress") {
        subject.iter_email().next()
    } else {
        subject.iter_common_name().next()
    }?;
    value
        .as_str()
        .ok()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

fn load_server_config_with(
    files: &TlsFiles,
    min: TlsMinProtocol,
    client: Option<&ClientCerts>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::CertUnreadable {
        path: files.cert.clone(),
        reason,
    };
    // Read first so that "not there" and "not a certificate" are told apart.
    let pem = std::fs::read(&files.cert).map_err(|e| cert_err(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = std::fs::read(&files.key).map_err(|e| TlsError::KeyUnreadable {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::KeyUnreadable {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let provider = provider();
    let invalid = |reason: String| TlsError::Invalid {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    };
    let certified =
        rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            },
            other => invalid(other.to_string()),
        })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsMinProtocol::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinProtocol::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| invalid(e.to_string()))?;
    let builder = match client {
        Some(c) => builder.with_client_cert_verifier(client_verifier(c, &provider)?),
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_cert_resolver(Arc::new(SingleCert(Arc::new(certified))));
    Ok(Arc::new(config))
}

/// Serves one certificate to every client (SNI ignored), as Dovecot's ssl_cert does.
#[derive(Debug)]
struct SingleCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Makes `dir/cert.pem` and `dir/key.pem` (self-signed for `hostnames`) unless both exist.
pub fn ensure_self_signed(dir: &Path, hostnames: &[String]) -> Result<TlsFiles, TlsError> {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let fail = |reason: String| TlsError::SelfSigned {
        dir: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let made =
        rcgen::generate_simple_self_signed(hostnames.to_vec()).map_err(|e| fail(e.to_string()))?;
    write_private(&files.key, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(&files.cert, made.cert.pem()).map_err(|e| fail(e.to_string()))?;
    tracing::info!(
        "ssl: made a self-signed certificate {} (key {})",
        files.cert.display(),
        files.key.display()
    );
    Ok(files)
}

/// Writes a file readable only by its owner (a private key).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The current TLS configuration, swapped whole on reload.
pub struct Tls {
    files: TlsFiles,
    min: TlsMinProtocol,
    client: Option<ClientCerts>,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(
        files: TlsFiles,
        min: TlsMinProtocol,
        client: Option<ClientCerts>,
    ) -> Result<Arc<Tls>, TlsError> {
        let config = load_server_config_with(&files, min, client.as_ref())?;
        Ok(Arc::new(Tls {
            files,
            min,
            client,
            current: RwLock::new(config),
        }))
    }

    /// Re-reads the certificate and key (SIGHUP). On error the old configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_server_config_with(&self.files, self.min, self.client.as_ref())?;
        *self.current.write() = config;
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Server-side handshake, bounded in time.
    pub async fn accept(&self, stream: BoxStream) -> std::io::Result<BoxStream> {
        Ok(self.accept_identified(stream).await?.0)
    }

    /// The handshake, and the user a verified client certificate names (only asked for
    /// when `ssl_verify_client_cert` is on; rustls has checked it against `ssl_ca`).
    pub async fn accept_identified(
        &self,
        stream: BoxStream,
    ) -> std::io::Result<(BoxStream, Option<String>)> {
        let acceptor = self.acceptor();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let user = match (&self.client, tls.get_ref().1.peer_certificates()) {
                    (Some(c), Some(chain)) => chain
                        .first()
                        .and_then(|leaf| certificate_user(leaf, &c.username_field)),
                    _ => None,
                };
                Ok((Box::new(tls), user))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

#[async_trait]
impl TlsUpgrade for Tls {
    async fn upgrade(&self, stream: BoxStream) -> std::io::Result<BoxStream> {
        self.accept(stream).await
    }

    async fn upgrade_identified(
        &self,
        stream: BoxStream,
    ) -> std::io::Result<(BoxStream, Option<String>)> {
        self.accept_identified(stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path) -> TlsFiles {
        ensure_self_signed(dir, &["localhost".to_string()]).unwrap()
    }

    #[test]
    fn certificate_user_from_subject() {
        let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "demo@example.org");
        params.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("mail@example.org".try_into().unwrap()),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der();
        assert_eq!(
            certificate_user(der, "commonName").as_deref(),
            Some("demo@example.org")
        );
        assert_eq!(
            certificate_user(der, "emailAddress").as_deref(),
            Some("mail@example.org")
        );
        assert_eq!(certificate_user(b"not a certificate", "commonName"), None);
    }

    #[test]
    fn client_ca_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for ca in [empty, dir.path().join("missing.pem")] {
            let client = ClientCerts {
                ca,
                username_field: "commonName".into(),
            };
            assert!(Tls::load(files.clone(), TlsMinProtocol::Tls12, Some(client)).is_err());
        }
        let client = ClientCerts {
            ca: files.cert.clone(),
            username_field: "commonName".into(),
        };
        assert!(Tls::load(files.clone(), TlsMinProtocol::Tls12, Some(client)).is_ok());
    }

    #[test]
    fn self_signed_loads_and_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let first = std::fs::read(&files.cert).unwrap();
        assert!(load_server_config(&files, TlsMinProtocol::Tls12).is_ok());
        let again = self_signed(dir.path());
        assert_eq!(
            std::fs::read(&again.cert).unwrap(),
            first,
            "must not be re-made"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }

    #[test]
    fn missing_cert_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("k.pem"),
        };
        let e = load_server_config(&files, TlsMinProtocol::Tls12).unwrap_err();
        assert!(matches!(e, TlsError::CertUnreadable { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }

    #[test]
    fn not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let good = self_signed(dir.path());
        let bad = dir.path().join("garbage.pem");
        std::fs::write(&bad, "hello, this is not PEM\n").unwrap();
        let e = load_server_config(
            &TlsFiles {
                cert: bad,
                key: good.key.clone(),
            },
            TlsMinProtocol::Tls12,
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        // A certificate given as the key.
        let e = load_server_config(
            &TlsFiles {
                cert: good.cert.clone(),
                key: good.cert.clone(),
            },
            TlsMinProtocol::Tls12,
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::KeyUnreadable { .. }), "{e}");
        assert!(e.to_string().contains("ssl_key"), "{e}");
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = self_signed(a.path());
        let fb = self_signed(b.path());
        let e = load_server_config(
            &TlsFiles {
                cert: fa.cert.clone(),
                key: fb.key.clone(),
            },
            TlsMinProtocol::Tls12,
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&fa.cert.display().to_string()) && text.contains("does not match"),
            "{text}"
        );
    }

    #[test]
    fn reload_swaps_and_keeps_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let tls = Tls::load(files.clone(), TlsMinProtocol::Tls13, None).unwrap();
        let before = Arc::as_ptr(&tls.current.read().clone());
        tls.reload().unwrap();
        let after = Arc::as_ptr(&tls.current.read().clone());
        assert_ne!(before, after);
        std::fs::write(&files.cert, "broken").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(Arc::as_ptr(&tls.current.read().clone()), after);
    }

    #[tokio::test]
    async fn handshake_over_a_duplex_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let files = self_signed(dir.path());
        let tls = Tls::load(files.clone(), TlsMinProtocol::Tls12, None).unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tls.upgrade(Box::new(server_io)).await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
        });
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&files.cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = connector.connect(name, client_io).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.await.unwrap();
    }
}
