//! Authentication policy as users and operators see it: `ssl = required` refuses plaintext
//! authentication even on loopback (LOGINDISABLED, a clear NO) while STARTTLS/STLS and
//! implicit TLS work; a failed login is delayed without delaying anyone else and is logged
//! with `rip=` for fail2ban; mail_max_userip_connections holds under a burst.

use std::time::{Duration, Instant};
use tests::*;

#[test]
fn ssl_required_refuses_plaintext_auth_even_on_loopback() {
    let server = Server::start(ServerSpec {
        ssl: "required",
        ..Default::default()
    })
    .expect("start node");

    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let caps = c.imap("c", "CAPABILITY").expect("capability").join("\n");
    assert!(
        caps.contains("LOGINDISABLED") && caps.contains("STARTTLS"),
        "{caps}"
    );
    let r = c.imap("a", "LOGIN demo demo").expect("login");
    let t = tagged(&r);
    assert!(
        t.starts_with("a NO") && t.contains("Plaintext authentication"),
        "plaintext LOGIN with ssl=required: {r:?}"
    );
    let r = c
        .imap("b", "AUTHENTICATE PLAIN AGRlbW8AZGVtbw==")
        .expect("authenticate");
    assert!(
        tagged(&r).starts_with("b NO"),
        "plaintext AUTHENTICATE with ssl=required: {r:?}"
    );

    let mut p = LineConn::connect(server.addr(Proto::Pop3)).expect("connect pop3");
    p.line().expect("greeting");
    p.send("USER demo").expect("user");
    let user = p.line().expect("user reply");
    let refused = if user.starts_with("-ERR") {
        user
    } else {
        p.send("PASS demo").expect("pass");
        p.line().expect("pass reply")
    };
    assert!(
        refused.starts_with("-ERR"),
        "plaintext POP3 login with ssl=required: {refused}"
    );

    // Over TLS the same credentials work: STARTTLS, IMAPS, STLS, POP3S.
    server.python(
        r#"
import imaplib, poplib, ssl, os
ctx = ssl.create_default_context(cafile=os.environ['CERT'])
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT'])); M.starttls(ssl_context=ctx)
assert M.login('demo', 'demo')[0] == 'OK'; M.logout()
M = imaplib.IMAP4_SSL('localhost', int(os.environ['IMAPS_PORT']), ssl_context=ctx)
assert M.login('demo', 'demo')[0] == 'OK'; M.logout()
P = poplib.POP3('127.0.0.1', int(os.environ['POP3_PORT']), timeout=20); P.stls(context=ctx)
P.user('demo'); P.pass_('demo'); P.quit()
P = poplib.POP3_SSL('localhost', int(os.environ['POP3S_PORT']), context=ctx, timeout=20)
P.user('demo'); P.pass_('demo'); P.quit()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn failed_login_is_delayed_logged_with_rip_and_delays_nobody_else() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        extra_toml: "auth_failure_delay = \"2 secs\"".into(),
        ..Default::default()
    })
    .expect("start node");

    let mut bad = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    bad.line().expect("greeting");
    let started = Instant::now();
    bad.send("f LOGIN demo wrong-password").expect("login");

    // While that failure is being delayed, another client logs in at once.
    let mut good = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    good.line().expect("greeting");
    let t = Instant::now();
    let r = good.imap("g", "LOGIN alice alicepw").expect("login");
    let good_took = t.elapsed();
    assert!(tagged(&r).starts_with("g OK"), "{r:?}");

    let r = bad.imap_until("f").expect("failed login reply");
    let bad_took = started.elapsed();
    assert!(tagged(&r).starts_with("f NO"), "{r:?}");
    assert!(tagged(&r).contains("AUTHENTICATIONFAILED"), "{r:?}");
    assert!(
        bad_took >= Duration::from_millis(1900),
        "failure answered after {bad_took:?}, not delayed 2 s"
    );
    assert!(
        good_took < Duration::from_millis(1000),
        "a good login took {good_took:?} while another client's failure was being delayed"
    );

    std::thread::sleep(Duration::from_millis(200));
    let log = server.log_text();
    assert!(
        log.lines().any(|l| l.contains("demo")
            && l.contains("rip=127.0.0.1")
            && (l.contains("auth") || l.contains("Authentication") || l.contains("mismatch"))),
        "no fail2ban-friendly log line (user and rip=) for the failed login:\n{}",
        tail(&log, 40)
    );
}

#[test]
fn mail_max_userip_connections_holds_under_a_burst() {
    const LIMIT: usize = 3;
    const BURST: usize = 8;
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        extra_toml: format!("mail_max_userip_connections = {LIMIT}"),
        ..Default::default()
    })
    .expect("start node");
    let addr = server.addr(Proto::Imap);

    // All connections greeted first, then every LOGIN sent at the same moment.
    let mut conns: Vec<LineConn> = (0..BURST)
        .map(|_| {
            let mut c = LineConn::connect(addr).expect("connect");
            c.line().expect("greeting");
            c
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(BURST));
    let results: Vec<(LineConn, bool, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .drain(..)
            .map(|mut c| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let r = c
                        .imap("l", "LOGIN demo demo")
                        .unwrap_or_else(|e| vec![format!("error: {e}")]);
                    let ok = tagged(&r).starts_with("l OK")
                        && c.imap("n", "NOOP")
                            .map(|n| tagged(&n).starts_with("n OK"))
                            .unwrap_or(false);
                    (c, ok, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect()
    });
    let ok = results.iter().filter(|(_, ok, _)| *ok).count();
    let replies: Vec<&Vec<String>> = results.iter().map(|(_, _, r)| r).collect();
    assert_eq!(
        ok, LIMIT,
        "{BURST} simultaneous logins with a limit of {LIMIT}: {replies:#?}"
    );
}

/// Hashes made by Dovecot 2.3's `doveadm pw` (password "migrated-pw"): an operator's
/// existing passwd-file works unchanged.
const DOVEADM_HASHES: [(&str, &str); 4] = [
    ("sha512", "{SHA512-CRYPT}$6$shmqawSHSq9iCPGl$w4rg3d1skkv2QDorYlf4W.ERKZEtUCNj/iL67shuIwsqY02CHE0.EYJ7zEdpYd8icO0dP1QbGUvD4oMUrxiJ61"),
    ("argon2id", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$o9VXckjKDhrM9pRBBB3wgg$Vv+0sjvhvv6dpxI6yYGx5gntkZIhew15m8cIPh5PrYI"),
    ("blf", "{BLF-CRYPT}$2y$05$TQkn.oDxTrdJXLXlPhHgouOyZeiOLiPcZV5erUyvxXPlJasSt.CJ."),
    ("sha256", "{SHA256-CRYPT}$5$tuE8acB..lPx.nT/$iXAld8VqYgJxBBDVURM76MTtksmZzAu07sQXPxSviG9"),
];

fn imap_login_reply(server: &Server, user: &str, pass: &str) -> String {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c
        .imap("a", &format!("LOGIN \"{user}\" \"{pass}\""))
        .expect("login");
    tagged(&r).to_string()
}

#[test]
fn dovecot_made_hashes_log_in_and_passwd_file_edits_apply_without_restart() {
    let mut users = vec![User::plain("demo", "demo")];
    users.extend(DOVEADM_HASHES.iter().map(|(name, hash)| User {
        name: name.to_string(),
        password: "migrated-pw".into(),
        scheme: Scheme::Precomputed(hash),
    }));
    let server = Server::start(ServerSpec {
        users,
        wait_for: vec![Proto::Imap],
        extra_toml: "auth_failure_delay = \"0\"".into(),
        ..Default::default()
    })
    .expect("start node");
    for (name, _) in DOVEADM_HASHES {
        let r = imap_login_reply(&server, name, "migrated-pw");
        assert!(r.starts_with("a OK"), "{name} with a doveadm pw hash: {r}");
        let r = imap_login_reply(&server, name, "wrong");
        assert!(r.starts_with("a NO"), "{name} with a wrong password: {r}");
    }

    // A user added to the passwd-file (hash from `node pw`) can log in without a restart.
    let r = imap_login_reply(&server, "carol", "carol-pw");
    assert!(r.starts_with("a NO"), "carol before she exists: {r}");
    let hash = hash_password(Scheme::Argon2id, "carol-pw").expect("node pw");
    let mut passwd = std::fs::read_to_string(&server.paths.passwd).expect("passwd");
    passwd.push_str(&format!("carol:{hash}::::::\n"));
    std::fs::write(&server.paths.passwd, passwd).expect("write passwd");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = imap_login_reply(&server, "carol", "carol-pw");
        if r.starts_with("a OK") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "carol added to the passwd-file still refused: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
