//! Raft mode (issue 11) with three real `node serve` processes on loopback: one active node,
//! writes refused elsewhere (IMAP NO [UNAVAILABLE] naming the active node, LMTP 451), a hard
//! crash of the active node moves the role within seconds with a larger epoch and nothing
//! acknowledged lost, and a planned hand-over with `node cluster transfer-active`.

use std::time::{Duration, Instant};
use tests::cluster::{fetch_all, imap_login, message, select, Cluster, ClusterSpec, USER};
use tests::{lmtp_deliver, tagged, Proto};

/// Generous for a debug build on a busy 2-core machine.
const ELECT: Duration = Duration::from_secs(30);

fn is_active(c: &Cluster, i: usize) -> bool {
    c.admin(i, &["health", "--active"])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The only node (of `alive`) that reports active, once exactly one does.
fn wait_one_active(c: &Cluster, alive: &[usize], within: Duration) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        let active: Vec<usize> = alive.iter().copied().filter(|&i| is_active(c, i)).collect();
        if active.len() == 1 {
            return (active[0], started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "not exactly one active node within {within:?}: {active:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(c: &Cluster, i: usize) -> serde_json::Value {
    let out = c.admin(i, &["cluster", "status", "--json"]).unwrap();
    assert!(out.status.success(), "cluster status: {}", out.both());
    serde_json::from_str(&out.stdout_text()).unwrap_or_else(|e| panic!("{e}: {}", out.both()))
}

/// Until node `i` knows node `a` is active (its state machine applied the activation).
fn wait_sees_active(c: &Cluster, i: usize, a: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while status(c, i)["coordinator"]["active"].as_u64() != Some(a as u64 + 1) {
        assert!(
            Instant::now() < deadline,
            "node {} does not learn that node {} is active",
            i + 1,
            a + 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_active_code(c: &Cluster, i: usize) -> u16 {
    let mut s = tests::LineConn::connect(c.nodes[i].addr(Proto::Http)).unwrap();
    s.send_raw(b"GET /health/active HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let line = s.line().unwrap();
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn deliver(c: &Cluster, i: usize, id: &str) -> String {
    let r = lmtp_deliver(
        c.nodes[i].addr(Proto::Lmtp),
        "sender@example.com",
        &[&format!("{USER}@example.org")],
        &message(id, &format!("body of {id}")),
    )
    .unwrap_or_else(|e| panic!("deliver {id}: {e:#}"));
    r[0].clone()
}

#[test]
fn three_nodes_one_active_fail_over_and_hand_over() {
    let mut c = Cluster::start(ClusterSpec {
        nodes: 3,
        durability: "replicated",
        sync_timeout: "5s",
        raft: true,
        ..ClusterSpec::default()
    })
    .unwrap();
    let (a, took) = wait_one_active(&c, &[0, 1, 2], ELECT);
    println!("first election: node {} active after {took:?}", a + 1);
    for i in 0..3 {
        let want = if i == a { 200 } else { 503 };
        assert_eq!(
            http_active_code(&c, i),
            want,
            "/health/active of node {}",
            i + 1
        );
    }

    // A write on a passive node: refused, naming the active node; reads still work.
    let p = (a + 1) % 3;
    // A follower learns the committed activation with the leader's next heartbeat.
    wait_sees_active(&c, p, a);
    let mut s = imap_login(&c.nodes[p]).unwrap();
    let r = s.imap("c", "CREATE Refused").unwrap();
    let line = tagged(&r).to_string();
    assert!(line.starts_with("c NO [UNAVAILABLE] "), "{line}");
    assert!(
        line.contains(&format!("the active node is node {}", a + 1)),
        "{line}"
    );
    select(&mut s, "INBOX").unwrap();
    let reply = deliver(&c, p, "refused");
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");

    // Acknowledged on the active node in replicated durability: on a peer before the 250.
    let ids: Vec<String> = (0..5).map(|n| format!("acked-{n}")).collect();
    for id in &ids {
        let reply = deliver(&c, a, id);
        assert!(reply.starts_with("250 "), "{id}: {reply}");
    }
    let epoch_before = status(&c, a)["coordinator"]["epoch"].as_u64().unwrap();

    // kill -9 the active node: another takes over with a larger epoch, holding every message.
    c.nodes[a].kill();
    let killed = Instant::now();
    let alive: Vec<usize> = (0..3).filter(|&i| i != a).collect();
    let (b, _) = wait_one_active(&c, &alive, ELECT);
    let fail_over = killed.elapsed();
    println!(
        "fail-over: node {} active {:.3} s after kill -9 of node {}",
        b + 1,
        fail_over.as_secs_f64(),
        a + 1
    );
    assert!(fail_over < Duration::from_secs(10), "{fail_over:?}");
    let st = status(&c, b);
    let epoch_after = st["coordinator"]["epoch"].as_u64().unwrap();
    assert!(
        epoch_after > epoch_before,
        "{epoch_before} -> {epoch_after}"
    );
    assert_eq!(st["coordinator"]["active"].as_u64(), Some(b as u64 + 1));
    let mut s = imap_login(&c.nodes[b]).unwrap();
    select(&mut s, "INBOX").unwrap();
    let bodies: Vec<String> = fetch_all(&mut s)
        .unwrap()
        .into_values()
        .map(|m| m.body)
        .collect();
    for id in &ids {
        assert!(
            bodies.iter().any(|b| b.contains(&format!("body of {id}"))),
            "{id} was acknowledged but is not on the new active node {}",
            b + 1
        );
    }
    let reply = deliver(&c, b, "after-fail-over");
    assert!(reply.starts_with("250 "), "{reply}");

    // Planned hand-over to the third node.
    let t = alive.iter().copied().find(|&i| i != b).unwrap();
    let started = Instant::now();
    let out = c
        .admin(b, &["cluster", "transfer-active", &(t + 1).to_string()])
        .unwrap();
    assert!(out.status.success(), "transfer-active: {}", out.both());
    let (now_active, _) = wait_one_active(&c, &alive, ELECT);
    println!(
        "hand-over: node {} -> node {} in {:.3} s ({})",
        b + 1,
        t + 1,
        started.elapsed().as_secs_f64(),
        out.stdout_text().trim()
    );
    assert_eq!(now_active, t);
    let st = status(&c, t);
    println!("{}", serde_json::to_string_pretty(&st).unwrap());
    let co = &st["coordinator"];
    assert_eq!(co["active"].as_u64(), Some(t as u64 + 1));
    assert_eq!(co["am_active"].as_bool(), Some(true));
    assert!(co["epoch"].as_u64().unwrap() > epoch_after, "{co}");
    assert_eq!(co["members"].as_array().map(Vec::len), Some(3), "{co}");
    assert!(st["replication"]["peers"].as_array().is_some(), "{st}");
    // The old active node now refuses, naming the new one.
    wait_sees_active(&c, b, t);
    let mut s = imap_login(&c.nodes[b]).unwrap();
    let r = s.imap("c", "CREATE Refused").unwrap();
    assert!(
        tagged(&r).contains(&format!("the active node is node {}", t + 1)),
        "{r:?}"
    );
}

/// A stopped active node (SIGSTOP) is replaced; resumed, it answers the delivery that was
/// waiting in its socket with 451, never 250, and its peers hold no trace of a second active.
#[test]
fn stopped_active_node_does_not_acknowledge_after_resuming() {
    let c = Cluster::start(ClusterSpec {
        nodes: 3,
        durability: "replicated",
        sync_timeout: "2s",
        raft: true,
        ..ClusterSpec::default()
    })
    .unwrap();
    let (a, _) = wait_one_active(&c, &[0, 1, 2], ELECT);
    let mut l = tests::LineConn::connect(c.nodes[a].addr(Proto::Lmtp)).unwrap();
    assert!(l.line().unwrap().starts_with("220"));
    l.send("LHLO test").unwrap();
    while l.line().unwrap().starts_with("250-") {}
    l.send("MAIL FROM:<sender@example.com>").unwrap();
    assert!(l.line().unwrap().starts_with("250"));
    l.send(&format!("RCPT TO:<{USER}@example.org>")).unwrap();
    assert!(l.line().unwrap().starts_with("250"));
    l.send("DATA").unwrap();
    assert!(l.line().unwrap().starts_with("354"));
    l.send_raw(&message("stopped", "body of stopped")).unwrap();
    c.nodes[a].signal(libc::SIGSTOP);
    let stopped = Instant::now();
    // The end of data reaches the stopped node's socket; it answers only once resumed.
    l.send(".").unwrap();
    let alive: Vec<usize> = (0..3).filter(|&i| i != a).collect();
    let (b, _) = wait_one_active(&c, &alive, ELECT);
    println!(
        "node {} active {:.3} s after SIGSTOP of node {}",
        b + 1,
        stopped.elapsed().as_secs_f64(),
        a + 1
    );
    c.nodes[a].signal(libc::SIGCONT);
    l.set_timeout(Duration::from_secs(30)).unwrap();
    let reply = l.line().unwrap();
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");
    assert!(reply.contains("not active"), "{reply}");
    // Once resumed it follows the new active node, which still takes deliveries.
    wait_sees_active(&c, a, b);
    assert!(!is_active(&c, a));
    assert!(deliver(&c, b, "after-resume").starts_with("250 "));
}

/// A peer that is alive (it answers the leader's raft heartbeats) but does not take the
/// active node's records is no reason to acknowledge alone: the delivery gets 451, and its
/// retry once the links are back gets 250, with the message stored once. (The third
/// 30-minute jepsen run: writes acknowledged alone, then the active node crashed.)
#[test]
fn active_node_refuses_a_write_no_live_peer_took() {
    let c = Cluster::start(ClusterSpec {
        nodes: 3,
        durability: "replicated",
        sync_timeout: "1s",
        proxied: true,
        raft: true,
        ..ClusterSpec::default()
    })
    .unwrap();
    let mut attempt = 0;
    let a = loop {
        attempt += 1;
        let (a, _) = wait_one_active(&c, &[0, 1, 2], ELECT);
        // Until the replication links are up, writes are refused too (peers alive by raft).
        deliver_until_accepted(&c, a, &format!("before-{attempt}"));
        // Replication to both peers cut; raft (its own ports here) still reaches them.
        for j in (0..3).filter(|&j| j != a) {
            c.proxies[j].cut();
        }
        let refused = deliver(&c, a, "while-cut");
        for j in (0..3).filter(|&j| j != a) {
            c.proxies[j].heal();
        }
        assert!(refused.starts_with("451 "), "{refused}");
        // On a loaded machine the role may move while the write waits (a lease missed):
        // that is a refusal too, but not the one under test; try again on the new holder.
        if refused.contains("not active") && attempt < 3 {
            eprintln!("attempt {attempt}: the active role moved during the write: {refused}");
            continue;
        }
        assert!(refused.contains("no peer holds this write"), "{refused}");
        assert!(is_active(&c, a), "the active node kept its role");
        break a;
    };
    // The MTA retries: acknowledged now, and stored once.
    deliver_until_accepted(&c, a, "while-cut");
    let mut s = imap_login(&c.nodes[a]).unwrap();
    select(&mut s, "INBOX").unwrap();
    let msgs = fetch_all(&mut s).unwrap();
    let copies = msgs
        .values()
        .filter(|m| m.body.contains("body of while-cut"))
        .count();
    assert_eq!(copies, 1, "{msgs:?}");
}

/// Delivers `id` to node `i` as an MTA would: again after each temporary failure, 30 s at most.
fn deliver_until_accepted(c: &Cluster, i: usize, id: &str) {
    let started = Instant::now();
    loop {
        let r = deliver(c, i, id);
        if r.starts_with("250 ") {
            return;
        }
        assert!(r.starts_with("451 "), "{id}: {r}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{id} not accepted: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
