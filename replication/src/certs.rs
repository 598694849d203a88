//! The cluster's certificate authority and node certificates (`node cluster init`,
//! `node cluster cert NODE`).
//!
//! A node certificate carries the node's identity as the SAN DNS name `node-<id>.cluster` (beside
//! any host names the operator adds); both ends of a replication connection check it against the
//! node id the other side claims, so a stolen certificate of node 2 cannot pose as node 3.

use crate::error::{ReplError, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use storage::NodeId;

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const NODE_CERT_FILE: &str = "node.pem";
pub const NODE_KEY_FILE: &str = "node.key";

/// The DNS name a node's certificate must carry.
pub fn node_dns_name(id: NodeId) -> String {
    format!("node-{id}.cluster")
}

/// Where `init_ca` / `issue_node_cert` wrote their files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn cert_err(what: &str, e: impl std::fmt::Display) -> ReplError {
    ReplError::Cert(format!("{what}: {e}"))
}

/// The CA's subject is derived from its key, so the issuer name can be rebuilt from the key
/// alone when signing node certificates later (rcgen without x509-parser cannot read a CA cert),
/// and two clusters' CAs never share a name.
fn ca_params(key: &KeyPair) -> Result<CertificateParams> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| cert_err("CA params", e))?;
    let tag = blake3::hash(key.public_key_raw()).to_hex();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mail cluster");
    dn.push(
        DnType::CommonName,
        format!("mail cluster CA {}", &tag[..16]),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

fn write_file(path: &Path, data: &str, private: bool) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| {
        cert_err(
            &format!("cannot create {} (already there?)", path.display()),
            e,
        )
    })?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Creates a new cluster CA in `dir` (`ca.pem`, `ca.key` with mode 0600). Refuses to overwrite.
pub fn init_ca(dir: &Path) -> Result<CertPaths> {
    std::fs::create_dir_all(dir)?;
    let key = KeyPair::generate().map_err(|e| cert_err("generating CA key", e))?;
    let cert = ca_params(&key)?
        .self_signed(&key)
        .map_err(|e| cert_err("self-signing CA", e))?;
    let paths = CertPaths {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    write_file(&paths.key, &key.serialize_pem(), true)?;
    write_file(&paths.cert, &cert.pem(), false)?;
    Ok(paths)
}

/// Issues a certificate for node `node_id` signed by the CA in `ca_dir`, written as
/// `node.pem` / `node.key` into `out_dir`. `hostnames` are extra SAN names (host names or IPs).
pub fn issue_node_cert(
    ca_dir: &Path,
    node_id: NodeId,
    hostnames: &[String],
    out_dir: &Path,
) -> Result<CertPaths> {
    let ca_key_pem = std::fs::read_to_string(ca_dir.join(CA_KEY_FILE)).map_err(|e| {
        cert_err(
            &format!("reading {}", ca_dir.join(CA_KEY_FILE).display()),
            e,
        )
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| cert_err("parsing CA key", e))?;
    let issuer = Issuer::new(ca_params(&ca_key)?, ca_key);

    let mut names = vec![node_dns_name(node_id)];
    names.extend(hostnames.iter().cloned());
    let mut params = CertificateParams::new(names).map_err(|e| cert_err("node cert names", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mail cluster");
    dn.push(DnType::CommonName, node_dns_name(node_id));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Each node is both a client (it dials) and a server (it accepts) of the same protocol.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate().map_err(|e| cert_err("generating node key", e))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| cert_err("signing node cert", e))?;
    std::fs::create_dir_all(out_dir)?;
    let paths = CertPaths {
        cert: out_dir.join(NODE_CERT_FILE),
        key: out_dir.join(NODE_KEY_FILE),
    };
    write_file(&paths.key, &key.serialize_pem(), true)?;
    write_file(&paths.cert, &cert.pem(), false)?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_ca_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        assert!(init_ca(dir.path()).is_err());
    }

    #[test]
    fn node_cert_is_written_with_private_key_mode() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let out = dir.path().join("n2");
        let p = issue_node_cert(dir.path(), 2, &["mail2.example".into()], &out).unwrap();
        let pem = std::fs::read_to_string(&p.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
