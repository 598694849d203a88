//! SASL EXTERNAL with TLS client certificates, against the node binary: certificates made with
//! the openssl CLI (a test CA, a client certificate for demo, one for demo from a CA the server
//! does not trust), logins with Python's imaplib over implicit TLS and with
//! `openssl s_client`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tests::*;

fn make_certs(dir: &Path) {
    let script = r#"
set -e
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=$1" -keyout "$1.key" -out "$1.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null; }
client() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
  -keyout "$3.key" -out "$3.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > ext.cnf
  openssl x509 -req -in "$3.csr" -CA "$1.pem" -CAkey "$1.key" -CAcreateserial -days 30 \
    -extfile ext.cnf -out "$3.pem" 2>/dev/null; }
ca trusted; ca stranger
client trusted demo demo
client stranger demo forged
"#;
    let out = run(
        Command::new("bash").arg("-c").arg(script).current_dir(dir),
        None,
        Duration::from_secs(60),
    )
    .expect("openssl");
    assert!(out.status.success(), "certificates: {}", out.stderr_text());
}

#[test]
fn external_with_verified_client_certificates_only() {
    if missing_tool("openssl") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let ca = certs.path().join("trusted.pem");
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Imaps],
        extra_toml: format!(
            "auth_mechanisms = \"plain external\"\nauth_failure_delay = \"0\"\n\
             ssl_ca = \"<{}\"\nssl_verify_client_cert = true\n",
            ca.display()
        ),
        ..Default::default()
    })
    .expect("start node");
    let script = format!(
        "CERTS = {:?}\n{}",
        certs.path().display().to_string(),
        r#"
import imaplib, os, ssl
def connect(name=None):
    ctx = ssl.create_default_context(cafile=os.environ['CERT'])
    if name:
        ctx.load_cert_chain(os.path.join(CERTS, name + '.pem'), os.path.join(CERTS, name + '.key'))
    return imaplib.IMAP4_SSL('localhost', int(os.environ['IMAPS_PORT']), ssl_context=ctx)

M = connect('demo')
assert 'AUTH=EXTERNAL' in M.capabilities, M.capabilities
typ, _ = M.authenticate('EXTERNAL', lambda c: b'')
assert typ == 'OK'
typ, data = M.select('INBOX'); assert typ == 'OK', data
M.logout()

# The certificate names demo: asking for another identity fails.
M = connect('demo')
try:
    M.authenticate('EXTERNAL', lambda c: b'alice')
    raise AssertionError('EXTERNAL as alice with demo certificate succeeded')
except imaplib.IMAP4.error as e:
    assert 'AUTHENTICATIONFAILED' in str(e), e
M.logout()

# No client certificate: TLS works, EXTERNAL is neither offered nor accepted.
M = connect()
assert 'AUTH=EXTERNAL' not in M.capabilities, M.capabilities
try:
    M.authenticate('EXTERNAL', lambda c: b'')
    raise AssertionError('EXTERNAL without a certificate succeeded')
except imaplib.IMAP4.error as e:
    assert 'AUTHENTICATIONFAILED' in str(e), e
typ, _ = M.login('demo', 'demo'); assert typ == 'OK'
M.logout()

# A certificate from a CA the server does not trust: the handshake is refused.
try:
    connect('forged')
    raise AssertionError('untrusted client certificate accepted')
except (ssl.SSLError, ConnectionError, OSError) as e:
    pass
"#
    );
    server.python(&script, Duration::from_secs(60));

    // openssl s_client, as an operator would check it by hand.
    let out = run(
        Command::new("openssl")
            .args(["s_client", "-quiet", "-ign_eof", "-connect"])
            .arg(format!("127.0.0.1:{}", server.ports.imaps))
            .arg("-cert")
            .arg(certs.path().join("demo.pem"))
            .arg("-key")
            .arg(certs.path().join("demo.key")),
        Some(b"a AUTHENTICATE EXTERNAL =\r\nb LOGOUT\r\n"),
        Duration::from_secs(30),
    )
    .expect("openssl s_client");
    let text = out.stdout_text();
    assert!(
        text.lines().any(|l| l.starts_with("a OK")),
        "s_client: {text}\n{}",
        out.stderr_text()
    );
    assert!(
        server.log_text().contains("method=EXTERNAL"),
        "{}",
        tail(&server.log_text(), 20)
    );
}
