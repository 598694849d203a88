//! A filling disk: once a write would leave less than `min_free_bytes` free, writes are
//! refused with the reason (nothing is acknowledged, nothing half-written: the index never
//! meets a full disk), reads go on, and writes resume by themselves once space is freed; every
//! write acknowledged before stays readable, then and after a reopen.
//!
//! Needs root (a small tmpfs is the full disk); skipped with a message otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use storage::{Flags, NewMessage, Store, StoreConfig};

/// A tmpfs mounted for the test (on a temporary directory, kept until the end), unmounted
/// when dropped.
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.path().to_path_buf(), dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn message(i: usize) -> Vec<u8> {
    // Incompressible enough that the disk really fills: hex of random bytes.
    let body: String = (0..64 * 1024)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    format!("Subject: message {i}\r\nMessage-ID: <m{i}@test>\r\n\r\n{body}\r\n").into_bytes()
}

fn append(u: &storage::UserStore, raw: &[u8]) -> storage::Result<u32> {
    u.append(
        "INBOX",
        NewMessage {
            raw,
            flags: Flags::new(),
            internal_date: None,
            delivery_key: None,
        },
    )
    .map(|o| o.uid)
}

/// Free space kept by the store in this test (its tmpfs is 24 MiB).
const MIN_FREE: u64 = 4 << 20;

fn open(root: &Path) -> std::sync::Arc<Store> {
    let mut c = StoreConfig::new(root);
    c.min_free_bytes = MIN_FREE;
    Store::open(c).expect("open store")
}

#[test]
fn a_full_disk_refuses_writes_and_they_resume_once_space_is_freed() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let Some(fs) = Tmpfs::mount(24) else {
        eprintln!("SKIPPED: disk_full: cannot mount a tmpfs (not root?)");
        return;
    };
    let root = fs.0.join("store");
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![0u8; 6 << 20]).expect("ballast");
    let store = open(&root);
    let u = store.user("alice").expect("user");
    // Fill until the store refuses; every acknowledged UID is remembered.
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        match append(&u, &message(i)) {
            Ok(uid) => acked.push(uid),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(!acked.is_empty(), "nothing fitted before the disk filled");
    // Still full: refused again, with the reason, and nothing acknowledged.
    assert!(
        refused.contains("disk space"),
        "the refusal says why: {refused}"
    );
    let again = append(&u, &message(999)).expect_err("a full disk takes no write");
    assert!(
        matches!(again, storage::StoreError::DiskFull(_)),
        "the refusal says why: {again}"
    );
    // Reads go on meanwhile.
    assert_eq!(u.messages("INBOX").expect("list").len(), acked.len());

    // Space freed: writes resume without a restart (recovery is retried at most once a second).
    std::fs::remove_file(&ballast).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(10);
    let uid = loop {
        match append(&u, b"Subject: after\r\n\r\nspace again\r\n") {
            Ok(uid) => break uid,
            Err(e) if Instant::now() < deadline => {
                eprintln!("still refused: {e}");
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("writes did not resume after space was freed: {e}"),
        }
    };
    assert!(
        acked.iter().all(|a| *a < uid),
        "a UID was reused: {uid} in {acked:?}"
    );
    let uids = |u: &storage::UserStore| -> Vec<u32> {
        u.messages("INBOX")
            .expect("list")
            .iter()
            .map(|m| m.uid)
            .collect()
    };
    let here = uids(&u);
    for a in &acked {
        assert!(here.contains(a), "acknowledged UID {a} lost: {here:?}");
    }
    assert!(here.contains(&uid));
    for m in u.messages("INBOX").expect("list") {
        u.read_message(&m.object).expect("every message reads back");
    }
    // And after a reopen (recovery from the files alone).
    let before = here;
    drop(u);
    drop(store);
    let store = open(&root);
    let u = store.user("alice").expect("user");
    assert_eq!(uids(&u), before);
    u.verify().expect("the store verifies");
}
