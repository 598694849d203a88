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
