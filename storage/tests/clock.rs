//! The wall clock stepping backwards (and a restart with the clock set back) never makes a UID,
//! modseq, GUID or UIDVALIDITY repeat or shrink; the step is logged as a warning and counted.
mod common;
use common::*;
use std::sync::{Arc, Mutex};
use storage::hlc::ManualClock;
use storage::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn clock_stepped_backwards_keeps_everything_growing() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_800_000_000_000u64;
        let clock = ManualClock::new(t0);
        let store = Store::open_with_clock(config(dir.path()), clock.clone()).unwrap();
        let u = store.user("tick").unwrap();
        let mut seen: Vec<AppendOutcome> = Vec::new();
        let first_box = u.create_mailbox("Before", None).unwrap();
        for i in 0..5 {
            seen.push(append(&u, "INBOX", &msg(i)));
            clock.advance(10);
        }
        // The wall clock jumps back an hour (an NTP step).
        clock.set(t0 - 3_600_000);
        for i in 5..10 {
            seen.push(append(&u, "INBOX", &msg(i)));
        }
        let second_box = u.create_mailbox("After", None).unwrap();
        assert!(second_box.uidvalidity > first_box.uidvalidity);
        assert!(store.clock().backward_steps() > 0);
        // Restart with the clock set back a day: the clock resumes above what the log holds.
        drop(u);
        drop(store);
        clock.set(t0 - 86_400_000);
        let store = Store::open_with_clock(config(dir.path()), clock.clone()).unwrap();
        let u = store.user("tick").unwrap();
        for i in 10..15 {
            seen.push(append(&u, "INBOX", &msg(i)));
        }
        let third_box = u.create_mailbox("AfterRestart", None).unwrap();
        assert!(third_box.uidvalidity > second_box.uidvalidity);
        for w in seen.windows(2) {
            assert!(w[1].uid > w[0].uid, "UIDs grow");
            assert!(w[1].modseq > w[0].modseq, "modseqs grow");
            assert!(w[1].guid > w[0].guid, "GUIDs grow (and so never repeat)");
        }
        let hms = u.mailbox("INBOX").unwrap().highestmodseq;
        u.store_flags("INBOX", &[1], FlagMode::Add, &flags(&["\\Seen"]), None)
            .unwrap();
        assert!(u.mailbox("INBOX").unwrap().highestmodseq > hms);
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("WARN") && text.contains("stepped backwards"),
        "no warning logged: {text}"
    );
}
