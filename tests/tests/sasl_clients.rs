//! The challenge-response mechanisms with real clients against the node binary: SCRAM-SHA-1 and
//! SCRAM-SHA-256 through Python's imaplib (with a small SCRAM client in the script, imaplib has
//! none) against a {PLAIN} entry, a `node pw -s SCRAM-SHA-256` entry and a `doveadm pw`
//! entry; CRAM-MD5 through imaplib's login_cram_md5 and curl; APOP through poplib.

use std::process::Command;
use std::time::Duration;
use tests::*;

/// Made once with Dovecot 2.3.19's `doveadm pw -s SCRAM-SHA-256 -p 'Sup3r secret'`.
const DOVEADM_SCRAM: &str = "{SCRAM-SHA-256}4096,PWSCVuSqxlmX6axwKI/ETA==,RzYkdPhRPsrwzCrFD/a98Rc0H5MCvt44yh4WMJaPWD4=,Z30zfGkMrirmscSpKdUeuXcpUQgdWf/jQAm0SfIi760=";

fn node_pw(scheme: &str, password: &str) -> String {
    let out = run(
        Command::new(node_bin()).args(["pw", "-s", scheme, "-p", password]),
        None,
        Duration::from_secs(60),
    )
    .expect("node pw");
    assert!(out.status.success(), "node pw: {}", out.stderr_text());
    out.stdout_text().trim().to_string()
}

fn spec(mechanisms: &str) -> ServerSpec {
    let scram = node_pw("SCRAM-SHA-256", "pencil");
    assert!(scram.starts_with("{SCRAM-SHA-256}4096,"), "{scram}");
    ServerSpec {
        users: vec![
            User::plain("demo", "demo"),
            User {
                name: "scram".into(),
                password: "pencil".into(),
                scheme: Scheme::Precomputed(Box::leak(scram.into_boxed_str())),
            },
            User {
                name: "dove".into(),
                password: "Sup3r secret".into(),
                scheme: Scheme::Precomputed(DOVEADM_SCRAM),
            },
            User::argon2id("hashed", "hashedpw"),
        ],
        wait_for: vec![Proto::Imap, Proto::Pop3],
        extra_toml: format!("auth_mechanisms = \"{mechanisms}\"\nauth_failure_delay = \"0\"\n"),
        ..Default::default()
    }
}

const SCRAM_CLIENT: &str = r#"
import base64, hashlib, hmac, imaplib, os

def scram(M, mech, user, password):
    """Authenticates with SCRAM; returns the server signature check's result."""
    h = {'SCRAM-SHA-1': hashlib.sha1, 'SCRAM-SHA-256': hashlib.sha256}[mech]
    cnonce = base64.b64encode(os.urandom(18)).decode()
    bare = 'n=%s,r=%s' % (user, cnonce)
    state = {'step': 0}
    def step(challenge):
        state['step'] += 1
        if state['step'] == 1:
            return ('n,,' + bare).encode()
        if state['step'] == 2:
            server_first = challenge.decode()
            attrs = dict(a.split('=', 1) for a in server_first.split(','))
            assert attrs['r'].startswith(cnonce), server_first
            salted = hashlib.pbkdf2_hmac(h().name, password.encode(),
                                         base64.b64decode(attrs['s']), int(attrs['i']))
            client_key = hmac.new(salted, b'Client Key', h).digest()
            stored = h(client_key).digest()
            without_proof = 'c=biws,r=' + attrs['r']
            auth_message = ','.join([bare, server_first, without_proof]).encode()
            sig = hmac.new(stored, auth_message, h).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, sig))
            server_key = hmac.new(salted, b'Server Key', h).digest()
            state['v'] = 'v=' + base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
            return (without_proof + ',p=' + base64.b64encode(proof).decode()).encode()
        assert challenge.decode() == state['v'], ('server signature', challenge, state['v'])
        state['verified'] = True
        return b''
    typ, data = M.authenticate(mech, step)
    assert state.get('verified'), 'OK without the server signature'
    return typ

def imap():
    return imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))

def refused(fn):
    try:
        fn()
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError('login succeeded')
"#;

#[test]
fn imaplib_scram_sha1_and_sha256() {
    let server =
        Server::start(spec("plain scram-sha-1 scram-sha-256 cram-md5")).expect("start node");
    server.python(
        &format!(
            "{SCRAM_CLIENT}{}",
            r#"
M = imap()
caps = M.capabilities
for m in ('AUTH=PLAIN', 'AUTH=SCRAM-SHA-1', 'AUTH=SCRAM-SHA-256', 'AUTH=CRAM-MD5'):
    assert m in caps, caps
assert not any(c.endswith('-PLUS') for c in caps), caps
M.logout()

# A {PLAIN} entry serves both hashes; node pw's and doveadm's {SCRAM-SHA-256} entries serve theirs.
for mech, user, pw in [('SCRAM-SHA-256', 'demo', 'demo'), ('SCRAM-SHA-1', 'demo', 'demo'),
                       ('SCRAM-SHA-256', 'scram', 'pencil'),
                       ('SCRAM-SHA-256', 'dove', 'Sup3r secret')]:
    M = imap()
    assert scram(M, mech, user, pw) == 'OK', (mech, user)
    typ, data = M.select('INBOX'); assert typ == 'OK', data
    M.logout()

# Wrong passwords, a hash SCRAM cannot use, a SCRAM-SHA-256 secret asked for SHA-1, a user
# that does not exist: all AUTHENTICATIONFAILED.
for mech, user, pw in [('SCRAM-SHA-256', 'demo', 'wrong'), ('SCRAM-SHA-256', 'dove', 'Sup3r secreT'),
                       ('SCRAM-SHA-256', 'hashed', 'hashedpw'), ('SCRAM-SHA-1', 'scram', 'pencil'),
                       ('SCRAM-SHA-256', 'nobody', 'x')]:
    M = imap()
    err = refused(lambda: scram(M, mech, user, pw))
    assert 'AUTHENTICATIONFAILED' in err, (mech, user, err)
    M.logout()

# PLAIN still works against the SCRAM entries (Dovecot verifies plaintext against them).
M = imap(); M.login('dove', 'Sup3r secret'); M.logout()
M = imap(); M.login('scram', 'pencil'); M.logout()
"#
        ),
        Duration::from_secs(60),
    );
    let log = server.log_text();
    assert!(
        log.contains("method=SCRAM-SHA-256") && log.contains("method=SCRAM-SHA-1"),
        "{}",
        tail(&log, 30)
    );
}

#[test]
fn cram_md5_with_imaplib_and_curl_and_apop_with_poplib() {
    let server = Server::start(spec("plain cram-md5 apop")).expect("start node");
    server.python(
        &format!(
            "{SCRAM_CLIENT}{}",
            r#"
import poplib
M = imap()
assert 'AUTH=CRAM-MD5' in M.capabilities and 'AUTH=SCRAM-SHA-256' not in M.capabilities, M.capabilities
typ, _ = M.login_cram_md5('demo', 'demo'); assert typ == 'OK'
M.logout()
for user, pw in [('demo', 'wrong'), ('hashed', 'hashedpw'), ('dove', 'Sup3r secret')]:
    M = imap()
    err = refused(lambda: M.login_cram_md5(user, pw))
    assert 'AUTHENTICATIONFAILED' in err, (user, err)
    M.logout()

P = poplib.POP3('127.0.0.1', int(os.environ['POP3_PORT']))
assert b'<' in P.getwelcome(), P.getwelcome()
assert P.apop('demo', 'demo').startswith(b'+OK'), 'apop'
P.quit()
P = poplib.POP3('127.0.0.1', int(os.environ['POP3_PORT']))
try:
    P.apop('demo', 'wrong')
    raise AssertionError('APOP with a wrong password succeeded')
except poplib.error_proto as e:
    assert b'Authentication failed' in e.args[0], e
P.quit()
"#
        ),
        Duration::from_secs(60),
    );

    if missing_tool("curl") {
        return;
    }
    let url = format!("imap://127.0.0.1:{}/", server.ports.imap);
    let curl = |user: &str| {
        run(
            Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "20",
                    "--login-options",
                    "AUTH=CRAM-MD5",
                ])
                .args(["-u", user, &url]),
            None,
            Duration::from_secs(30),
        )
        .expect("curl")
    };
    let ok = curl("demo:demo");
    assert!(ok.status.success(), "curl: {}", ok.stderr_text());
    assert!(ok.stdout_text().contains("INBOX"), "{}", ok.stdout_text());
    let bad = curl("demo:wrong");
    assert!(
        !bad.status.success(),
        "curl with a wrong password succeeded"
    );
    assert!(
        server.log_text().contains("method=CRAM-MD5"),
        "{}",
        tail(&server.log_text(), 20)
    );
}

/// With `ssl = required` plaintext mechanisms are refused without TLS, but SCRAM (which never
/// sends the password) is offered and works.
#[test]
fn scram_offered_where_plaintext_is_refused() {
    let mut s = spec("plain scram-sha-256");
    s.ssl = "required";
    let server = Server::start(s).expect("start node");
    server.python(
        &format!(
            "{SCRAM_CLIENT}{}",
            r#"
M = imap()
caps = M.capabilities
assert 'LOGINDISABLED' in caps and 'AUTH=SCRAM-SHA-256' in caps and 'AUTH=PLAIN' not in caps, caps
assert scram(M, 'SCRAM-SHA-256', 'demo', 'demo') == 'OK'
M.logout()
"#
        ),
        Duration::from_secs(60),
    );
}
