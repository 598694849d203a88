//! The session: its state, and the interface the commands use (responses, store calls, the
//! selected mailbox, reading and writing the stream), with the mailbox synchronisation that
//! tells a client about other sessions' changes. The loop that runs commands is
//! [`super::connection`]; the commands live in [`super::commands`], one file per command or
//! small group.

use super::changes::Changes;
use super::framing::Framer;
use super::reply::{server_bug, store_error, Done};
use super::response::{Code, Encoder, RespText, Untagged};
use super::selected::{Selected, TakenIn};
use super::ImapContext;
use crate::backend::{ConnInfo, SessionGuard};
use crate::mail::{Reader, UserMail, WriteError};
use crate::stream::BoxStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::UserStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Output is flushed once this much is buffered, so a large FETCH never sits whole in memory.
pub(crate) const FLUSH_AT: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
const IDLE_READ_CHUNK: usize = 2 * 1024;
/// Largest literal accepted before authentication.
pub(crate) const PRE_AUTH_MAX_LITERAL: u64 = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
    pub rev2: bool,
}

pub(crate) struct Session {
    pub ctx: Arc<ImapContext>,
    pub conn: ConnInfo,
    /// None only while STARTTLS swaps the stream.
    pub stream: Option<BoxStream>,
    pub framer: Framer,
    pub out: Vec<u8>,
    pub state: State,
    pub user: Option<String>,
    pub store: Option<UserMail>,
    pub watch: Option<watch::Receiver<u64>>,
    pub guard: Option<SessionGuard>,
    pub sel: Option<Selected>,
    pub enabled: Enabled,
    pub auth_attempts: u32,
    pub started: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Why the connection ended, for the Disconnected log line.
    pub end_reason: Option<String>,
    /// The tag of the command running (ESEARCH quotes it).
    pub current_tag: String,
    /// Set by LOGOUT: close once the tagged reply is written.
    pub pending_close: bool,
    /// COMPRESS DEFLATE is on (RFC 4978).
    pub compressed: bool,
    /// NOTIFY (RFC 5465) settings; None without NOTIFY or after NOTIFY NONE.
    pub notify: Option<super::commands::NotifyState>,
    /// While another user's mailbox is selected (ACL, `shared/OWNER/NAME`): the user's own
    /// store, kept aside while `store` and `watch` are the owner's.
    pub shared: Option<super::commands::SharedView>,
    pub span: tracing::Span,
}

impl Session {
    /// The inactivity limit for the current state.
    fn read_timeout(&self) -> Duration {
        if self.state == State::NotAuthenticated {
            // A deadline from connect, not per read: a client trickling bytes still has to
            // log in within the limit.
            self.ctx
                .config
                .login_timeout
                .saturating_sub(self.started.elapsed())
        } else {
            self.ctx.config.idle_timeout
        }
    }

    /// Reads more bytes into the framer. Err(()) = the connection is over (EOF, error,
    /// timeout or shutdown; a BYE was queued where one is due).
    pub async fn fill(&mut self) -> Result<(), ()> {
        let timeout = self.read_timeout();
        // Waiting for the next command needs little; a literal in flight reads in big chunks.
        let size = if self.framer.is_idle() {
            IDLE_READ_CHUNK
        } else {
            READ_CHUNK
        };
        let mut buf = vec![0u8; size];
        let Some(stream) = self.stream.as_mut() else {
            return Err(());
        };
        let shutdown = self.ctx.shutdown.clone();
        tokio::select! {
            r = tokio::time::timeout(timeout, stream.read(&mut buf)) => match r {
                Ok(Ok(0)) => {
                    self.end_reason.get_or_insert_with(|| "Connection closed".into());
                    Err(())
                }
                Ok(Ok(n)) => {
                    self.bytes_in += n as u64;
                    self.framer.push(&buf[..n]);
                    Ok(())
                }
                Ok(Err(e)) => {
                    self.end_reason.get_or_insert_with(|| format!("Connection closed: {e}"));
                    Err(())
                }
                Err(_) => {
                    // Dovecot's text, before and after login alike.
                    self.send(&Untagged::Bye("Disconnected for inactivity.".into()));
                    self.end_reason = Some(format!("Inactivity - no input for {} secs", timeout.as_secs()));
                    Err(())
                }
            },
            _ = shutdown.cancelled() => {
                self.send(&Untagged::Bye("Server shutting down.".into()));
                self.end_reason = Some("Server shutting down".into());
                Err(())
            }
        }
    }

    /// Writes buffered output.
    pub async fn flush(&mut self) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(());
        };
        let r = async {
            stream.write_all(&self.out).await?;
            stream.flush().await
        }
        .await;
        self.bytes_out += self.out.len() as u64;
        self.out.clear();
        // Idle sessions hold no large output buffer.
        if self.out.capacity() > 16 * 1024 {
            self.out = Vec::new();
        }
        r.map_err(|e| {
            self.end_reason
                .get_or_insert_with(|| format!("Connection closed: {e}"));
        })
    }

    /// Sends the tagged OK of a command that changes the stream (STARTTLS, COMPRESS), and hands
    /// the stream over for wrapping: nothing more may be written in the old framing.
    pub async fn ok_then_take_stream(
        &mut self,
        tag: &str,
        text: &'static str,
    ) -> Result<BoxStream, Done> {
        let text = RespText::new(text);
        let ok = super::response::Tagged {
            tag,
            status: super::response::Status::Ok,
            text: &text,
        };
        self.encoder().tagged(&mut self.out, &ok);
        if self.flush().await.is_err() {
            return Err(Done::Close);
        }
        self.stream.take().ok_or(Done::Close)
    }

    /// How responses are encoded for this client (what it enabled).
    pub fn encoder(&self) -> Encoder {
        Encoder {
            utf8: self.enabled.utf8,
        }
    }

    /// Queues an untagged response.
    pub fn send(&mut self, r: &Untagged<'_>) {
        self.encoder().untagged(&mut self.out, r);
    }

    // ---------- helpers for commands ----------

    /// The authenticated user's store (read only), or BAD.
    pub fn user_store(&self) -> Result<Reader, Done> {
        self.store
            .as_ref()
            .map(|m| m.reader().clone())
            .ok_or_else(|| Done::Bad("Not authenticated.".into()))
    }

    /// Runs a blocking store read off the async threads; store errors become tagged NO.
    /// The future owns what it needs, so no borrow of the session is held across the await.
    pub fn store_call<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, Done>> + Send + 'static
    where
        F: FnOnce(&Reader) -> storage::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.user_store();
        async move {
            let store = store?;
            match crate::blocking::run(move || f(&store)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(store_error(e)),
                Err(e) => {
                    tracing::error!("store call failed: {e}");
                    Err(server_bug())
                }
            }
        }
    }

    /// Runs a store write ([`UserMail::write`]): NO [UNAVAILABLE] when the write gate is
    /// closed, store errors as tagged NO; the result comes back only once the write may be
    /// acknowledged (a peer has it in `replicated` durability), so a reply built from it never
    /// goes out early.
    pub fn store_write<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, Done>> + Send + 'static
    where
        F: FnOnce(&UserStore) -> storage::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let write = self
            .store
            .as_ref()
            .map(|m| m.write(f))
            .ok_or_else(|| Done::Bad("Not authenticated.".into()));
        async move { Session::write_result(write?.await) }
    }

    /// A write's result as a command sees it (see [`Session::store_write`]).
    pub fn write_result<T>(r: Result<storage::Result<T>, WriteError>) -> Result<T, Done> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(e)),
            Err(WriteError::Refused(e)) => Err(Done::no(Code::Unavailable, e.0)),
            Err(WriteError::Internal(e)) => {
                tracing::error!("store write failed: {e}");
                Err(server_bug())
            }
        }
    }

    /// Whether the write gate is open now (for writes a command makes only when it may, like
    /// FETCH's implicit \Seen).
    pub fn writable(&self) -> bool {
        let user = self.user.as_deref().unwrap_or_default();
        self.ctx.backend.may_write(user).is_ok()
    }

    /// A CONDSTORE-enabling command (FETCH MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ):
    /// the first one while a mailbox is selected also reports HIGHESTMODSEQ (RFC 7162 3.1),
    /// the highest this session's snapshot has taken in.
    pub fn enable_condstore(&mut self) {
        if std::mem::replace(&mut self.enabled.condstore, true) {
            return;
        }
        if let Some(m) = self.sel.as_ref().map(|sel| sel.modseq_seen) {
            self.send(&Untagged::Ok(RespText::coded(
                Code::HighestModSeq(m),
                "Highest",
            )));
        }
    }

    pub fn selected(&self) -> Result<&Selected, Done> {
        self.sel
            .as_ref()
            .ok_or_else(|| Done::Bad("No mailbox selected.".into()))
    }

    /// A mailbox argument of a command, as the store names it (see [`Session::mailbox_in`]).
    pub fn mailbox_arg(
        &self,
        m: &imap_codec::imap_types::mailbox::Mailbox<'_>,
    ) -> Result<String, Done> {
        self.mailbox_in(&super::args::raw_name(m))
    }

    /// Mailbox name from the client: modified UTF-7 unless UTF-8 was enabled.
    pub fn mailbox_in(&self, raw: &[u8]) -> Result<String, Done> {
        if raw.eq_ignore_ascii_case(b"INBOX") {
            return Ok("INBOX".into());
        }
        let name = if self.enabled.utf8 {
            String::from_utf8(raw.to_vec()).ok()
        } else {
            super::mutf7::decode(raw)
        };
        name.ok_or_else(|| Done::no(Code::Cannot, "Invalid mailbox name."))
    }

    /// Capabilities for the current state and connection.
    pub fn capabilities(&self) -> Vec<String> {
        let mut c: Vec<String> = [
            "IMAP4rev1",
            "IMAP4rev2",
            "SASL-IR",
            "LOGIN-REFERRALS",
            "ID",
            "ENABLE",
            "IDLE",
            "LITERAL+",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        c.retain(|s| s != "LOGIN-REFERRALS");
        if self.state == State::NotAuthenticated {
            if self.ctx.tls.is_some() && !self.conn.tls {
                c.push("STARTTLS".into());
            }
            let plaintext = self.ctx.backend.allow_plaintext(&self.conn);
            // Mechanisms that do not send the password stay offered without TLS.
            for m in self.ctx.config.mechanisms() {
                if m.offered(plaintext, &self.conn) {
                    c.push(format!("AUTH={}", m.as_str()));
                }
            }
            if !plaintext {
                c.push("LOGINDISABLED".into());
            }
        } else {
            for x in [
                "NAMESPACE",
                "UNSELECT",
                "UIDPLUS",
                "MULTIAPPEND",
                "CATENATE",
                "BINARY",
                "MOVE",
                "CHILDREN",
                "SPECIAL-USE",
                "CREATE-SPECIAL-USE",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "ESEARCH",
                "SORT",
                "SORT=DISPLAY",
                "ESORT",
                "CONTEXT=SEARCH",
                "CONTEXT=SORT",
                "PARTIAL",
                "SEARCHRES",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "CONDSTORE",
                "QRESYNC",
                "STATUS=SIZE",
                "QUOTA",
                "COMPRESS=DEFLATE",
                "UNAUTHENTICATE",
                "OBJECTID",
                "PREVIEW",
                "SAVEDATE",
                "REPLACE",
                "NOTIFY",
                "METADATA",
                "METADATA-SERVER",
                "ACL",
                "RIGHTS=texk",
                "LIST-MYRIGHTS",
                "URLAUTH",
                "URLAUTH=BINARY",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
                "UTF8=ACCEPT",
            ] {
                c.push(x.into());
            }
            // RFC 7889: clients learn the largest APPEND before sending it.
            c.push(format!("APPENDLIMIT={}", self.ctx.config.max_literal_size));
        }
        c.extend(self.ctx.config.capability_extra.iter().cloned());
        c
    }

    // ---------- mailbox synchronisation ----------

    /// Takes other sessions' changes into the snapshot and reports them: FETCH for flag
    /// changes, EXISTS (and RECENT) for new messages, and EXPUNGE/VANISHED only when
    /// `allow_expunge` (never during FETCH, STORE or SEARCH, RFC 9051 7.5.1).
    pub async fn sync(&mut self, allow_expunge: bool) -> Result<(), Done> {
        // The user's change counter, read before looking: a change after this read ticks it
        // again, so nothing is missed.
        let version = self.watch.as_mut().map(|w| *w.borrow_and_update());
        let Some(changes) = self.changes_since_snapshot(version).await? else {
            return Ok(());
        };
        let condstore = self.enabled.condstore;
        let store = self.store.as_ref().map(|m| m.reader().clone());
        let (Some(store), Some(sel)) = (store, self.sel.as_mut()) else {
            return Ok(());
        };
        let recent_above = recent_above(&store, sel, &changes);
        let taken = sel.take_in(&changes, recent_above, condstore);
        sel.synced_version = version;
        self.report_changes(taken, allow_expunge);
        Ok(())
    }

    /// What changed in the selected mailbox since the snapshot. None when no mailbox is
    /// selected, or when it was deleted (the session is then ending).
    async fn changes_since_snapshot(
        &mut self,
        version: Option<u64>,
    ) -> Result<Option<Arc<Changes>>, Done> {
        let Some(sel) = self.sel.as_ref() else {
            return Ok(None);
        };
        // Unchanged since the last look: nothing to ask the store (NOOP/IDLE polling costs no
        // store call); only expunges held back earlier may be due.
        if version.is_some() && version == sel.synced_version {
            return Ok(Some(Arc::new(Changes::default())));
        }
        let name = sel.name.clone();
        let since = sel.modseq_seen;
        let answer = match version {
            // Sessions of this mailbox woken by the same change ask the store once.
            Some(v) => sel.share.clone().changes_since(&name, since, v).await,
            None => self
                .store_call(move |s| s.changes_since(&name, since))
                .await
                .map(|c| Arc::new(c.into())),
        };
        match answer {
            Ok(c) => Ok(Some(c)),
            Err(d) if d.is_no(&Code::NonExistent) => {
                self.selected_mailbox_deleted();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the UIDs `gone` (expunged by this session) from the snapshot and tells the
    /// client: EXPUNGE, or VANISHED to a QRESYNC client.
    pub fn announce_expunged(&mut self, gone: &[u32]) {
        let qresync = self.enabled.qresync;
        let Some(sel) = self.sel.as_mut() else {
            return;
        };
        let removed = sel.contexts_expunged(gone);
        let lines = sel.expunge(gone, qresync);
        let enc = self.encoder();
        send_removefrom(&enc, &mut self.out, removed);
        for r in &lines {
            enc.untagged(&mut self.out, r);
        }
    }

    /// Tells the client of keywords in `flags` it has not seen in FLAGS yet, with untagged
    /// FLAGS and PERMANENTFLAGS, before any FETCH shows them (RFC 9051 7.3.5).
    pub fn announce_keywords<'a>(&mut self, flags: impl IntoIterator<Item = &'a storage::Flags>) {
        let max = self.ctx.config.max_keywords;
        let Some(sel) = self.sel.as_mut() else {
            return;
        };
        let mut grew = false;
        for f in flags {
            grew |= sel.learn_keywords(f);
        }
        if grew {
            let lines = super::selected::flags_announcement(&sel.keywords, sel.read_only, max);
            for r in &lines {
                self.send(r);
            }
        }
    }

    /// Refuses a change that would give the selected mailbox more than the configured number
    /// of keywords (those this session knows of, plus the new ones in `flags`).
    pub fn check_keyword_limit(&self, flags: &storage::Flags) -> Result<(), Done> {
        let max = self.ctx.config.max_keywords;
        let known = self.sel.as_ref().map(|s| &s.keywords);
        let new = super::selected::keywords_of(flags)
            .filter(|k| known.is_none_or(|set| !set.contains(*k)))
            .count();
        let have = known.map_or(0, |set| set.len());
        if new > 0 && have + new > max {
            return Err(Done::no(
                Code::Limit,
                format!("Too many keywords in mailbox (limit {max})."),
            ));
        }
        Ok(())
    }

    /// The selected mailbox was deleted (or renamed away): as Dovecot, end the session.
    pub fn selected_mailbox_deleted(&mut self) {
        self.sel = None;
        self.state = State::Authenticated;
        self.send(&Untagged::Bye(
            "Selected mailbox was deleted, have to disconnect.".into(),
        ));
        self.end_reason = Some("Selected mailbox was deleted".into());
        self.pending_close = true;
    }

    /// Tells the client what [`Selected::take_in`] found: expunges first (when allowed), then
    /// EXISTS (and RECENT), then flag changes with the sequence numbers as they stand after
    /// the expunges.
    fn report_changes(&mut self, taken: TakenIn, allow_expunge: bool) {
        let enc = self.encoder();
        let Enabled {
            qresync,
            rev2,
            condstore,
            ..
        } = self.enabled;
        let max_keywords = self.ctx.config.max_keywords;
        let Some(sel) = self.sel.as_mut() else {
            return;
        };
        if taken.new_keywords {
            let lines =
                super::selected::flags_announcement(&sel.keywords, sel.read_only, max_keywords);
            for r in &lines {
                enc.untagged(&mut self.out, r);
            }
        }
        if allow_expunge {
            let pending: Vec<u32> = sel.pending_expunge.iter().copied().collect();
            send_removefrom(&enc, &mut self.out, sel.contexts_expunged(&pending));
            for r in sel.expunge_pending(qresync) {
                enc.untagged(&mut self.out, &r);
            }
        }
        if taken.added > 0 {
            let exists = sel.msgs.len() as u32;
            enc.untagged(&mut self.out, &Untagged::Exists(exists));
            if !rev2 {
                let recent = sel.msgs.iter().filter(|m| m.recent).count() as u32;
                enc.untagged(&mut self.out, &Untagged::Recent(recent));
            }
        }
        for r in sel.flag_fetches(taken.flag_changed, condstore) {
            enc.untagged(&mut self.out, &r);
        }
    }
}

/// ESEARCH REMOVEFROM for context results that lost expunged messages: (tag, uid, pairs).
fn send_removefrom(
    enc: &Encoder,
    out: &mut Vec<u8>,
    removed: Vec<super::selected::ContextRemoval>,
) {
    for (tag, uid, pairs) in removed {
        let e = super::response::ESearch {
            tag: &tag,
            uid,
            removefrom: pairs,
            ..Default::default()
        };
        enc.untagged(out, &Untagged::ESearch(e));
    }
}

/// New messages are \Recent for this session unless another session claimed them first: the
/// UID above which they are (SELECT claims, EXAMINE only looks).
fn recent_above(store: &Reader, sel: &Selected, changes: &Changes) -> u32 {
    let newest = changes.changed.iter().map(|m| m.uid).max().unwrap_or(0);
    if newest <= sel.last_uid() {
        u32::MAX
    } else if sel.read_only {
        super::recent::claimed(store, sel.id, sel.uidvalidity)
    } else {
        super::recent::claim(store, sel.id, sel.uidvalidity, newest)
    }
}
