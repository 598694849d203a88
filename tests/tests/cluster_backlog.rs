//! Issue 6: replication traffic yields to client traffic but never starves. A replica that
//! was down comes back to a backlog of a few thousand messages while IMAP clients keep working
//! on both nodes: every client command succeeds during the drain, and the replica converges.
//! Bounded in count and time; no latency asserts (figures: `jepsen bench-backlog`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tests::cluster::{imap_login, imap_ok, message, select, Cluster, ClusterSpec, USER};
use tests::{lmtp_deliver, Proto, Server};

/// Messages delivered on A while B is down.
const BACKLOG: usize = 2000;
/// Deliveries in parallel (they share A's group commits).
const DELIVERERS: usize = 4;
/// The drain, in a debug build on a busy 2-core machine (measured: seconds).
const DRAIN: Duration = Duration::from_secs(180);
/// Commands one client sends at most.
const MAX_COMMANDS: usize = 20_000;

fn deliver(node: &Server, id: &str, body: &str) -> anyhow::Result<()> {
    let replies = lmtp_deliver(
        node.addr(Proto::Lmtp),
        "sender@example.com",
        &[&format!("{USER}@example.org")],
        &message(id, body),
    )?;
    anyhow::ensure!(replies[0].starts_with("250"), "{id}: {replies:?}");
    Ok(())
}

/// What one client did: commands answered OK, and the first failure if any.
struct ClientRun {
    node: usize,
    ok: usize,
    failure: Option<String>,
}

/// An IMAP client working in a loop on node `node` until `stop`: NOOP, FETCH of flags and of
/// one body, STATUS, and (on A) a flag change, each of which must answer OK.
fn client(c: &Cluster, node: usize, n: usize, stop: Arc<AtomicBool>) -> JoinHandle<ClientRun> {
    let addr_server = &c.nodes[node];
    let mut conn = imap_login(addr_server).expect("client login");
    std::thread::spawn(move || {
        let mut run = ClientRun {
            node,
            ok: 0,
            failure: None,
        };
        let mut step = || -> anyhow::Result<()> {
            let (_, exists) = select(&mut conn, "INBOX")?;
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && run.ok < MAX_COMMANDS {
                let first = exists.saturating_sub(20).max(1);
                let cmd = match i % 5 {
                    0 => "NOOP".to_string(),
                    1 => format!("FETCH {first}:* (UID FLAGS RFC822.SIZE)"),
                    2 => format!("FETCH {} (BODY.PEEK[])", (i % exists.max(1) as usize) + 1),
                    3 => "STATUS INBOX (MESSAGES UNSEEN HIGHESTMODSEQ)".to_string(),
                    // Writes on A only: they are live replication traffic during the drain.
                    _ if node == 0 => format!("STORE 1 {}FLAGS ($Client{n})", ["+", "-"][i % 2]),
                    _ => "CHECK".to_string(),
                };
                let tag = format!("c{i}");
                imap_ok(&mut conn, &tag, &cmd)?;
                run.ok += 1;
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = conn.imap("z", "LOGOUT");
            Ok(())
        };
        if let Err(e) = step() {
            run.failure = Some(format!("{e:#}"));
        }
        run
    })
}

/// `node replication status` on node `i`: (records behind summed over its peers, the pacing
/// line).
fn status(c: &Cluster, i: usize) -> (u64, String) {
    let out = c.admin(i, &["replication", "status"]).unwrap();
    assert!(out.status.success(), "{}", out.both());
    let text = out.stdout_text();
    let behind = text
        .lines()
        .filter(|l| l.starts_with("peer "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("records_behind="))
        })
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    let pacing = text
        .lines()
        .find(|l| l.starts_with("yield to clients="))
        .unwrap_or_else(|| panic!("no pacing line in {text}"))
        .to_string();
    (behind, pacing)
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn backlog_drains_while_clients_keep_working_on_both_nodes() {
    // B's start-up catch-up pull would fetch the whole backlog before B serves (unpaced, and
    // bounded by its timeout); this test is about A's shipper yielding to clients while it
    // pushes a backlog, so B starts without it.
    let mut c = Cluster::start(ClusterSpec {
        cluster_lines: "startup_catch_up_timeout = \"0 secs\"\n",
        ..ClusterSpec::default()
    })
    .unwrap();
    deliver(&c.nodes[0], "first", "before the backlog").unwrap();
    c.wait_converged(&[0, 1], Duration::from_secs(30)).unwrap();

    // B down; the backlog piles up on A.
    let status_b = c.nodes[1].stop();
    assert!(
        status_b.is_some_and(|s| s.success()),
        "B's exit: {status_b:?}"
    );
    let body = "x".repeat(4000);
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..DELIVERERS {
            let (next, a, body) = (next.clone(), &c.nodes[0], &body);
            s.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= BACKLOG {
                    break;
                }
                deliver(a, &format!("backlog-{n}"), body).unwrap();
            });
        }
    });
    let (behind, _) = status(&c, 0);
    assert!(behind >= BACKLOG as u64, "A shows {behind} records behind");

    // Clients on A, then B back (with clients of its own) while A's clients keep going.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<_> = (0..3).map(|n| client(&c, 0, n, stop.clone())).collect();
    std::thread::sleep(Duration::from_millis(300));
    c.nodes[1]
        .restart(&[Proto::Imap, Proto::Pop3, Proto::Lmtp])
        .unwrap();
    clients.extend((3..5).map(|n| client(&c, 1, n, stop.clone())));

    // The drain: A's status until nothing is behind, a few deliveries meanwhile (live traffic).
    let drain_start = Instant::now();
    let deadline = drain_start + DRAIN;
    let mut live = 0;
    loop {
        let (behind, _) = status(&c, 0);
        if behind == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog did not drain within {DRAIN:?}: {behind} records behind"
        );
        if live < 20 {
            deliver(&c.nodes[0], &format!("live-{live}"), "during the drain").unwrap();
            live += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let drained_in = drain_start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let runs: Vec<ClientRun> = clients.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &runs {
        assert!(
            r.failure.is_none(),
            "a client on node {} failed after {} commands: {:?}",
            r.node + 1,
            r.ok,
            r.failure
        );
        assert!(r.ok > 0, "a client on node {} sent nothing", r.node + 1);
    }

    let converged = c.wait_converged(&[0, 1], Duration::from_secs(60)).unwrap();
    let inbox = converged.mailboxes.get("INBOX").expect("INBOX");
    assert_eq!(inbox.messages.len(), 1 + BACKLOG + live, "{converged}");

    // A saw the backlog as catch-up (its batches after the first were cut) and says so.
    let (_, pacing) = status(&c, 0);
    let commands: Vec<usize> = runs.iter().map(|r| r.ok).collect();
    println!(
        "drained {BACKLOG} messages in {drained_in:?}; client commands {commands:?}; A: {pacing}"
    );
    assert!(pacing.starts_with("yield to clients=true"), "{pacing}");
    assert!(field(&pacing, "catch_up_batches=") >= 2, "{pacing}");
}
