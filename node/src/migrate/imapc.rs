//! A small blocking IMAP client for `node import imap://USER@HOST` (doveadm backup -R
//! imapc:): connect (TLS at once for imaps://, STARTTLS when the server offers it), log in
//! (LOGIN, or AUTHENTICATE PLAIN with an authorization identity for a master user), LIST,
//! LSUB, EXAMINE, UID FETCH. The responses are read by `imap_resp`'s state machine; this
//! file only moves bytes and says what went wrong in words an operator can act on.

use super::imap_resp::{self, FetchItem, Framer, ListItem, Response, Status, StatusText};
use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The largest message we take from a server (the store has its own limit too).
const MAX_LITERAL: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImapcError {
    #[error("{0}: not an IMAP URL (imap://USER@HOST[:PORT] or imaps://USER@HOST[:PORT])")]
    Url(String),
    #[error(
        "cannot connect to {addr}: {err} (is the host name right, the server up and port open?)"
    )]
    Connect { addr: String, err: String },
    #[error("TLS with {host}: {err}{hint}")]
    Tls {
        host: String,
        err: String,
        hint: &'static str,
    },
    #[error("the server refused the login of {user}: {text} (check the user name and the password in --password-file or NODE_IMPORT_PASSWORD{master})")]
    Login {
        user: String,
        text: String,
        master: &'static str,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the server closed the connection{0}")]
    Closed(String),
    #[error("reading from or writing to the server: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, ImapcError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapUrl {
    pub tls: bool,
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl ImapUrl {
    /// `imap://USER@HOST[:PORT]` or `imaps://...`; `%40` in USER is `@` (a user@domain may
    /// also be written as is: the last `@` ends the user).
    pub fn parse(s: &str) -> Result<ImapUrl> {
        let bad = || ImapcError::Url(s.to_string());
        let (tls, rest) = if let Some(r) = s.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (user, hostport) = rest.rsplit_once('@').ok_or_else(bad)?;
        let user = percent_decode(user).ok_or_else(bad)?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tls => 993,
            None => 143,
        };
        if user.is_empty() || host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        Ok(ImapUrl {
            tls,
            user,
            host,
            port,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub struct Options {
    pub url: ImapUrl,
    pub password: String,
    /// Log in as this user on behalf of `url.user` (AUTHENTICATE PLAIN's authorization
    /// identity: Dovecot's master users).
    pub master_user: Option<String>,
    /// Accept any certificate (an old server with a self-signed one).
    pub insecure: bool,
    /// Trust these CA certificates (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Between the two while STARTTLS swaps them.
    Gone,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

pub struct Client {
    stream: Stream,
    framer: Framer,
    tag: u32,
    pub capabilities: Vec<String>,
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// A selected mailbox.
pub struct Selected {
    pub uidvalidity: u32,
    pub exists: u32,
}

fn system_roots() -> rustls::RootCertStore {
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

/// `--insecure`: any certificate is taken (signatures are still checked, so the session is
/// encrypted, only not authenticated).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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

fn tls_config(o: &Options) -> Result<Arc<rustls::ClientConfig>> {
    let host = o.url.host.clone();
    let tls_err = |err: String| ImapcError::Tls {
        host: host.clone(),
        err,
        hint: "",
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let cfg = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let roots = match &o.ca_file {
            None => system_roots(),
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_err(format!("--ca-file {}: {e}", path.display())))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| tls_err(format!("--ca-file {}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| tls_err(format!("--ca-file {}: {e}", path.display())))?;
                }
                roots
            }
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// A string argument: quoted when it can be, else refused (a CR, LF or NUL cannot be sent
/// without a literal, and no name or password we send needs one in practice).
pub fn quoted(s: &[u8]) -> Option<String> {
    if s.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    Some(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

impl Client {
    /// Connects, reads the greeting, upgrades to TLS (imaps://, or STARTTLS when offered)
    /// and logs in.
    pub fn connect(o: &Options) -> Result<Client> {
        let addr = format!("{}:{}", o.url.host, o.url.port);
        let conn_err = |err: String| ImapcError::Connect {
            addr: addr.clone(),
            err,
        };
        let addrs: Vec<_> = (o.url.host.as_str(), o.url.port)
            .to_socket_addrs()
            .map_err(|e| conn_err(e.to_string()))?
            .collect();
        let mut last = String::from("no address");
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, o.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let tcp = tcp.ok_or_else(|| conn_err(last))?;
        tcp.set_read_timeout(Some(o.timeout))?;
        tcp.set_write_timeout(Some(o.timeout))?;
        let _ = tcp.set_nodelay(true);
        let tls = tls_config(o)?;
        let mut c = Client {
            stream: Stream::Plain(tcp),
            framer: Framer::new(MAX_LITERAL),
            tag: 0,
            capabilities: Vec::new(),
            host: o.url.host.clone(),
            tls: Some(tls),
        };
        if o.url.tls {
            c.start_tls()?;
        }
        let greeting = c.read_response()?;
        let preauth = match greeting {
            Response::State {
                status: Status::Ok,
                text,
            } => {
                c.take_capabilities(&text);
                false
            }
            Response::State {
                status: Status::Preauth,
                text,
            } => {
                c.take_capabilities(&text);
                true
            }
            Response::State {
                status: Status::Bye,
                text,
            } => return Err(ImapcError::Closed(format!(": {}", text.text))),
            other => {
                return Err(ImapcError::Protocol(format!(
                    "a greeting that is not * OK: {other:?}"
                )))
            }
        };
        if c.capabilities.is_empty() {
            c.capability()?;
        }
        if !o.url.tls && c.has("STARTTLS") {
            c.command("STARTTLS")?;
            if !c.framer_is_empty() {
                // Bytes sent before the handshake would be trusted after it (CVE-2011-0411's
                // kind of injection).
                return Err(ImapcError::Protocol("data after the STARTTLS reply".into()));
            }
            c.start_tls()?;
            c.capability()?;
        } else if !o.url.tls {
            tracing::warn!(
                host = %o.url.host,
                "the server offers no STARTTLS: logging in without TLS"
            );
        }
        if !preauth {
            c.login(o)?;
        }
        Ok(c)
    }

    fn framer_is_empty(&self) -> bool {
        self.framer.buffered() == 0
    }

    fn has(&self, cap: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }

    fn take_capabilities(&mut self, text: &StatusText) {
        if let Some((code, arg)) = &text.code {
            if code == "CAPABILITY" {
                self.capabilities = arg
                    .split_whitespace()
                    .map(|s| s.to_ascii_uppercase())
                    .collect();
            }
        }
    }

    fn capability(&mut self) -> Result<()> {
        let (resps, _) = self.command("CAPABILITY")?;
        for r in resps {
            if let Response::Capability(c) = r {
                self.capabilities = c;
            }
        }
        Ok(())
    }

    fn start_tls(&mut self) -> Result<()> {
        let cfg = self
            .tls
            .take()
            .ok_or_else(|| ImapcError::Protocol("TLS started twice".into()))?;
        let name = rustls_pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
            ImapcError::Tls {
                host: self.host.clone(),
                err: e.to_string(),
                hint: "",
            }
        })?;
        let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| ImapcError::Tls {
            host: self.host.clone(),
            err: e.to_string(),
            hint: "",
        })?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ImapcError::Protocol("TLS over TLS".into()));
        };
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // Finish the handshake now, so that a certificate that does not verify is said as
        // such and not as a failed read later.
        while s.conn.is_handshaking() {
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                let cert = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
                    .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
                return Err(ImapcError::Tls {
                    host: self.host.clone(),
                    err: e.to_string(),
                    hint: if cert {
                        " (the server's certificate does not verify: give its CA with \
                         --ca-file, or --insecure to accept any certificate)"
                    } else {
                        ""
                    },
                });
            }
        }
        self.stream = Stream::Tls(Box::new(s));
        Ok(())
    }

    fn login(&mut self, o: &Options) -> Result<()> {
        if self.has("LOGINDISABLED") && !self.has("AUTH=PLAIN") {
            return Err(ImapcError::Refused(format!(
                "{} allows no login without TLS (LOGINDISABLED): use imaps://",
                self.host
            )));
        }
        let login_err = |text: String| ImapcError::Login {
            user: o.url.user.clone(),
            text,
            master: if o.master_user.is_some() {
                ", and that the master user may log in as this user"
            } else {
                ""
            },
        };
        let result = if o.master_user.is_some() || self.has("AUTH=PLAIN") {
            let (authz, authc) = match &o.master_user {
                Some(m) => (o.url.user.as_str(), m.as_str()),
                None => ("", o.url.user.as_str()),
            };
            let blob = base64::engine::general_purpose::STANDARD
                .encode(format!("{authz}\0{authc}\0{}", o.password));
            self.authenticate_plain(&blob)
        } else {
            let (Some(u), Some(p)) = (quoted(o.url.user.as_bytes()), quoted(o.password.as_bytes()))
            else {
                return Err(login_err(
                    "the user name or password has a character LOGIN cannot send".into(),
                ));
            };
            self.command(&format!("LOGIN {u} {p}")).map(|_| ())
        };
        match result {
            Ok(()) => {
                // The capabilities may change after login.
                self.capability()
            }
            Err(ImapcError::Refused(text)) => Err(login_err(text)),
            Err(e) => Err(e),
        }
    }

    fn authenticate_plain(&mut self, blob: &str) -> Result<()> {
        let tag = self.next_tag();
        self.send(&format!("{tag} AUTHENTICATE PLAIN\r\n"))?;
        loop {
            match self.read_response()? {
                Response::Continue(_) => {
                    self.send(&format!("{blob}\r\n"))?;
                }
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    return match status {
                        Status::Ok => {
                            self.take_capabilities(&text);
                            Ok(())
                        }
                        _ => Err(ImapcError::Refused(text.text)),
                    };
                }
                Response::State {
                    status: Status::Bye,
                    text,
                } => return Err(ImapcError::Closed(format!(": {}", text.text))),
                _ => {}
            }
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("N{}", self.tag)
    }

    fn send(&mut self, line: &str) -> Result<()> {
        self.stream.write_all(line.as_bytes())?;
        self.stream.flush()?;
        Ok(())
    }

    fn read_response(&mut self) -> Result<Response> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.framer.next_frame() {
                Ok(Some(f)) => {
                    return imap_resp::parse(&f).map_err(|e| ImapcError::Protocol(e.to_string()))
                }
                Ok(None) => {}
                Err(e) => return Err(ImapcError::Protocol(e.to_string())),
            }
            let n = match self.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(ImapcError::Closed(String::new()));
            }
            self.framer.feed(buf.get(..n).unwrap_or_default());
        }
    }

    /// Sends `TAG command` and reads up to its tagged reply: the untagged responses and the
    /// reply's text; NO or BAD is `Refused` with the server's words.
    pub fn command(&mut self, command: &str) -> Result<(Vec<Response>, StatusText)> {
        let tag = self.next_tag();
        self.send(&format!("{tag} {command}\r\n"))?;
        let mut out = Vec::new();
        loop {
            match self.read_response()? {
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    return match status {
                        Status::Ok => Ok((out, text)),
                        _ => Err(ImapcError::Refused(text.text)),
                    };
                }
                Response::Tagged { tag: t, .. } => {
                    return Err(ImapcError::Protocol(format!(
                        "a reply tagged {t} to command {tag}"
                    )))
                }
                Response::State {
                    status: Status::Bye,
                    text,
                } => return Err(ImapcError::Closed(format!(": {}", text.text))),
                Response::Continue(_) => {
                    return Err(ImapcError::Protocol(
                        "a continuation request nobody asked for".into(),
                    ))
                }
                r => out.push(r),
            }
        }
    }

    /// Every mailbox (`LIST "" "*"`), or the subscribed ones (`LSUB "" "*"`).
    pub fn list(&mut self, subscribed: bool) -> Result<Vec<ListItem>> {
        let cmd = if subscribed {
            "LSUB \"\" \"*\""
        } else {
            "LIST \"\" \"*\""
        };
        let (resps, _) = self.command(cmd)?;
        Ok(resps
            .into_iter()
            .filter_map(|r| match r {
                Response::List(l) if l.lsub == subscribed => Some(l),
                _ => None,
            })
            .collect())
    }

    /// EXAMINE (read-only: \Seen and \Recent stay as they are on the source).
    pub fn examine(&mut self, name: &[u8]) -> Result<Selected> {
        let q = quoted(name).ok_or_else(|| {
            ImapcError::Refused(format!(
                "mailbox {:?}: a name this importer cannot send",
                String::from_utf8_lossy(name)
            ))
        })?;
        let (resps, _) = self.command(&format!("EXAMINE {q}"))?;
        let mut uidvalidity = None;
        let mut exists = 0;
        for r in resps {
            match r {
                Response::Exists(n) => exists = n,
                Response::State { text, .. } => {
                    if let Some((code, arg)) = text.code {
                        if code == "UIDVALIDITY" {
                            uidvalidity = arg.trim().parse().ok();
                        }
                    }
                }
                _ => {}
            }
        }
        let uidvalidity = uidvalidity.filter(|&v| v != 0).ok_or_else(|| {
            ImapcError::Protocol(format!(
                "EXAMINE {} gave no UIDVALIDITY",
                String::from_utf8_lossy(name)
            ))
        })?;
        Ok(Selected {
            uidvalidity,
            exists,
        })
    }

    /// Each message's UID and size, ascending by UID.
    pub fn uids(&mut self) -> Result<Vec<(u32, u64)>> {
        let (resps, _) = self.command("UID FETCH 1:* (UID RFC822.SIZE)")?;
        let mut out: Vec<(u32, u64)> = resps
            .into_iter()
            .filter_map(|r| match r {
                Response::Fetch(f) => Some((f.uid?, f.size.unwrap_or(0))),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup_by_key(|x| x.0);
        Ok(out)
    }

    /// The messages `uids` (ascending) whole: UID, flags, internal date, size, bytes.
    pub fn fetch(&mut self, uids: &[u32]) -> Result<Vec<FetchItem>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let (resps, _) = self.command(&format!(
            "UID FETCH {set} (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"
        ))?;
        // A server may split one message's items over several FETCH responses: merge them.
        let mut by_uid: std::collections::BTreeMap<u32, FetchItem> = Default::default();
        let mut by_seq: std::collections::HashMap<u32, u32> = Default::default();
        for r in resps {
            let Response::Fetch(f) = r else { continue };
            let Some(uid) = f.uid.or_else(|| by_seq.get(&f.seq).copied()) else {
                continue;
            };
            by_seq.insert(f.seq, uid);
            let e = by_uid.entry(uid).or_default();
            e.seq = f.seq;
            e.uid = Some(uid);
            if f.flags.is_some() {
                e.flags = f.flags;
            }
            if f.internal_date.is_some() {
                e.internal_date = f.internal_date;
            }
            if f.size.is_some() {
                e.size = f.size;
            }
            if f.body.is_some() {
                e.body = f.body;
            }
        }
        Ok(by_uid.into_values().collect())
    }

    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }
}

/// `1:3,7,9:10` for 1 2 3 7 9 10 (ascending input).
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = uids.get(i) {
        let mut end = start;
        while uids.get(i + 1) == Some(&(end + 1)) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// A server's mailbox name in our terms: modified UTF-7 decoded, its hierarchy separator
/// made `/`, INBOX in capitals. None when a level holds our separator `/` (it would read
/// back as a level of its own).
pub fn local_name(l: &ListItem) -> Option<String> {
    let raw = String::from_utf8_lossy(&l.name).into_owned();
    let decoded = super::maildir_names::decode_mutf7(&raw).unwrap_or(raw);
    let name = match l.separator {
        Some(b'/') | None => decoded,
        Some(sep) => {
            let sep = char::from(sep);
            if decoded.contains('/') {
                return None;
            }
            decoded.replace(sep, "/")
        }
    };
    if name.eq_ignore_ascii_case("INBOX") {
        return Some("INBOX".into());
    }
    if name.is_empty() || name.split('/').any(str::is_empty) {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ImapUrl::parse("imap://alice@mail.example.org").unwrap();
        assert_eq!(
            (u.tls, u.user.as_str(), u.host.as_str(), u.port),
            (false, "alice", "mail.example.org", 143)
        );
        let u = ImapUrl::parse("imaps://a%40b.org@127.0.0.1:1993/").unwrap();
        assert_eq!((u.tls, u.user.as_str(), u.port), (true, "a@b.org", 1993));
        let u = ImapUrl::parse("imaps://a@b.org@[::1]").unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("a@b.org", "::1", 993)
        );
        for bad in [
            "pop3://a@b",
            "imap://b",
            "imap://@b",
            "imap://a@b:x",
            "imap://a@b:99999",
        ] {
            assert!(ImapUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn names() {
        let l = |sep: Option<u8>, name: &str| ListItem {
            lsub: false,
            attributes: vec![],
            separator: sep,
            name: name.as_bytes().to_vec(),
        };
        assert_eq!(local_name(&l(Some(b'.'), "Work.Sub")).unwrap(), "Work/Sub");
        assert_eq!(local_name(&l(Some(b'.'), "inbox")).unwrap(), "INBOX");
        assert_eq!(local_name(&l(Some(b'/'), "a/b")).unwrap(), "a/b");
        assert_eq!(local_name(&l(Some(b'.'), "a/b")), None);
        assert_eq!(local_name(&l(Some(b'.'), "&AOk-t&AOk-")).unwrap(), "été");
        assert_eq!(local_name(&l(Some(b'/'), "a//b")), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted(b"a\"b\\").unwrap(), "\"a\\\"b\\\\\"");
        assert_eq!(quoted(b"a\r\n"), None);
    }
}
