//! A session's handle on one user's store, and the only way sessions write to it.
//!
//! In `replicated` durability a write may be acknowledged to the client only after a peer has
//! it too ([`Backend::write_committed`]). Rather than each command remembering that wait, it is
//! part of writing: [`UserMail::write`] checks the write gate, runs the write off the async
//! threads and hands back its result only after the commit wait, so no reply built from the
//! result can go out before it. Reads go through [`Reader`], which has no write methods: a
//! command cannot write past the wait by accident.
//!
//! ```
//! fn reads(r: &protocols::mail::Reader) {
//!     let _ = r.messages("INBOX");
//! }
//! ```
//!
//! ```compile_fail
//! // A read handle cannot write: the only write path is `UserMail::write`.
//! fn reads(r: &protocols::mail::Reader) {
//!     let _ = r.expunge("INBOX", &[1]);
//! }
//! ```

use crate::backend::{Backend, WriteRefused};
use std::sync::{Arc, Weak};
use storage::mime::MessageFacts;
use storage::{MailboxChanges, MailboxInfo, MessageMeta, ObjectId, QuotaUsage, UserStore};

/// Why [`UserMail::write`] did not run its write, or lost track of it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The write gate is closed (not the active node, ...): nothing was written; or it closed
    /// while the write was in flight, and what was written must not be acknowledged.
    #[error("writes refused: {0}")]
    Refused(#[from] WriteRefused),
    /// The blocking call failed (a bug in the write); what it wrote was still waited for.
    #[error("{0}")]
    Internal(String),
}

/// One user's store for one session: reads through [`UserMail::reader`], writes through
/// [`UserMail::write`].
#[derive(Clone)]
pub struct UserMail {
    reader: Reader,
    user: String,
    backend: Arc<dyn Backend>,
}

impl UserMail {
    /// Opens `user`'s store through the backend.
    pub async fn open(backend: &Arc<dyn Backend>, user: &str) -> Result<UserMail, String> {
        let store = backend.open_user(user).await?;
        Ok(UserMail::new(backend.clone(), user, store))
    }

    pub fn new(backend: Arc<dyn Backend>, user: &str, store: Arc<UserStore>) -> UserMail {
        UserMail {
            reader: Reader::new(store),
            user: user.to_string(),
            backend,
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Runs `f` as a write: refused when the write gate is closed; otherwise run on the blocking
    /// pool, and its result returned only after [`Backend::write_committed`] (a peer's ack in
    /// `replicated` durability). The wait follows every run, failed ones too: a write that
    /// failed part way may have stored something, and the reply about it must not precede the
    /// wait either. The future owns what it needs (no borrow of the session across the await).
    pub fn write<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, WriteError>> + Send + 'static
    where
        F: FnOnce(&UserStore) -> T + Send + 'static,
        T: Send + 'static,
    {
        let gate = self.backend.may_write(&self.user);
        let store = self.reader.0.clone();
        let backend = self.backend.clone();
        let user = self.user.clone();
        async move {
            gate?;
            let writer = store.clone();
            let result = crate::blocking::run(move || {
                let r = f(&writer);
                (r, writer.own_seq().unwrap_or(0))
            })
            .await;
            // A refusal here: the node lost the right to write while this write was in flight
            // (raft mode). The change is durable here, but the client gets the refusal, never
            // an acknowledgement, and other readers do not see it until a peer holds it.
            backend.write_committed(&user).await?;
            // Acknowledged (a peer holds it, or the wait gave up and the node acknowledges
            // alone): other sessions may see it now.
            let (result, own_seq) = match result {
                Ok((r, seq)) => (Ok(r), seq),
                Err(e) => (Err(e), 0),
            };
            store.confirm_own(own_seq);
            result.map_err(WriteError::Internal)
        }
    }
}

/// Read access to one user's store. Its methods are the store's reads, blocking like them:
/// call them on the blocking pool ([`crate::blocking`]).
#[derive(Clone)]
pub struct Reader(Arc<UserStore>);

impl Reader {
    pub fn new(store: Arc<UserStore>) -> Reader {
        Reader(store)
    }
    pub fn name(&self) -> &str {
        self.0.name()
    }
    /// The user's directory (Sieve's `~`: scripts and the vacation tracking).
    pub fn dir(&self) -> &std::path::Path {
        self.0.dir()
    }
    /// The node's hybrid-logical-clock time in milliseconds (see `UserStore::clock_now_ms`).
    pub fn clock_now_ms(&self) -> u64 {
        self.0.clock_now_ms()
    }
    pub fn list_mailboxes(&self) -> storage::Result<Vec<MailboxInfo>> {
        self.0
            .list_mailboxes()?
            .into_iter()
            .map(|i| self.visible_info(i))
            .collect()
    }
    pub fn mailbox(&self, name: &str) -> storage::Result<MailboxInfo> {
        self.visible_info(self.0.mailbox(name)?)
    }
    pub fn subscriptions(&self) -> storage::Result<Vec<String>> {
        self.0.subscriptions()
    }
    pub fn messages(&self, mailbox: &str) -> storage::Result<Vec<MessageMeta>> {
        let mut all = self.0.messages(mailbox)?;
        if let Some(limit) = self.limit_of(mailbox)? {
            all.retain(|m| m.uid < limit.uidnext);
            // A message changed since the limit (an unconfirmed flag change, or a peer's change
            // applied after it) shows the limit as its MODSEQ, never more than HIGHESTMODSEQ:
            // the change itself is reported, with its own modseq, once confirmed (the 30-minute
            // jepsen run saw MODSEQ 13967 under HIGHESTMODSEQ 13962, then 13963 on the next
            // active node).
            for m in &mut all {
                m.modseq = m.modseq.min(limit.highestmodseq);
            }
        }
        Ok(all)
    }
    pub fn changes_since(&self, mailbox: &str, modseq: u64) -> storage::Result<MailboxChanges> {
        let mut c = self.0.changes_since(mailbox, modseq)?;
        if let Some(limit) = self.limit_of(mailbox)? {
            // Later changes wait: the caller's next `since` is the clamped HIGHESTMODSEQ, so
            // they come with a later call, once confirmed.
            c.changed
                .retain(|m| m.uid < limit.uidnext && m.modseq <= limit.highestmodseq);
            c.highestmodseq = c.highestmodseq.min(limit.highestmodseq);
            c.uidnext = c.uidnext.min(limit.uidnext);
        }
        Ok(c)
    }
    pub fn read_message(&self, object: &ObjectId) -> storage::Result<Vec<u8>> {
        self.0.read_message(object)
    }
    pub fn facts(&self, object: &ObjectId) -> storage::Result<Arc<MessageFacts>> {
        self.0.facts(object)
    }
    /// The top-level header block, from the store's header cache.
    pub fn header(&self, object: &ObjectId) -> storage::Result<Vec<u8>> {
        self.0.header(object)
    }
    pub fn quota(&self) -> storage::Result<QuotaUsage> {
        self.0.quota()
    }
    /// METADATA and ACL entries (see `UserStore::attributes`).
    pub fn attributes(
        &self,
        mailbox: Option<&str>,
        prefix: &str,
    ) -> storage::Result<Vec<(String, Vec<u8>)>> {
        self.0.attributes(mailbox, prefix)
    }
    /// This node's writes that no peer holds yet are not shown (`replicated` durability, see
    /// `storage::VisibleLimit`): were the node to die now, the next active node would give
    /// their UIDs and modseqs to other changes, and a client must never have seen both.
    fn limit_of(&self, mailbox: &str) -> storage::Result<Option<storage::VisibleLimit>> {
        if !self.0.has_unconfirmed() {
            return Ok(None);
        }
        Ok(self.0.visible_limit(&self.0.mailbox(mailbox)?.id))
    }

    fn visible_info(&self, mut info: MailboxInfo) -> storage::Result<MailboxInfo> {
        let Some(limit) = self
            .0
            .has_unconfirmed()
            .then(|| self.0.visible_limit(&info.id))
            .flatten()
        else {
            return Ok(info);
        };
        // Only the hidden tail is read (a range scan from the limit's UIDNEXT): STATUS and
        // SELECT cost no scan of the whole mailbox while a write waits for its replica.
        let hidden = self.0.messages_from(&info.name, limit.uidnext)?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        info.uidnext = info.uidnext.min(limit.uidnext);
        info.highestmodseq = info.highestmodseq.min(limit.highestmodseq);
        info.exists = info.exists.saturating_sub(count(hidden.len()));
        info.unseen = info.unseen.saturating_sub(count(
            hidden
                .iter()
                .filter(|m| !m.flags.contains(&storage::Flag::Seen))
                .count(),
        ));
        info.size = info
            .size
            .saturating_sub(hidden.iter().map(|m| m.size).sum::<u64>());
        Ok(info)
    }

    /// The user's change counter (see `UserStore::watch`).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.watch()
    }

    /// Identifies the user's store in process-wide registries (one store per user in a
    /// process; stable while any handle is alive).
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    pub(crate) fn downgrade(&self) -> WeakReader {
        WeakReader(Arc::downgrade(&self.0))
    }
}

/// A [`Reader`] that does not keep the store open.
#[derive(Clone, Debug)]
pub(crate) struct WeakReader(Weak<UserStore>);

impl WeakReader {
    pub(crate) fn upgrade(&self) -> Option<Reader> {
        self.0.upgrade().map(Reader)
    }
    pub(crate) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
    pub(crate) fn key(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestBackend;
    use std::time::Duration;

    async fn demo(backend: &Arc<TestBackend>) -> UserMail {
        let dyn_backend: Arc<dyn Backend> = backend.clone();
        UserMail::open(&dyn_backend, "demo").await.unwrap()
    }

    /// What a new command gets when it writes: the write is on disk at once, but its result
    /// (and so any reply made from it) only after the replica wait.
    #[tokio::test]
    async fn a_write_result_comes_back_only_after_the_replica_wait() {
        let backend = TestBackend::demo();
        let mail = demo(&backend).await;
        backend.hold_commits();
        let write = tokio::spawn(mail.write(|st| st.create_mailbox("New", None)));
        backend.commit_calls_reach(1).await;
        let reader = mail.reader().clone();
        let stored = crate::blocking::run(move || reader.mailbox("New").is_ok()).await;
        assert_eq!(stored, Ok(true), "written locally while the wait is held");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!write.is_finished(), "result handed back before the wait");
        backend.release_commits();
        let done = tokio::time::timeout(Duration::from_secs(10), write).await;
        assert!(matches!(done, Ok(Ok(Ok(Ok(_))))), "{done:?}");
    }

    /// `replicated` durability: while a peer does not hold a write yet, other readers see the
    /// mailbox as it was before it (no new UID, no higher HIGHESTMODSEQ, no count change); once
    /// the wait is over they see it.
    #[tokio::test]
    async fn readers_see_a_write_only_once_a_peer_holds_it() {
        let backend = TestBackend::replicated_demo();
        let mail = demo(&backend).await;
        let reader = mail.reader().clone();
        let r = reader.clone();
        let before = crate::blocking::run(move || r.mailbox("INBOX").unwrap())
            .await
            .unwrap();
        backend.hold_commits();
        let write = tokio::spawn(mail.write(|st| {
            st.append(
                "INBOX",
                storage::NewMessage {
                    raw: b"Subject: x\r\n\r\nbody\r\n",
                    flags: storage::Flags::new(),
                    internal_date: None,
                    delivery_key: None,
                },
            )
        }));
        backend.commit_calls_reach(1).await;
        let r = reader.clone();
        let (info, msgs, changes) = crate::blocking::run(move || {
            (
                r.mailbox("INBOX").unwrap(),
                r.messages("INBOX").unwrap(),
                r.changes_since("INBOX", 0).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            (info.uidnext, info.highestmodseq, info.exists),
            (before.uidnext, before.highestmodseq, before.exists)
        );
        assert!(msgs.is_empty() && changes.changed.is_empty(), "{msgs:?}");
        assert_eq!(changes.highestmodseq, before.highestmodseq);
        backend.release_commits();
        let appended = tokio::time::timeout(Duration::from_secs(10), write)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        let r = reader.clone();
        let (info, msgs) = crate::blocking::run(move || {
            (r.mailbox("INBOX").unwrap(), r.messages("INBOX").unwrap())
        })
        .await
        .unwrap();
        assert_eq!(info.exists, before.exists + 1);
        assert!(info.uidnext > appended.uid && info.highestmodseq > before.highestmodseq);
        assert_eq!(
            msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [appended.uid]
        );
    }

    /// A flag change a peer does not hold yet: the message is shown (it was confirmed before),
    /// but its MODSEQ never above the HIGHESTMODSEQ readers are shown.
    #[tokio::test]
    async fn an_unconfirmed_flag_change_shows_no_modseq_above_highestmodseq() {
        let backend = TestBackend::replicated_demo();
        let mail = demo(&backend).await;
        let reader = mail.reader().clone();
        let uid = mail
            .write(|st| {
                st.append(
                    "INBOX",
                    storage::NewMessage {
                        raw: b"Subject: x\r\n\r\nbody\r\n",
                        flags: storage::Flags::new(),
                        internal_date: None,
                        delivery_key: None,
                    },
                )
            })
            .await
            .unwrap()
            .unwrap()
            .uid;
        backend.hold_commits();
        let write = tokio::spawn(mail.write(move |st| {
            st.store_flags(
                "INBOX",
                &[uid],
                storage::FlagMode::Add,
                &[storage::Flag::Flagged].into_iter().collect(),
                None,
            )
        }));
        backend.commit_calls_reach(2).await;
        let r = reader.clone();
        let (info, msgs) = crate::blocking::run(move || {
            (r.mailbox("INBOX").unwrap(), r.messages("INBOX").unwrap())
        })
        .await
        .unwrap();
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].modseq <= info.highestmodseq,
            "MODSEQ {} above HIGHESTMODSEQ {}",
            msgs[0].modseq,
            info.highestmodseq
        );
        backend.release_commits();
        let _ = tokio::time::timeout(Duration::from_secs(10), write).await;
        let r = reader.clone();
        let (after, msgs) = crate::blocking::run(move || {
            (r.mailbox("INBOX").unwrap(), r.messages("INBOX").unwrap())
        })
        .await
        .unwrap();
        assert!(after.highestmodseq > info.highestmodseq);
        assert_eq!(msgs[0].modseq, after.highestmodseq);
    }

    #[tokio::test]
    async fn a_failed_write_is_waited_for_too_and_a_refused_one_not_run() {
        let backend = TestBackend::demo();
        let mail = demo(&backend).await;
        let failed = mail.write(|st| st.delete_mailbox("Missing")).await;
        assert!(matches!(failed, Ok(Err(_))), "{failed:?}");
        assert_eq!(
            backend.committed.load(std::sync::atomic::Ordering::SeqCst),
            1
        );

        backend.refuse_writes(Some("not active"));
        let refused = mail.write(|st| st.create_mailbox("X", None)).await;
        assert!(
            matches!(&refused, Err(WriteError::Refused(r)) if r.0 == "not active"),
            "{refused:?}"
        );
        assert_eq!(
            backend.committed.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        let reader = mail.reader().clone();
        let exists = crate::blocking::run(move || reader.mailbox("X").is_ok()).await;
        assert_eq!(exists, Ok(false), "a refused write ran");
    }
}
