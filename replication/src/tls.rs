//! Mutual TLS between nodes: both sides present a certificate from the cluster CA, and both
//! check that the other's certificate names the node id it claims (`node-<id>.cluster`).
//!
//! The client side gets that check from rustls itself (the server name it dials is
//! `node-<peer>.cluster`); the server side learns the client's id only from its Hello, so it
//! checks the client certificate by hand with [`check_peer_identity`].

use crate::certs::node_dns_name;
use crate::error::{ReplError, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use storage::NodeId;

/// A node's TLS identity and the cluster CA it trusts, loaded once; cheap to clone.
#[derive(Clone)]
pub struct TlsMaterial {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial { .. }")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ReplError::Cert(format!("reading {}: {e}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| ReplError::Cert(format!("parsing {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ReplError::Cert(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// Loads the CA certificate and this node's certificate and key (PEM files).
    pub fn load(ca_cert: &Path, node_cert: &Path, node_key: &Path) -> Result<TlsMaterial> {
        let ca = read_certs(ca_cert)?;
        let chain = read_certs(node_cert)?;
        let key = PrivateKeyDer::from_pem_file(node_key)
            .map_err(|e| ReplError::Cert(format!("reading key {}: {e}", node_key.display())))?;
        TlsMaterial::from_der(ca, chain, key)
    }

    pub fn from_der(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsMaterial> {
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots
                .add(c)
                .map_err(|e| ReplError::Cert(format!("CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| ReplError::Cert(format!("client verifier: {e}")))?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(TlsMaterial {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The name a client dials to reach node `id`, so rustls checks the server's identity.
pub fn server_name_for(id: NodeId) -> Result<ServerName<'static>> {
    ServerName::try_from(node_dns_name(id))
        .map_err(|e| ReplError::Cert(format!("node name for {id}: {e}")))
}

/// Checks that `end_entity` (already verified against the CA by the TLS handshake) names node
/// `claimed`.
pub fn check_peer_identity(end_entity: &CertificateDer<'_>, claimed: NodeId) -> Result<()> {
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|e| ReplError::Cert(format!("peer certificate: {e}")))?;
    rustls::client::verify_server_name(&parsed, &server_name_for(claimed)?).map_err(|e| {
        ReplError::NodeId {
            claimed,
            why: format!("its certificate is not for {}: {e}", node_dns_name(claimed)),
        }
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::certs;

    /// A CA directory and per-node TLS material for tests.
    pub struct TestCa {
        pub dir: tempfile::TempDir,
    }

    impl TestCa {
        pub fn new() -> TestCa {
            let dir = tempfile::tempdir().unwrap();
            certs::init_ca(dir.path()).unwrap();
            TestCa { dir }
        }
        pub fn node(&self, id: NodeId) -> TlsMaterial {
            let out = self.dir.path().join(format!("n{id}"));
            let p = certs::issue_node_cert(self.dir.path(), id, &[], &out).unwrap();
            TlsMaterial::load(&self.dir.path().join(certs::CA_CERT_FILE), &p.cert, &p.key).unwrap()
        }
    }
}
