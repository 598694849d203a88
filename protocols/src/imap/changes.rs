//! "What changed in this mailbox since modseq M?", asked once for all the sessions that ask it
//! at the same moment. One delivery wakes every session that has the mailbox selected (all of a
//! user's IDLE connections at once); they all hold the same modseq and read the same change
//! counter, so the first one asks the store and the others wait for its answer instead of each
//! queueing a blocking store call of its own: with 10,000 idling connections of one user that
//! was 10,000 calls per delivery, and a delivery's own reply waited behind them
//! (docs/performance.md, IDLE).
//!
//! IDLE sessions also do not wait on the store's change counter directly: a change would wake
//! all of them at once, ahead of the delivery that made it, so the delivery's reply waited for
//! the whole fan-out (measured: 200-300 ms with 10,000 idlers). Each idler has a doorbell that
//! the mailbox's "hub" task rings: the hub is the only waiter on the store's counter; it asks
//! the store once, then rings the idlers [`RING_BATCH`] at a time, yielding between batches,
//! so the delivery's reply (and any other session's work) waits behind one batch at most. The
//! idlers find the answer ready.
//!
//! Sessions with a mailbox selected hold its [`MailboxShare`]; a process-wide registry finds the
//! share of a (user's store, mailbox) while any session holds it.

use super::reply::{server_bug, store_error, Done};
use crate::mail::{Reader, WeakReader};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use storage::{MailboxChanges, MailboxId, MessageMeta};
use tokio::sync::{watch, Notify, OnceCell};

/// Answers kept per mailbox. Sessions in step share one; a session that lags (another
/// `since`) gets its own without evicting the common one.
const SLOTS: usize = 4;

/// Idlers the hub wakes before it lets other tasks run: small enough that a task woken
/// meanwhile (a delivery's reply) waits behind one batch, not the whole fan-out.
const RING_BATCH: usize = 128;

pub(crate) type Answer = Result<Arc<Changes>, Done>;

/// What changed, as sessions take it in: each entry once behind an `Arc`, so the sessions
/// that take a new message into their snapshots share one copy of its entry.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Messages added or whose flags changed, in UID order.
    pub changed: Vec<Arc<MessageMeta>>,
    /// UIDs expunged, ascending.
    pub expunged: Vec<u32>,
    pub highestmodseq: u64,
}

impl From<MailboxChanges> for Changes {
    fn from(c: MailboxChanges) -> Changes {
        Changes {
            changed: c.changed.into_iter().map(Arc::new).collect(),
            expunged: c.expunged,
            highestmodseq: c.highestmodseq,
        }
    }
}

/// One question and, once computed, its answer.
struct Slot {
    name: String,
    since: u64,
    /// The user's change counter (`UserStore::watch`) read before the store was asked: the
    /// answer holds every change up to this count.
    version: u64,
    answer: OnceCell<Answer>,
}

/// The shared answers of one mailbox of one user.
pub(crate) struct MailboxShare {
    store: WeakReader,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The idlers' doorbells and whether a hub task runs to ring them (see the module doc).
    hub: Mutex<Hub>,
}

#[derive(Default)]
struct Hub {
    running: bool,
    /// The mailbox's name as the latest idler knows it (a rename reaches the hub this way).
    name: String,
    idlers: Vec<Weak<Doorbell>>,
    /// Live doorbells at the last sweep of dropped ones; the next sweep runs at twice that.
    swept_at: usize,
}

/// One idling session's doorbell, rung after each change to the user's mail once the answer
/// for the idlers is ready. Dropping it leaves the hub's list.
pub(crate) struct Doorbell {
    notify: Notify,
}

impl Doorbell {
    /// Returns once the bell has rung since the last return (a ring while the session was busy
    /// is kept, not lost).
    pub(crate) async fn rung(&self) {
        self.notify.notified().await
    }
}

impl std::fmt::Debug for MailboxShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxShare")
    }
}

/// Keyed by the store's address (one store per user in a process) and the mailbox's GUID.
type Key = (usize, MailboxId);

struct Registry {
    shares: HashMap<Key, Weak<MailboxShare>>,
    /// Size after the last sweep of dropped shares; the next sweep runs at twice that, so
    /// sweeping costs O(1) per insertion on average.
    swept_at: usize,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        Mutex::new(Registry {
            shares: HashMap::new(),
            swept_at: 0,
        })
    })
}

/// The share of `mailbox` of `store`, made if no session holds one.
pub(crate) fn share(store: &Reader, mailbox: MailboxId) -> Arc<MailboxShare> {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    let key = (store.key(), mailbox);
    if let Some(found) = r.shares.get(&key).and_then(Weak::upgrade) {
        // A live share keeps its sessions' store alive, so the address is that store's;
        // checked anyway, it costs nothing.
        if found.store.key() == store.key() {
            return found;
        }
    }
    let made = Arc::new(MailboxShare {
        store: store.downgrade(),
        slots: Mutex::new(Vec::new()),
        hub: Mutex::new(Hub::default()),
    });
    r.shares.insert(key, Arc::downgrade(&made));
    if r.shares.len() > 2 * r.swept_at.max(512) {
        r.shares.retain(|_, w| w.strong_count() > 0);
        r.swept_at = r.shares.len();
    }
    made
}

impl MailboxShare {
    /// Changes to mailbox `name` after modseq `since`, at least up to change count `version`
    /// (read by the caller before asking). Concurrent callers with the same question wait for
    /// one store call; a later caller reuses that answer while no newer change was counted.
    pub(crate) async fn changes_since(&self, name: &str, since: u64, version: u64) -> Answer {
        let Some(store) = self.store.upgrade() else {
            return Err(server_bug());
        };
        let slot = self.slot(name, since, version);
        slot.answer
            .get_or_init(|| async {
                let name = slot.name.clone();
                match crate::blocking::run(move || store.changes_since(&name, since)).await {
                    Ok(Ok(c)) => Ok(Arc::new(Changes::from(c))),
                    Ok(Err(e)) => Err(store_error(e)),
                    Err(e) => {
                        tracing::error!("store call failed: {e}");
                        Err(server_bug())
                    }
                }
            })
            .await
            .clone()
    }

    /// For IDLE: a doorbell rung after each change to the user's mail, once the answer for
    /// the idlers' `since` is ready (by the hub, started here if none runs). Take it before
    /// looking at the mailbox: a change after that look rings it. None when the store is gone.
    pub(crate) fn idle_doorbell(self: &Arc<Self>, name: &str, since: u64) -> Option<Arc<Doorbell>> {
        let store = self.store.upgrade()?;
        let bell = Arc::new(Doorbell {
            notify: Notify::new(),
        });
        let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.idlers.push(Arc::downgrade(&bell));
        if hub.name != name {
            hub.name = name.to_string();
        }
        if hub.idlers.len() > 2 * hub.swept_at.max(64) {
            hub.idlers.retain(|w| w.strong_count() > 0);
            hub.swept_at = hub.idlers.len();
        }
        if !hub.running {
            hub.running = true;
            // Subscribed here, under the lock: a change from now on reaches the hub.
            let changes = store.watch();
            tokio::spawn(run_hub(Arc::downgrade(self), changes, since));
        }
        Some(bell)
    }

    /// The slot that answers (name, since) with every change up to `version`, made if none
    /// does. A slot counted at a version at or above the caller's holds all the caller needs.
    fn slot(&self, name: &str, since: u64, version: u64) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots
            .iter()
            .find(|s| s.since == since && s.version >= version && s.name == name)
        {
            return s.clone();
        }
        let made = Arc::new(Slot {
            name: name.to_string(),
            since,
            version,
            answer: OnceCell::new(),
        });
        // The same question asked at an older count is superseded; else the oldest goes.
        if let Some(i) = slots
            .iter()
            .position(|s| s.since == since && s.name == name)
        {
            slots[i] = made.clone();
        } else {
            if slots.len() >= SLOTS {
                if let Some(i) = slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.version)
                    .map(|(i, _)| i)
                {
                    slots.swap_remove(i);
                }
            }
            slots.push(made.clone());
        }
        made
    }
}

/// The hub of one mailbox: waits for the user's next change, asks the store what changed
/// since the idlers' modseq (the answer goes into the share), then rings the idlers' doorbells
/// in batches. Ends at a change that finds no idler (the next idler starts another), or when
/// the share or the store is gone.
async fn run_hub(share: Weak<MailboxShare>, mut changes: watch::Receiver<u64>, mut since: u64) {
    loop {
        let store_alive = changes.changed().await.is_ok();
        let Some(sh) = share.upgrade() else { return };
        let (bells, name) = {
            let mut hub = sh.hub.lock().unwrap_or_else(|e| e.into_inner());
            let bells: Vec<Arc<Doorbell>> = hub.idlers.iter().filter_map(Weak::upgrade).collect();
            // Under the lock, so a session taking a doorbell now either is in this list or
            // finds the hub stopped and starts another.
            if bells.is_empty() || !store_alive {
                hub.running = false;
                hub.idlers.clear();
                return;
            }
            hub.idlers.retain(|w| w.strong_count() > 0);
            hub.swept_at = hub.idlers.len();
            (bells, hub.name.clone())
        };
        let version = *changes.borrow_and_update();
        // Errors (the mailbox renamed or deleted) are the idlers' to meet: each asks again.
        if let Ok(answer) = sh.changes_since(&name, since, version).await {
            since = since.max(answer.highestmodseq);
        }
        drop(sh);
        for batch in bells.chunks(RING_BATCH) {
            for bell in batch {
                bell.notify.notify_one();
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestBackend;
    use std::time::Duration;
    use storage::{NewMessage, UserStore};

    fn append(store: &UserStore, body: &str) {
        let raw = format!("Subject: {body}\r\n\r\n{body}\r\n");
        store
            .append(
                "INBOX",
                NewMessage {
                    raw: raw.as_bytes(),
                    flags: Default::default(),
                    internal_date: None,
                    delivery_key: None,
                },
            )
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_share_per_store_and_mailbox_while_held() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        let id = st.mailbox("INBOX").unwrap().id;
        let a = share(&Reader::new(st.clone()), id);
        assert!(Arc::ptr_eq(&a, &share(&Reader::new(st.clone()), id)));
        let other = TestBackend::demo();
        let st2 = other.store.user("demo").unwrap();
        assert!(!Arc::ptr_eq(&a, &share(&Reader::new(st2.clone()), id)));
        drop(a);
        // Nobody holds it: a new one is made (the old answers are gone with it).
        let b2 = share(&Reader::new(st.clone()), id);
        assert!(b2.slots.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_question_same_answer_until_a_newer_change() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        let id = st.mailbox("INBOX").unwrap().id;
        let sh = share(&Reader::new(st.clone()), id);
        let mut watch = st.watch();
        append(&st, "one");
        let v1 = *watch.borrow_and_update();
        // Many sessions asking at once all get the very same answer object.
        let answers = futures_join(&sh, v1, 50).await;
        let first = answers[0].clone();
        assert_eq!(first.changed.len(), 1);
        assert!(answers.iter().all(|a| Arc::ptr_eq(a, &first)));
        // A newer change is counted: the old answer no longer serves, a new one is computed.
        append(&st, "two");
        let v2 = *watch.borrow_and_update();
        assert!(v2 > v1);
        let again = sh.changes_since("INBOX", 0, v2).await.unwrap();
        assert_eq!(again.changed.len(), 2);
        assert!(!Arc::ptr_eq(&again, &first));
        // An older count is served by the newer answer (it holds more, never less).
        let old = sh.changes_since("INBOX", 0, v1).await.unwrap();
        assert!(Arc::ptr_eq(&old, &again));
        // Another `since` is another question.
        let since = first.highestmodseq;
        let later = sh.changes_since("INBOX", since, v2).await.unwrap();
        assert_eq!(later.changed.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_reach_every_asker() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        let id = st.mailbox("INBOX").unwrap().id;
        let sh = share(&Reader::new(st.clone()), id);
        let e = sh.changes_since("No such box", 0, 1).await.unwrap_err();
        assert!(e.is_no(&crate::imap::response::Code::NonExistent), "{e:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hub_rings_idlers_with_the_answer_ready_and_ends_without_them() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        let id = st.mailbox("INBOX").unwrap().id;
        let sh = share(&Reader::new(st.clone()), id);
        let since = st.mailbox("INBOX").unwrap().highestmodseq;
        // More idlers than one batch, so ringing crosses a yield.
        let idlers: Vec<_> = (0..RING_BATCH + 3)
            .map(|_| sh.idle_doorbell("INBOX", since).unwrap())
            .collect();
        assert!(sh.hub.lock().unwrap().running, "one hub for all idlers");
        let mut counter = st.watch();
        append(&st, "one");
        let version = *counter.borrow_and_update();
        for bell in &idlers {
            tokio::time::timeout(Duration::from_secs(5), bell.rung())
                .await
                .expect("idler rung");
        }
        // The answer was computed before the ring: the idlers' question is answered already.
        let ready = sh
            .slots
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.since == since && s.version >= version)
            .and_then(|s| s.answer.get().cloned());
        let ready = ready.expect("answer ready when the idlers wake").unwrap();
        assert_eq!(ready.changed.len(), 1);
        // A ring while nobody waits is kept for the next wait.
        append(&st, "kept");
        tokio::time::timeout(Duration::from_secs(5), idlers[0].rung())
            .await
            .expect("kept ring");
        // Every idler gone: the hub ends at the next change and a new idler starts another.
        drop(idlers);
        append(&st, "two");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sh.hub.lock().unwrap().running {
            assert!(std::time::Instant::now() < deadline, "hub did not end");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let bell = sh.idle_doorbell("INBOX", ready.highestmodseq).unwrap();
        assert!(sh.hub.lock().unwrap().running);
        append(&st, "three");
        tokio::time::timeout(Duration::from_secs(5), bell.rung())
            .await
            .expect("new hub rings");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hub_follows_a_rename_through_the_latest_idler() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        st.create_mailbox("Old", None).unwrap();
        let id = st.mailbox("Old").unwrap().id;
        let sh = share(&Reader::new(st.clone()), id);
        let since = st.mailbox("Old").unwrap().highestmodseq;
        let old_idler = sh.idle_doorbell("Old", since).unwrap();
        st.rename_mailbox("Old", "New").unwrap();
        tokio::time::timeout(Duration::from_secs(5), old_idler.rung())
            .await
            .expect("rung for the rename");
        // The old name's idler would now meet NONEXISTENT and leave; a new one re-selected.
        drop(old_idler);
        let since = st.mailbox("New").unwrap().highestmodseq;
        let bell = sh.idle_doorbell("New", since).unwrap();
        let mut counter = st.watch();
        let raw = b"Subject: x\r\n\r\nx\r\n";
        st.append(
            "New",
            NewMessage {
                raw,
                flags: Default::default(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .unwrap();
        let version = *counter.borrow_and_update();
        tokio::time::timeout(Duration::from_secs(5), bell.rung())
            .await
            .expect("rung");
        let ready = sh
            .slots
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == "New" && s.since == since && s.version >= version)
            .and_then(|s| s.answer.get().cloned());
        assert_eq!(
            ready
                .expect("answered under the new name")
                .unwrap()
                .changed
                .len(),
            1
        );
    }

    #[test]
    fn slots_are_bounded_and_keep_the_newest() {
        let b = TestBackend::demo();
        let st = b.store.user("demo").unwrap();
        let sh = share(&Reader::new(st.clone()), storage::Guid([9; 16]));
        for since in 0..10u64 {
            sh.slot("INBOX", since, since);
        }
        let slots = sh.slots.lock().unwrap();
        assert_eq!(slots.len(), SLOTS);
        let mut kept: Vec<u64> = slots.iter().map(|s| s.since).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![6, 7, 8, 9]);
    }

    /// `n` concurrent askers of the same question.
    async fn futures_join(sh: &Arc<MailboxShare>, version: u64, n: usize) -> Vec<Arc<Changes>> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let sh = sh.clone();
            set.spawn(async move { sh.changes_since("INBOX", 0, version).await.unwrap() });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.unwrap());
        }
        out
    }
}
