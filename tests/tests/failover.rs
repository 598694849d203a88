//! Fail-over for real: a two-node lab (`node lab up --nodes 2`: network namespaces, real
//! `node serve` and keepalived, keepalived-led, replicated durability). A client in the
//! client namespace delivers over LMTP and APPENDs over IMAP through the service address at a
//! steady rate while the active node crashes (every process frozen then killed, cable
//! unplugged). Measured: how long until the address answers an IMAP LOGIN again, and that
//! every acknowledged message is on the survivor with the UID it was acknowledged with.
//!
//! Root only (network namespaces): skipped with a message otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::lab::{self, in_netns, Lab};
use tests::lab_client::{self as client, Shared};
use tests::missing_tool;

/// The fail-over must complete within this (the target is under 1 s; see docs/performance.md).
const FAILOVER_BOUND: Duration = Duration::from_secs(5);

fn skip() -> bool {
    if let Some(why) = lab::skip_reason() {
        eprintln!("SKIPPED: fail-over test: {why}");
        return true;
    }
    missing_tool("keepalived") || missing_tool("nft")
}

fn acked_count(log: &Shared) -> usize {
    log.lock().unwrap_or_else(|p| p.into_inner()).acked.len()
}

#[test]
fn active_node_crash_loses_no_acknowledged_mail() {
    if skip() {
        return;
    }
    let lab = Lab::up(2).expect("node lab up --nodes 2");
    let holder = lab
        .holder()
        .expect("a node holds the service address after lab up");
    let survivor = if holder == 1 { 2 } else { 1 };
    let client = lab.client_ns();

    let stop = Arc::new(AtomicBool::new(false));
    let log: Shared = Arc::default();
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        in_netns(&client, move || client::traffic(stop, log, "ko"))
    };

    // Steady traffic first: at least 10 acknowledged writes (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count(&log) < 10 {
        assert!(
            Instant::now() < deadline,
            "fewer than 10 writes acknowledged in 60 s before the crash ({} failures)\n{}",
            log.lock().unwrap_or_else(|p| p.into_inner()).failed.len(),
            lab.status_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // keepalived's own floor, in the same crash: when the survivor's kernel has the address.
    let vip_moved = {
        let ns = lab.node_ns(survivor);
        std::thread::spawn(move || -> Option<Instant> {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let out = std::process::Command::new("ip")
                    .args(["-n", &ns, "-o", "-4", "addr", "show", "dev", "eth0"])
                    .output()
                    .ok()?;
                if String::from_utf8_lossy(&out.stdout).contains(&format!("inet {}/", lab::VIP)) {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    };

    let acked_before = acked_count(&log);
    let t0 = Instant::now();
    lab.crash(holder).expect("node lab crash");
    let crash_took = t0.elapsed();
    let login = in_netns(&client, move || {
        client::first_login_after(t0, Duration::from_secs(30))
    })
    .join()
    .expect("login prober panicked")
    .expect("setns into the client namespace")
    .expect("the service address answers an IMAP LOGIN again");
    let vip_at = vip_moved.join().expect("vip poller panicked");

    // Traffic goes on on the survivor: wait for 10 more acknowledged writes, then stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    let target = acked_count(&log) + 10;
    while acked_count(&log) < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    writer
        .join()
        .expect("writer panicked")
        .expect("setns into the client namespace");
    let (acked, failures) = {
        let l = log.lock().unwrap_or_else(|p| p.into_inner());
        (l.acked.clone(), l.failed.len())
    };
    let first_ack_after = acked.iter().find(|a| a.at > t0).map(|a| a.at - t0);

    assert!(
        lab.holds_vip(survivor),
        "the survivor holds the address\n{}",
        lab.status_text()
    );
    let on_survivor = in_netns(&client, || client::inbox_by_message_id(lab::vip(143)))
        .join()
        .expect("reader panicked")
        .expect("setns")
        .expect("read INBOX on the survivor");
    let (lost, wrong_uid) = client::check_acked(&acked, &on_survivor);

    eprintln!(
        "FAILOVER two nodes, keepalived-led, replicated durability, advert_int 0.1:\n  \
         crash of node {holder} (freeze+kill+unplug) took {} ms\n  \
         VIP on node {survivor}'s interface: {} ms after the crash began (keepalived's floor)\n  \
         IMAP LOGIN answered through the VIP: {} ms after the crash began\n  \
         first write acknowledged after the crash: {}\n  \
         acknowledged writes: {} ({} before the crash), failed attempts: {}, lost: {}, wrong UID: {}",
        crash_took.as_millis(),
        vip_at.map_or("never".to_string(), |t| (t - t0).as_millis().to_string()),
        login.as_millis(),
        first_ack_after.map_or("none".to_string(), |d| format!("{} ms", d.as_millis())),
        acked.len(),
        acked_before,
        failures,
        lost.len(),
        wrong_uid.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but missing on the survivor: {lost:?}"
    );
    assert!(
        wrong_uid.is_empty(),
        "acknowledged with another UID: {wrong_uid:?}"
    );
    assert!(
        login < FAILOVER_BOUND,
        "the service address answered an IMAP LOGIN only {login:?} after the crash (bound {FAILOVER_BOUND:?})"
    );
    assert!(
        acked.len() >= acked_before + 10,
        "writes did not resume on the survivor: {} acknowledged, {acked_before} before the crash",
        acked.len()
    );
}
