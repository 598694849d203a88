//! A login storm: 200 IMAP logins against ARGON2ID hashes (the verified-credentials cache
//! off, so every login pays for a hash) while one IDLE session of another user keeps
//! leaving IDLE, answering NOOP and going back: every NOOP must be answered in under
//! 50 ms, because hashing runs where it cannot stall the async threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::*;

const USERS: usize = 20;
const LOGINS: usize = 200;
const CLIENT_THREADS: usize = 8;
const STORM_BUDGET: Duration = Duration::from_secs(600);

#[test]
fn argon2id_login_storm_does_not_stall_an_idle_session() {
    let mut users = vec![User::plain("demo", "demo")];
    users.extend(
        (0..USERS).map(|i| User::argon2id(&format!("storm{i}"), &format!("pw-{i}-secret"))),
    );
    let server = Server::start(ServerSpec {
        users: users.clone(),
        wait_for: vec![Proto::Imap],
        // Dovecot's name; 0 disables the verified-credentials cache, so each of the 200
        // logins verifies an ARGON2ID hash.
        extra_toml: "auth_cache_size = 0".into(),
        ..Default::default()
    })
    .expect("start node");
    let addr = server.addr(Proto::Imap);

    let mut idle = LineConn::connect(addr).expect("connect");
    idle.line().expect("greeting");
    let r = idle.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = idle.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");

    // Baseline before the storm: 3 s of NOOP round trips (one every 10 ms) on the idle
    // server, so a failure tells a stalled server apart from a machine busy with other work.
    let mut baseline_max = Duration::ZERO;
    let baseline_start = Instant::now();
    let mut i = 0;
    while baseline_start.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        let r = idle.imap(&format!("b{i}"), "NOOP").expect("noop");
        baseline_max = baseline_max.max(t.elapsed());
        assert!(tagged(&r).contains(" OK"), "{r:?}");
        std::thread::sleep(Duration::from_millis(10));
        i += 1;
    }

    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            let (next, ok, users) = (next.clone(), ok.clone(), users.clone());
            std::thread::spawn(move || -> Result<(), String> {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= LOGINS || started.elapsed() > STORM_BUDGET {
                        return Ok(());
                    }
                    let u = &users[1 + i % USERS];
                    let mut c = LineConn::connect(addr).map_err(|e| format!("login {i}: {e}"))?;
                    c.set_timeout(Duration::from_secs(120))
                        .map_err(|e| e.to_string())?;
                    c.line().map_err(|e| format!("login {i} greeting: {e}"))?;
                    let r = c
                        .imap("a", &format!("LOGIN {} {}", u.name, u.password))
                        .map_err(|e| format!("login {i}: {e}"))?;
                    if !tagged(&r).starts_with("a OK") {
                        return Err(format!("login {i} as {}: {r:?}", u.name));
                    }
                    ok.fetch_add(1, Ordering::SeqCst);
                    let _ = c.imap("z", "LOGOUT");
                }
            })
        })
        .collect();

    // The IDLE session: IDLE, DONE, NOOP, again, for as long as the storm lasts.
    let mut noop_max = Duration::ZERO;
    let mut done_max = Duration::ZERO;
    let mut rounds = 0;
    let stop = {
        let done = done.clone();
        let next = next.clone();
        move || done.load(Ordering::SeqCst) || next.load(Ordering::SeqCst) >= LOGINS
    };
    while !stop() || rounds == 0 {
        idle.send(&format!("i{rounds} IDLE")).expect("idle");
        let cont = idle.line().expect("idle continuation");
        assert!(cont.starts_with('+'), "IDLE continuation: {cont}");
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        idle.send("DONE").expect("done");
        let r = idle.imap_until(&format!("i{rounds}")).expect("idle end");
        done_max = done_max.max(t.elapsed());
        assert!(tagged(&r).contains(" OK"), "{r:?}");
        let t = Instant::now();
        let r = idle.imap(&format!("n{rounds}"), "NOOP").expect("noop");
        noop_max = noop_max.max(t.elapsed());
        assert!(tagged(&r).contains(" OK"), "{r:?}");
        rounds += 1;
    }
    done.store(true, Ordering::SeqCst);
    for w in workers {
        if let Err(e) = w.join().expect("login thread") {
            panic!("{e}");
        }
    }
    let elapsed = started.elapsed();
    let logins = ok.load(Ordering::SeqCst);
    eprintln!(
        "{logins} ARGON2ID logins in {elapsed:?}; IDLE session: {rounds} rounds, \
         NOOP max {noop_max:?} (before the storm: {baseline_max:?}), IDLE-DONE max {done_max:?}"
    );
    assert_eq!(
        logins, LOGINS,
        "not every login succeeded within {STORM_BUDGET:?}"
    );
    assert!(
        noop_max < Duration::from_millis(50),
        "NOOP during the login storm took up to {noop_max:?} (must be < 50 ms; before the \
         storm: {baseline_max:?}); {logins} logins in {elapsed:?}, {rounds} rounds, \
         IDLE-DONE max {done_max:?}"
    );
}
