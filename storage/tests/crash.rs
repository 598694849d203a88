//! Crash tests: a child process (this test binary re-executed) streams concurrent appends and
//! prints each acknowledged one; the parent SIGKILLs it at random moments, hundreds of times,
//! then reopens and checks that every acknowledged append is there with its UID and GUID, and
//! that the index is consistent (rebuilt == live). Bounded in count and time.
mod common;
use common::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::*;

const DIR_ENV: &str = "STORAGE_CRASH_CHILD_DIR";
const MODE_ENV: &str = "STORAGE_CRASH_CHILD_MODE";

fn child(
    test: &str,
    dir: &std::path::Path,
    mode: &str,
    extra: &[(&str, &str)],
) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(DIR_ENV, dir)
    .env(MODE_ENV, mode)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// The child: 4 threads append to two mailboxes until killed; one line per acknowledged append.
#[test]
#[ignore = "child process of the crash tests"]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let store = open(std::path::Path::new(&dir));
    let u = store.user("crash").unwrap();
    let _ = u.create_mailbox("Other", None);
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    println!("READY");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (u, out) = (u.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let mb = if i % 3 == 0 { "Other" } else { "INBOX" };
                    let raw = format!(
                        "Subject: {t}-{i}-{}\r\n\r\n{}\r\n",
                        std::process::id(),
                        "x".repeat(i % 700)
                    );
                    let o = append(&u, mb, raw.as_bytes());
                    // Acknowledged: printed only after append returned (durable).
                    let mut w = out.lock().unwrap();
                    writeln!(w, "ACK {mb} {} {}", o.uid, o.guid).unwrap();
                    w.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn check_consistent(u: &UserStore) {
    let live = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    let rebuilt = u.dump_index().unwrap();
    if rebuilt != live {
        let a: std::collections::BTreeMap<_, _> = live.into_iter().collect();
        let b: std::collections::BTreeMap<_, _> = rebuilt.into_iter().collect();
        for (k, v) in &a {
            if b.get(k) != Some(v) {
                eprintln!(
                    "live only or different: {:?} {:?} vs {:?}",
                    String::from_utf8_lossy(k),
                    v,
                    b.get(k)
                );
            }
        }
        for k in b.keys() {
            if !a.contains_key(k) {
                eprintln!("rebuilt only: {:?}", String::from_utf8_lossy(k));
            }
        }
        panic!("rebuilt index differs from the live one");
    }
}

#[test]
fn sigkill_during_concurrent_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<(String, u32), String> = HashMap::new();
    let start = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    // Bounded: 300 kills or 30 s, stretched to 45 s at most when a loaded machine made the
    // children slow, so that it is still hundreds of kills.
    while kills < 300
        && (start.elapsed() < Duration::from_secs(30)
            || (kills < 200 && start.elapsed() < Duration::from_secs(45)))
    {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut c = child("crash_child_appender", dir.path(), "append", &[]);
        let stdout = c.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.ends_with("READY") {
                    let _ = ready_tx.send(());
                }
                lines.push(l);
            }
            lines
        });
        // Kill at a random moment: mostly mid-stream, one round in eight during start-up and
        // recovery.
        if !rng.is_multiple_of(8) {
            let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        }
        std::thread::sleep(Duration::from_millis(rng % 40));
        c.kill().unwrap();
        c.wait().unwrap();
        kills += 1;
        for line in reader.join().unwrap() {
            let p: Vec<&str> = line.split(' ').collect();
            if p.len() == 4 && p[0] == "ACK" {
                let prev =
                    acked.insert((p[1].to_string(), p[2].parse().unwrap()), p[3].to_string());
                assert!(
                    prev.is_none() || prev.as_deref() == Some(p[3]),
                    "UID {} reused",
                    p[2]
                );
            }
        }
        if kills % 25 == 0 {
            verify(dir.path(), &acked, kills % 100 == 0);
        }
    }
    verify(dir.path(), &acked, true);
    assert!(kills >= 100, "only {kills} kills in the time bound");
    assert!(
        acked.len() > 100,
        "only {} acknowledged appends",
        acked.len()
    );
    eprintln!(
        "{kills} SIGKILLs, {} acknowledged appends checked",
        acked.len()
    );
}

fn verify(dir: &std::path::Path, acked: &HashMap<(String, u32), String>, rebuild: bool) {
    let store = open(dir);
    let u = store.user("crash").unwrap();
    let mut have: HashMap<(String, u32), String> = HashMap::new();
    for mb in ["INBOX", "Other"] {
        let Ok(ms) = u.messages(mb) else { continue };
        for m in ms {
            have.insert((mb.to_string(), m.uid), m.guid.to_hex());
        }
    }
    for (k, g) in acked {
        assert_eq!(
            have.get(k),
            Some(g),
            "acknowledged append {k:?} lost or changed"
        );
    }
    if rebuild {
        check_consistent(&u);
    }
}

/// The child for the purge test: purge, with a crash injected at a named step (or none, in
/// which case the parent kills it at a random moment).
#[test]
#[ignore = "child process of the crash tests"]
fn crash_child_purger() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let store = open(std::path::Path::new(&dir));
    let u = store.user("purge").unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    u.purge().unwrap();
    println!("DONE");
}

#[test]
fn kill_during_purge_loses_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let steps = [
        "before-rename",
        "after-rename",
        "after-index",
        "",
        "",
        "",
        "",
        "",
    ];
    let start = Instant::now();
    let mut rounds = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut expect: HashMap<u32, Vec<u8>> = HashMap::new();
    while rounds < 24 && start.elapsed() < Duration::from_secs(40) {
        // Add messages and expunge some, so the purge has work.
        {
            let store = open(dir.path());
            let u = store.user("purge").unwrap();
            for i in 0..30 {
                let raw = format!("Subject: r{rounds} m{i}\r\n\r\n{}\r\n", "y".repeat(i * 50))
                    .into_bytes();
                let o = append(&u, "INBOX", &raw);
                expect.insert(o.uid, raw);
            }
            let dead: Vec<u32> = expect.keys().copied().filter(|uid| uid % 3 == 0).collect();
            u.expunge("INBOX", &dead).unwrap();
            for d in dead {
                expect.remove(&d);
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let step = steps[rounds % steps.len()];
        let mut c = child(
            "crash_child_purger",
            dir.path(),
            "purge",
            &[("STORAGE_PURGE_CRASH_AT", step)],
        );
        if step.is_empty() {
            std::thread::sleep(Duration::from_millis(rng % 40));
            let _ = c.kill();
        }
        c.wait().unwrap();
        rounds += 1;
        // Reopen: every live message is readable and intact; the index is consistent.
        let store = open(dir.path());
        let u = store.user("purge").unwrap();
        let msgs = u.messages("INBOX").unwrap();
        assert_eq!(msgs.len(), expect.len());
        for m in &msgs {
            assert_eq!(
                &u.read_message(&m.object).unwrap(),
                &expect[&m.uid],
                "uid {}",
                m.uid
            );
        }
        check_consistent(&u);
    }
    // A final, uninterrupted purge leaves exactly one pack with only live objects.
    let store = open(dir.path());
    let u = store.user("purge").unwrap();
    u.purge().unwrap();
    let packs = std::fs::read_dir(u.dir().join("packs")).unwrap().count();
    assert_eq!(packs, 1);
    for m in u.messages("INBOX").unwrap() {
        assert_eq!(&u.read_message(&m.object).unwrap(), &expect[&m.uid]);
    }
    assert_eq!(
        u.verify().unwrap(),
        u.version_vector().unwrap().values().sum::<u64>() + expect.len() as u64
    );
    assert!(rounds >= 8);
}
