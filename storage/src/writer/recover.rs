//! Recovery in place after a failed write or fsync (a full disk, an I/O error): the writer
//! stops acknowledging anything, and at a later request (at most once a second) reads what is
//! really on disk, as an open after a crash does, then goes on. Until that succeeds every
//! write is refused with the reason; reads go on meanwhile.

use crate::recent::Recent;
use crate::user_core::{UserCore, WriterState};
use std::time::{Duration, Instant};

/// How long after a failed recovery the next is tried.
const RETRY: Duration = Duration::from_secs(1);

impl UserCore {
    /// Tries to recover `ws` (poisoned); whether it is usable again.
    pub(super) fn recover(&self, ws: &mut WriterState) -> bool {
        let now = Instant::now();
        if ws.retry_at.is_some_and(|at| now < at) {
            return false;
        }
        ws.retry_at = Some(now + RETRY);
        let was = ws.poisoned.clone().unwrap_or_default();
        // The overlay holds only durable commits: into sled first, so recovery replays the log
        // from a checkpoint that covers them. Then recovery reads the files as they are: a
        // failed batch's partial frames are cut at the tail (never acknowledged), complete
        // ones are applied like any record found in the log after a crash.
        let fresh = self.ix.flush().and_then(|()| {
            crate::recovery::recover(&self.shared, &self.dir, &self.name, &self.tree)
        });
        match fresh {
            Ok(fresh) => {
                *ws = fresh;
                // The in-memory tail may lack records recovery found in the log: start anew
                // from what is on disk (a shipper then reads the log).
                *self.recent.lock() = Recent::new(
                    ws.meta.vv.clone(),
                    self.shared.recent_objects.clone(),
                    self.shared.config.recent_objects_bytes,
                );
                self.notify_changed();
                tracing::warn!(user = %self.name, was = %was,
                    "store recovered after a failed write; writes are accepted again");
                true
            }
            Err(e) => {
                self.shared.index_write_failed(&e);
                tracing::warn!(user = %self.name, was = %was, error = %e,
                    "store still failed; writes stay refused (recovery is tried again at a later write)");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Flags, NewMessage, Store, StoreConfig, UserStore};
    use std::time::{Duration, Instant};

    fn append(u: &UserStore, subject: &str) -> crate::Result<u32> {
        let raw = format!("Subject: {subject}\r\n\r\nbody\r\n");
        u.append(
            "INBOX",
            NewMessage {
                raw: raw.as_bytes(),
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .map(|o| o.uid)
    }

    fn uids(u: &UserStore) -> Vec<u32> {
        u.messages("INBOX").unwrap().iter().map(|m| m.uid).collect()
    }

    #[test]
    fn a_failed_writer_recovers_at_a_later_write_and_keeps_what_it_acknowledged() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(d.path())).unwrap();
        let u = store.user("u").unwrap();
        let a = append(&u, "a").unwrap();
        // A failed write or fsync poisoned the writer, and a recovery was just tried.
        {
            let mut ws = u.writer.lock_state();
            ws.poisoned = Some("simulated fsync failure".into());
            ws.retry_at = Some(Instant::now() + Duration::from_secs(3600));
        }
        let e = append(&u, "refused").unwrap_err();
        assert!(e.to_string().contains("simulated fsync failure"), "{e}");
        assert_eq!(uids(&u), [a], "reads go on; nothing more was written");
        // Once recovery may run again, the next write recovers first and goes through.
        u.writer.lock_state().retry_at = None;
        let b = append(&u, "b").unwrap();
        assert!(b > a);
        assert!(u.writer.lock_state().poisoned.is_none());
        assert_eq!(uids(&u), [a, b]);
        // Peers are served every record once (the in-memory tail was started anew).
        let all = u.records_since(&Default::default(), 1000).unwrap();
        assert_eq!(all.len() as u64, u.version_vector().unwrap()[&1]);
        drop(u);
        drop(store);
        let store = Store::open(StoreConfig::new(d.path())).unwrap();
        assert_eq!(
            uids(&store.user("u").unwrap()),
            [a, b],
            "and after a reopen"
        );
    }
}
