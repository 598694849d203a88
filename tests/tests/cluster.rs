//! Whole-cluster tests (issue 6): separate `node serve` processes with their own data dirs
//! and ports on loopback, replicating over mutual TLS. Every wait polls with a deadline.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::cluster::{
    fetch_all, imap_login, imap_ok, message, select, Cluster, ClusterSpec, Dump, USER,
};
use tests::{lmtp_deliver, LineConn, Proto, Server};

/// Generous for a debug build on a busy 2-core machine; replication itself takes ms.
const CONVERGE: Duration = Duration::from_secs(20);

fn deliver(node: &Server, id: &str) {
    let replies = lmtp_deliver(
        node.addr(Proto::Lmtp),
        "sender@example.com",
        &[&format!("{USER}@example.org")],
        &message(id, &format!("body of {id}")),
    )
    .unwrap_or_else(|e| panic!("deliver {id}: {e:#}"));
    assert!(replies[0].starts_with("250"), "{id}: {replies:?}");
}

fn inbox(d: &Dump) -> &tests::cluster::MailboxDump {
    d.mailboxes.get("INBOX").expect("INBOX in the dump")
}

#[test]
fn delivery_on_a_is_fetchable_on_b_with_same_uid_flags_and_modseq() {
    let c = Cluster::start(ClusterSpec {
        durability: "replicated",
        sync_timeout: "30s",
        ..ClusterSpec::default()
    })
    .unwrap();
    // Replicated durability: the 250 comes after B's durable ack.
    deliver(&c.nodes[0], "one");
    deliver(&c.nodes[0], "two");

    let fetch = |i: usize| {
        let mut s = imap_login(&c.nodes[i]).unwrap();
        select(&mut s, "INBOX").unwrap();
        fetch_all(&mut s).unwrap()
    };
    let a = fetch(0);
    assert_eq!(a.len(), 2, "{a:?}");
    // Acknowledged in replicated mode, so already on B: no waiting needed.
    let b = fetch(1);
    assert_eq!(a, b, "UID, FLAGS, MODSEQ or BODY[] differ between A and B");

    // Flags set over IMAP on A reach B.
    let mut s = imap_login(&c.nodes[0]).unwrap();
    select(&mut s, "INBOX").unwrap();
    let first = *a.keys().next().unwrap();
    imap_ok(
        &mut s,
        "st",
        &format!("UID STORE {first} +FLAGS (\\Flagged \\Seen $Important)"),
    )
    .unwrap();
    let a2 = fetch(0);
    assert_eq!(
        a2[&first].flags,
        vec!["$Important", "\\Flagged", "\\Seen"],
        "{a2:?}"
    );
    let deadline = Instant::now() + CONVERGE;
    loop {
        let b2 = fetch(1);
        if b2 == a2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flags did not reach B with the same modseq:\nA {a2:?}\nB {b2:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.wait_converged(&[0, 1], CONVERGE).unwrap();
}

#[test]
fn stopped_replica_catches_up_after_restart() {
    let mut c = Cluster::start(ClusterSpec::default()).unwrap();
    deliver(&c.nodes[0], "before");
    c.wait_converged(&[0, 1], CONVERGE).unwrap();

    let status = c.nodes[1].stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "B's SIGTERM exit: {status:?}"
    );
    for i in 0..5 {
        deliver(&c.nodes[0], &format!("while-down-{i}"));
    }
    let mut s = imap_login(&c.nodes[0]).unwrap();
    select(&mut s, "INBOX").unwrap();
    imap_ok(&mut s, "st", "UID STORE 1:3 +FLAGS (\\Answered $Label1)").unwrap();
    imap_ok(&mut s, "cr", "CREATE \"Made while B was down\"").unwrap();
    let a = c.dump(0).unwrap();
    assert_eq!(inbox(&a).messages.len(), 6, "{a}");

    c.nodes[1]
        .restart(&[Proto::Imap, Proto::Pop3, Proto::Lmtp])
        .unwrap();
    let converged = c.wait_converged(&[0, 1], CONVERGE).unwrap();
    assert_eq!(converged, a, "B caught up, but A changed meanwhile");
}

#[test]
fn both_sides_written_while_link_is_cut_converge_after_heal() {
    let (c, uidvalidity) = split_brain_then_heal();
    // Everything but modseqs (see the next test).
    let after = c
        .wait_converged_by(&[0, 1], CONVERGE, Dump::without_modseqs)
        .unwrap();
    check_nothing_lost(&after, uidvalidity);
}

/// Invariant 5 (design.md) includes modseqs: replicas converge to the same modseqs (the
/// resolver, node 1, aligns them after the heal: `Op::AlignModseqs`).
#[test]
fn both_sides_written_while_link_is_cut_converge_with_same_modseqs() {
    let (c, uidvalidity) = split_brain_then_heal();
    let after = c.wait_converged(&[0, 1], CONVERGE).unwrap();
    check_nothing_lost(&after, uidvalidity);
    // HIGHESTMODSEQ too, and above every message's modseq.
    let deadline = Instant::now() + CONVERGE;
    let high = loop {
        let (a, b) = (
            highestmodseq(&c.nodes[0], "INBOX"),
            highestmodseq(&c.nodes[1], "INBOX"),
        );
        if a == b || Instant::now() > deadline {
            assert_eq!(a, b, "INBOX HIGHESTMODSEQ on node 1 and node 2");
            break a;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let top = inbox(&after).messages.values().map(|m| m.modseq).max();
    assert!(top.is_some_and(|t| t <= high), "{high} {after}");
    // What an operator's Prometheus sees on the resolver: the alignment, the peer back.
    let m = metrics(&c.nodes[0]);
    let value = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{m}"))
    };
    assert!(
        value("node_replication_modseqs_aligned_total") >= 1.0,
        "{m}"
    );
    assert_eq!(
        value("node_replication_peer_connected{peer=\"2\"}"),
        1.0,
        "{m}"
    );
}

/// The body of GET /metrics on the node's health port.
fn metrics(node: &Server) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", node.ports.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

/// HIGHESTMODSEQ of a mailbox as SELECT (CONDSTORE enabled) reports it.
fn highestmodseq(node: &Server, mailbox: &str) -> u64 {
    let mut s = imap_login(node).unwrap();
    let r = imap_ok(&mut s, "h", &format!("SELECT \"{mailbox}\"")).unwrap();
    r.iter()
        .find_map(|l| {
            l.strip_prefix("* OK [HIGHESTMODSEQ ")
                .and_then(|x| x.split(']').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no HIGHESTMODSEQ in {r:?}"))
}

/// Two nodes, every link through a proxy; 3 shared messages, then the links cut and
/// both sides written (deliveries to INBOX on both, flags on both, a mailbox created on
/// each), checked apart, then healed. Returns the cluster right after the heal and
/// INBOX's UIDVALIDITY before the split.
fn split_brain_then_heal() -> (Cluster, u32) {
    let c = Cluster::start(ClusterSpec {
        proxied: true,
        ..ClusterSpec::default()
    })
    .unwrap();
    for i in 0..3 {
        deliver(&c.nodes[0], &format!("shared-{i}"));
    }
    let before = c.wait_converged(&[0, 1], CONVERGE).unwrap();
    assert_eq!(inbox(&before).messages.len(), 3, "{before}");

    for p in &c.proxies {
        p.cut();
    }
    // Same mailbox on both sides: both take UIDs 4.. for different messages.
    for i in 0..3 {
        deliver(&c.nodes[0], &format!("cut-a-{i}"));
        deliver(&c.nodes[1], &format!("cut-b-{i}"));
    }
    let mut sa = imap_login(&c.nodes[0]).unwrap();
    let mut sb = imap_login(&c.nodes[1]).unwrap();
    select(&mut sa, "INBOX").unwrap();
    select(&mut sb, "INBOX").unwrap();
    // Flags on both sides; on UID 1 the same flag set on A, then set and cleared on B
    // later: the clear is the latest change by the hybrid clock and must win.
    imap_ok(&mut sa, "1", "UID STORE 1 +FLAGS (\\Seen \\Answered)").unwrap();
    imap_ok(&mut sb, "1", "UID STORE 2 +FLAGS (\\Flagged $FromB)").unwrap();
    imap_ok(&mut sb, "2", "UID STORE 1 +FLAGS (\\Answered)").unwrap();
    imap_ok(&mut sb, "3", "UID STORE 1 -FLAGS (\\Answered)").unwrap();
    // UID 3 flagged on B, expunged on A: the expunge wins.
    imap_ok(&mut sb, "4", "UID STORE 3 +FLAGS (\\Flagged)").unwrap();
    imap_ok(&mut sa, "2", "UID STORE 3 +FLAGS (\\Deleted)").unwrap();
    imap_ok(&mut sa, "x", "UID EXPUNGE 3").unwrap();
    imap_ok(&mut sa, "3", "CREATE \"Made on A\"").unwrap();
    imap_ok(&mut sb, "5", "CREATE \"Made on B\"").unwrap();
    drop((sa, sb));
    // The cut held: each side sees only its own writes.
    let (da, db) = (c.dump(0).unwrap(), c.dump(1).unwrap());
    assert!(!da.mailboxes.contains_key("Made on B"), "{da}");
    assert!(!db.mailboxes.contains_key("Made on A"), "{db}");
    assert_eq!(inbox(&da).messages.len(), 5, "{da}");
    assert_eq!(inbox(&db).messages.len(), 6, "{db}");

    for p in &c.proxies {
        p.heal();
    }
    (c, inbox(&before).uidvalidity)
}

/// The merged state after [`split_brain_then_heal`]: both mailboxes, INBOX's UIDVALIDITY
/// kept, the 8 messages left once each, flags merged.
fn check_nothing_lost(after: &Dump, uidvalidity: u32) {
    let inbox_after = inbox(after);
    assert!(after.mailboxes.contains_key("Made on A"), "{after}");
    assert!(after.mailboxes.contains_key("Made on B"), "{after}");
    assert_eq!(inbox_after.uidvalidity, uidvalidity, "{after}");
    // Nothing lost: the shared messages not expunged and the 6 written apart, each once.
    let mut ids: Vec<String> = inbox_after
        .messages
        .values()
        .filter_map(|m| {
            m.body
                .lines()
                .find(|l| l.starts_with("Message-ID:"))
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..3)
        .flat_map(|i| [format!("cut-a-{i}"), format!("cut-b-{i}")])
        .chain(["shared-0".to_string(), "shared-1".to_string()])
        .map(|id| format!("Message-ID: <{id}@cluster.test>"))
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "{after}");
    assert_eq!(after.inbox_uidls.len(), 8, "{after}");
    let flags = |uid: u32| inbox_after.messages.get(&uid).map(|m| m.flags.clone());
    assert_eq!(flags(1), Some(vec!["\\Seen".to_string()]), "{after}");
    assert_eq!(
        flags(2),
        Some(vec!["$FromB".to_string(), "\\Flagged".to_string()]),
        "{after}"
    );
    assert_eq!(
        flags(3),
        None,
        "the expunge on A must beat B's flag change:\n{after}"
    );
    // UIDs 4..6 named different messages on each side: both got new UIDs, so no UID of
    // the merged INBOX is one a client saw for another message (invariant 2).
    for m in inbox_after.messages.values() {
        let cut = m.body.contains("cut-");
        assert!(
            !cut || m.uid > 6,
            "a message written apart kept a clashing UID:\n{after}"
        );
        assert!(cut || m.uid <= 3, "a shared message changed UID:\n{after}");
    }
}

/// One LMTP session delivering as fast as it can until the connection fails; every
/// Message-ID whose post-DATA 250 arrived is recorded.
fn delivery_stream(
    node_addr: std::net::SocketAddr,
    round: usize,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut c) = LineConn::connect(node_addr) else {
        return;
    };
    let step = |c: &mut LineConn| -> anyhow::Result<()> {
        let g = c.line()?;
        anyhow::ensure!(g.starts_with("220"), "greeting {g}");
        c.send("LHLO kill.test")?;
        tests::smtp_reply(c, "250")?;
        // Bounded: at most 2000 per round (the kill comes long before).
        for n in 0..2000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let id = format!("kill-{round}-{n}");
            c.send("MAIL FROM:<s@example.com>")?;
            tests::smtp_reply(c, "250")?;
            c.send(&format!("RCPT TO:<{USER}@example.org>"))?;
            tests::smtp_reply(c, "250")?;
            c.send("DATA")?;
            tests::smtp_reply(c, "354")?;
            c.send_raw(&tests::dot_stuff(&message(&id, "x")))?;
            c.send_raw(b".\r\n")?;
            let r = tests::smtp_reply(c, "")?;
            anyhow::ensure!(r.starts_with("250"), "{id}: {r}");
            acked.lock().unwrap().push(id);
        }
        Ok(())
    };
    let _ = step(&mut c);
}

/// Message-IDs of every message in B's INBOX.
fn message_ids(node: &Server) -> BTreeSet<String> {
    let mut s = imap_login(node).unwrap();
    let (_, exists) = select(&mut s, "INBOX").unwrap();
    if exists == 0 {
        return BTreeSet::new();
    }
    fetch_all(&mut s)
        .unwrap()
        .values()
        .filter_map(|m| {
            let l = m.body.lines().find(|l| l.starts_with("Message-ID: <"))?;
            Some(l["Message-ID: <".len()..].split('@').next()?.to_string())
        })
        .collect()
}

#[test]
fn kill_9_of_a_mid_stream_loses_no_acknowledged_delivery_in_replicated_mode() {
    let started = Instant::now();
    let mut c = Cluster::start(ClusterSpec {
        durability: "replicated",
        sync_timeout: "30s",
        ..ClusterSpec::default()
    })
    .unwrap();
    // A random moment per round, from the clock's nanoseconds (no RNG dependency).
    let nanos = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    };
    let mut all_acked = Vec::new();
    for round in 0..5 {
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (addr, acked, stop) = (c.nodes[0].addr(Proto::Lmtp), acked.clone(), stop.clone());
            std::thread::spawn(move || delivery_stream(addr, round, acked, stop))
        };
        // Wait for the stream to be going, then kill at a random moment within 0.2-1.2 s.
        let deadline = Instant::now() + Duration::from_secs(15);
        while acked.lock().unwrap().len() < 5 {
            assert!(
                Instant::now() < deadline,
                "round {round}: no delivery acknowledged"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200 + u64::from(nanos() % 1000)));
        c.nodes[0].kill();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        let acked = acked.lock().unwrap().clone();

        // Every delivery A acknowledged is on B, right away (no waiting: the ack waited).
        let on_b = message_ids(&c.nodes[1]);
        let lost: Vec<&String> = acked.iter().filter(|id| !on_b.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged deliveries missing on B: {lost:?}",
            lost.len(),
            acked.len()
        );
        all_acked.extend(acked);
        c.nodes[0]
            .restart(&[Proto::Imap, Proto::Pop3, Proto::Lmtp])
            .unwrap();
    }
    // After the restarts A has them too (its own log survived the kill).
    let deadline = Instant::now() + CONVERGE;
    loop {
        let on_a = message_ids(&c.nodes[0]);
        let missing = all_acked.iter().filter(|id| !on_a.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged deliveries missing on A after restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    eprintln!(
        "kill -9 test: {} acknowledged deliveries over 5 rounds, all on B, in {:?}",
        all_acked.len(),
        started.elapsed()
    );
}

#[test]
fn three_nodes_a_delivery_on_one_appears_on_the_other_two() {
    let c = Cluster::start(ClusterSpec {
        nodes: 3,
        ..ClusterSpec::default()
    })
    .unwrap();
    deliver(&c.nodes[1], "from-node-2");
    let d = c.wait_converged(&[0, 1, 2], CONVERGE).unwrap();
    assert_eq!(inbox(&d).messages.len(), 1, "{d}");
    deliver(&c.nodes[2], "from-node-3");
    let d = c.wait_converged(&[0, 1, 2], CONVERGE).unwrap();
    assert_eq!(inbox(&d).messages.len(), 2, "{d}");
}
