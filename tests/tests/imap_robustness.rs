//! Bad input to a live IMAP server: thousands of random, truncated and oversized command
//! lines, each of which must be answered (tagged, or `* BAD`/`* BYE` when the server
//! cannot find the tag or must end the connection), with no crash, while another client
//! is still served. Bounded in count and in time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tests::*;

const LINES: usize = 3000;
const TIME_BUDGET: Duration = Duration::from_secs(120);

/// xorshift64*: deterministic, seeded, no dependency; the seed is printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

/// Commands that change the connection itself (TLS, compression, continuation-driven
/// exchanges, logout) are left out: the test is about answers to bad lines, and a
/// literal or continuation would make the next line data instead of a command.
const VERBS: &[&str] = &[
    "NOOP",
    "CAPABILITY",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "ENABLE",
    "NAMESPACE",
    "ID",
    "GETQUOTAROOT",
    "XYZZY",
    "FOO.BAR",
    "",
    "select",
    "fetch",
    "uid fetch",
    "uid store",
    "uid search",
];

const ARGS: &[&str] = &[
    "1",
    "*",
    "1:*",
    "0",
    "4294967296",
    "1,2,3:5",
    "-1",
    "INBOX",
    "\"INBOX\"",
    "\"\"",
    "\"",
    "(",
    ")",
    "((((",
    "))",
    "[",
    "]",
    "BODY[",
    "BODY[]",
    "BODY.PEEK[HEADER.FIELDS (SUBJECT",
    "(FLAGS UID RFC822.SIZE)",
    "+FLAGS",
    "-FLAGS.SILENT",
    "(\\Seen \\Deleted)",
    "\\Bogus",
    "ALL",
    "CHARSET",
    "UTF-8",
    "SUBJECT",
    "\"x\"",
    "OR",
    "NOT",
    "SINCE",
    "1-Jan-2020",
    "99-Foo-0000",
    "(MESSAGES UIDNEXT)",
    "~",
    "%",
    "../../etc/passwd",
    "a/../../b",
    "&AGE-",
    "&",
    "&-",
    "\u{00e9}t\u{00e9}",
    "NIL",
    "{",
    "}",
    "{5",
    "{99999999999}x",
    "\\",
    "\"\\\"",
];

fn random_line(rng: &mut Rng, tag: &str) -> Vec<u8> {
    let mut line = format!("{tag} ").into_bytes();
    match rng.below(10) {
        // Random bytes, including NUL and 8-bit, never CR or LF.
        0 | 1 => {
            for _ in 0..rng.below(200) {
                let b = (rng.next() & 0xff) as u8;
                line.push(if b == b'\r' || b == b'\n' { b'x' } else { b });
            }
        }
        // A verb with random arguments.
        2..=6 => {
            line.extend_from_slice(rng.pick(VERBS).as_bytes());
            for _ in 0..rng.below(8) {
                line.push(b' ');
                line.extend_from_slice(rng.pick(ARGS).as_bytes());
            }
        }
        // A valid command truncated at a random point.
        7 | 8 => {
            let full = rng.pick(&[
                "FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODYSTRUCTURE)",
                "UID SEARCH OR SUBJECT \"hello\" FROM \"x\" SINCE 1-Jan-2020",
                "STORE 1:3 +FLAGS.SILENT (\\Seen \\Flagged)",
                "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)",
                "LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Sent\") RETURN (CHILDREN)",
                "UID COPY 1:* \"Trash\"",
            ]);
            let cut = 1 + rng.below(full.len() - 1);
            line.extend_from_slice(&full.as_bytes()[..cut]);
        }
        // Very long (but not oversized) argument lists.
        _ => {
            line.extend_from_slice(b"FETCH ");
            for i in 0..rng.below(2000) {
                line.extend_from_slice(format!("{i},").as_bytes());
            }
            line.extend_from_slice(b"1 FLAGS");
        }
    }
    // A trailing literal announcement would make the next line literal data.
    while line.last() == Some(&b'}') {
        line.pop();
    }
    line.extend_from_slice(b"\r\n");
    line
}

fn connect_logged_in(addr: SocketAddr) -> LineConn {
    let mut c = LineConn::connect(addr).expect("connect");
    c.set_timeout(Duration::from_secs(15)).expect("timeout");
    let g = c.line().expect("greeting");
    assert!(g.starts_with("* OK"), "greeting: {g}");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c
}

/// Reads until the answer to `tag`: its tagged line, or an untagged BAD (tag not
/// recoverable), or BYE (the server ends the connection). Returns the answering line.
fn answer(c: &mut LineConn, tag: &str) -> anyhow::Result<String> {
    let prefix = format!("{tag} ");
    loop {
        let l = c.line()?;
        if l.starts_with(&prefix) || l.starts_with("* BAD") || l.starts_with("* BYE") {
            return Ok(l);
        }
    }
}

#[test]
fn random_truncated_and_oversized_lines_are_all_answered() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001u64);
    let mut rng = Rng(seed);
    let mut server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    let addr = server.addr(Proto::Imap);
    let mut c = connect_logged_in(addr);
    let started = Instant::now();
    let (mut sent, mut byes, mut reconnects) = (0usize, 0usize, 0usize);

    for i in 0..LINES {
        assert!(
            started.elapsed() < TIME_BUDGET,
            "time budget exceeded after {i} lines (seed {seed:#x})"
        );
        let tag = format!("r{i}");
        let line = random_line(&mut rng, &tag);
        c.send_raw(&line).expect("send");
        sent += 1;
        let reply = answer(&mut c, &tag).unwrap_or_else(|e| {
            panic!(
                "line {i} was not answered ({e}) (seed {seed:#x}): {:?}",
                String::from_utf8_lossy(&line)
            )
        });
        if reply.starts_with("* BYE") {
            byes += 1;
            reconnects += 1;
            c = connect_logged_in(addr);
        }
    }

    // Oversized: a 1 MiB line, and a literal announcement far above any limit. Each gets
    // a BAD (or a BYE that ends the connection), never a hang or a crash.
    for (n, line) in [
        format!("big1 NOOP {}\r\n", "x".repeat(1 << 20)).into_bytes(),
        b"big2 APPEND INBOX {99999999999}\r\n".to_vec(),
        format!("big3 LOGIN {}\r\n", "a".repeat(200_000)).into_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        let tag = format!("big{}", n + 1);
        // The server may close the connection while the line is still being written.
        let _ = c.send_raw(&line);
        sent += 1;
        match answer(&mut c, &tag) {
            Ok(reply) => {
                assert!(
                    reply.starts_with(&format!("{tag} BAD"))
                        || reply.starts_with(&format!("{tag} NO"))
                        || reply.starts_with("* BAD")
                        || reply.starts_with("* BYE"),
                    "oversized line {tag} answered with {reply}"
                );
                if reply.starts_with("* BYE") {
                    byes += 1;
                }
            }
            Err(e) => panic!("oversized line {tag} not answered: {e}"),
        }
        reconnects += 1;
        c = connect_logged_in(addr);
    }

    // The server is alive and serves another client normally.
    assert!(server.is_running(), "node died during the bad-input run");
    let mut other = connect_logged_in(addr);
    let r = other.imap("n", "NOOP").expect("noop");
    assert!(tagged(&r).starts_with("n OK"), "{r:?}");
    let r = c.imap("n", "NOOP").expect("noop");
    assert!(tagged(&r).starts_with("n OK"), "{r:?}");
    eprintln!(
        "sent {sent} bad lines in {:?}: {byes} BYE, {reconnects} reconnects (seed {seed:#x})",
        started.elapsed()
    );
}

/// One client that stops reading (its socket buffers full of a big FETCH) and one that
/// sends a command a byte at a time never hold up another user's session or a delivery.
#[test]
fn a_stalled_client_does_not_stall_others() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        ..Default::default()
    })
    .expect("start node");
    let addr = server.addr(Proto::Imap);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < 4 << 20 {
        big.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    let r = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "s@example.org",
        &["demo@example.org"],
        &big,
    )
    .expect("deliver");
    assert!(r[0].starts_with("250"), "{r:?}");

    // The non-reader: asks for 80 MiB and reads none of it.
    let mut stalled = connect_logged_in(addr);
    for i in 0..20 {
        stalled
            .send(&format!("f{i} FETCH 1 BODY[]"))
            .expect("fetch");
    }
    // The slow writer: a command trickling in a byte at a time.
    let mut trickle = LineConn::connect(addr).expect("connect");
    trickle.line().expect("greeting");
    let trickled: &[u8] = b"t1 LOGIN demo demo\r\n";
    trickle.send_raw(&trickled[..3]).expect("partial");

    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        let t = Instant::now();
        let mut c = LineConn::connect(addr).expect("connect");
        c.line().expect("greeting");
        let r = c.imap("l", "LOGIN alice alicepw").expect("login");
        assert!(tagged(&r).starts_with("l OK"), "{r:?}");
        let r = c.imap("s", "SELECT INBOX").expect("select");
        assert!(tagged(&r).starts_with("s OK"), "{r:?}");
        let d = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "s@example.org",
            &["alice@example.org"],
            &sample_message(&format!("while stalled {round}"), "x"),
        )
        .expect("deliver");
        assert!(d[0].starts_with("250"), "{d:?}");
        let r = c.imap("n", "NOOP").expect("noop");
        assert!(tagged(&r).starts_with("n OK"), "{r:?}");
        worst = worst.max(t.elapsed());
        trickle
            .send_raw(&trickled[3 + round..4 + round])
            .expect("trickle");
    }
    assert!(
        worst < Duration::from_secs(2),
        "another user's login+select+delivery+noop took up to {worst:?} beside a stalled client"
    );
    trickle
        .send_raw(&trickled[13..])
        .expect("end of trickled command");
    let r = trickle.imap_until("t1").expect("trickled login");
    assert!(tagged(&r).starts_with("t1 OK"), "{r:?}");
}
