//! The session: state, the read/frame/dispatch loop, response helpers, and the mailbox
//! synchronisation that tells a client about other sessions' changes. The commands themselves
//! live in [`super::commands`], one file per command or small group.

use super::commands;
use super::format;
use super::framing::{Frame, Framer};
use super::parse::{self, Request};
use super::ImapContext;
use crate::backend::{ConnInfo, SessionGuard};
use crate::stream::BoxStream;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{MessageMeta, StoreError, UserStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::Instrument;

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

/// How a command ended: the tagged status and its text (response code included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    Ok(String),
    No(String),
    Bad(String),
    /// The connection ends now (what had to be said is already in the output).
    Close,
    /// The command already wrote its tagged reply (STARTTLS).
    Silent,
}

pub(crate) type Reply = Result<Done, Done>;

/// One message of the session's snapshot of the selected mailbox.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    /// Shared with the other sessions that took the same change from one shared answer
    /// (imap::changes): thousands of sessions of one mailbox hold one copy of each new message's
    /// entry, not one each.
    pub meta: Arc<MessageMeta>,
    /// \Recent for this session: the message arrived while this session had the mailbox open.
    pub recent: bool,
}

#[derive(Debug)]
pub(crate) struct Selected {
    pub name: String,
    pub read_only: bool,
    pub id: storage::MailboxId,
    pub uidvalidity: u32,
    /// Sequence number n is `msgs[n - 1]`; UIDs ascend.
    pub msgs: Vec<Msg>,
    /// Changes up to this modseq have been taken into the snapshot.
    pub modseq_seen: u64,
    /// UIDs expunged by others, still in the snapshot until EXPUNGE may be announced.
    pub pending_expunge: BTreeSet<u32>,
    /// The user's change counter (`UserStore::watch`) when the snapshot was last brought up
    /// to date; None = unknown.
    pub synced_version: Option<u64>,
    /// Answers to "what changed since" shared with the other sessions of this mailbox.
    pub share: Arc<super::changes::MailboxShare>,
}

impl Selected {
    pub fn uids(&self) -> Vec<u32> {
        self.msgs.iter().map(|m| m.meta.uid).collect()
    }
    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.meta.uid).ok()
    }
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
    pub store: Option<Arc<UserStore>>,
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
    pub span: tracing::Span,
}

/// Serves one IMAP connection until the client logs out, times out, or the server shuts down.
pub async fn serve(stream: BoxStream, conn: ConnInfo, ctx: Arc<ImapContext>) {
    let span = tracing::info_span!(
        "imap",
        session = %conn.session_id,
        rip = %conn.remote.ip(),
        user = tracing::field::Empty
    );
    let mut framer = Framer::new(ctx.config.max_line_length, ctx.config.max_literal_size);
    // Before login only LOGIN/AUTHENTICATE arguments come as literals: no one may make an
    // unauthenticated session buffer a message-sized literal.
    framer.set_max_literal(PRE_AUTH_MAX_LITERAL.min(ctx.config.max_literal_size));
    let mut s = Session {
        ctx,
        conn,
        stream: Some(stream),
        framer,
        out: Vec::new(),
        state: State::NotAuthenticated,
        user: None,
        store: None,
        watch: None,
        guard: None,
        sel: None,
        enabled: Enabled::default(),
        auth_attempts: 0,
        started: Instant::now(),
        bytes_in: 0,
        bytes_out: 0,
        end_reason: None,
        pending_close: false,
        current_tag: String::new(),
        span: span.clone(),
    };
    async move {
        s.run().await;
        s.log_disconnect();
        if let Some(mut st) = s.stream.take() {
            let _ = st.shutdown().await;
        }
    }
    .instrument(span)
    .await
}

impl Session {
    async fn run(&mut self) {
        let caps = self.capabilities().join(" ");
        let greeting = format!("OK [CAPABILITY {caps}] {}", self.ctx.config.greeting);
        self.untagged(&greeting);
        if self.flush().await.is_err() {
            return;
        }
        loop {
            while let Some(frame) = self.framer.next() {
                if self.handle_frame(frame).await == Done::Close {
                    let _ = self.flush().await;
                    return;
                }
                if self.out.len() >= FLUSH_AT && self.flush().await.is_err() {
                    return;
                }
            }
            if self.flush().await.is_err() {
                return;
            }
            if self.fill().await.is_err() {
                let _ = self.flush().await;
                return;
            }
        }
    }

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
                    self.untagged("BYE Disconnected for inactivity.");
                    self.end_reason = Some(format!("Inactivity - no input for {} secs", timeout.as_secs()));
                    Err(())
                }
            },
            _ = shutdown.cancelled() => {
                self.untagged("BYE Server shutting down.");
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

    pub fn untagged(&mut self, text: &str) {
        self.out.extend_from_slice(b"* ");
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn tagged(&mut self, tag: &str, status: &str, text: &str) {
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(status.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn handle_frame(&mut self, frame: Frame) -> Done {
        match frame {
            Frame::Continue => {
                self.out.extend_from_slice(b"+ OK\r\n");
                if self.flush().await.is_err() {
                    return Done::Close;
                }
                Done::Ok(String::new())
            }
            Frame::LiteralRefused { tag, size } => {
                let text = format!(
                    "[TOOBIG] Literal too large: {size} bytes, limit {}",
                    self.framer.max_literal()
                );
                self.finish(tag.as_deref(), Done::No(text))
            }
            Frame::LiteralFatal { tag, size } => {
                let text = format!(
                    "[TOOBIG] Literal too large: {size} bytes, limit {}",
                    self.framer.max_literal()
                );
                self.finish(tag.as_deref(), Done::Bad(text));
                self.untagged("BYE Literal too large; closing the connection.");
                self.end_reason = Some("Literal too large".into());
                Done::Close
            }
            Frame::LineTooLong { tag } => self.finish(
                tag.as_deref(),
                Done::Bad("Error in IMAP command received by server: Too long argument.".into()),
            ),
            Frame::Command(msg) => match parse::parse(&msg) {
                Ok(req) => self.command(req).await,
                Err(e) => self.finish(e.tag.as_deref(), Done::Bad(e.text)),
            },
        }
    }

    /// Writes the tagged (or untagged, when the tag is unknown) completion.
    fn finish(&mut self, tag: Option<&str>, done: Done) -> Done {
        let (status, text) = match &done {
            Done::Ok(t) => ("OK", t),
            Done::No(t) => ("NO", t),
            Done::Bad(t) => ("BAD", t),
            Done::Close | Done::Silent => return done,
        };
        let text = text.clone();
        match tag {
            Some(tag) => self.tagged(tag, status, &text),
            None => self.untagged(&format!("{status} {text}")),
        }
        done
    }

    async fn command(&mut self, req: Request) -> Done {
        let tag = req.tag.clone();
        self.current_tag = tag.clone();
        let (reply, allow_expunge) = commands::dispatch(self, &tag, req.kind).await;
        let done = match reply {
            Ok(d) | Err(d) => d,
        };
        if done == Done::Close {
            return Done::Close;
        }
        // Tell the client about other sessions' changes before completing (RFC 9051 7).
        if self.state == State::Selected && !self.pending_close && !matches!(done, Done::Bad(_)) {
            if let Err(d) = self.sync(allow_expunge).await {
                tracing::warn!("mailbox update failed: {d:?}");
            }
        }
        let done = self.finish(Some(&tag), done);
        if self.pending_close {
            return Done::Close;
        }
        done
    }

    // ---------- helpers for commands ----------

    /// The authenticated user's store, or BAD.
    pub fn user_store(&self) -> Result<Arc<UserStore>, Done> {
        self.store
            .clone()
            .ok_or_else(|| Done::Bad("Not authenticated.".into()))
    }

    /// Runs a blocking store call off the async threads; store errors become tagged NO.
    /// The future owns what it needs, so no borrow of the session is held across the await.
    pub fn store_call<T, F>(
        &self,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, Done>> + Send + 'static
    where
        F: FnOnce(&UserStore) -> storage::Result<T> + Send + 'static,
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
                    Err(Done::No(SERVERBUG.into()))
                }
            }
        }
    }

    /// The write gate: NO with the backend's text when this node may not write now.
    pub fn check_writable(&self) -> Result<(), Done> {
        let user = self.user.as_deref().unwrap_or_default();
        self.ctx
            .backend
            .may_write(user)
            .map_err(|e| Done::No(format!("[UNAVAILABLE] {}", e.0)))
    }

    /// After a write is durable in the local store (the store call returned) and before the
    /// tagged OK: lets replication wait for a peer where the durability mode asks for it; NO
    /// `[UNAVAILABLE]` when the node lost the right to write meanwhile.
    pub fn committed(
        &self,
    ) -> impl std::future::Future<Output = Result<(), Done>> + Send + 'static {
        let user = self.user.clone().unwrap_or_default();
        let backend = self.ctx.backend.clone();
        async move {
            backend
                .write_committed(&user)
                .await
                .map_err(|e| Done::No(format!("[UNAVAILABLE] {}", e.0)))
        }
    }

    /// A CONDSTORE-enabling command (FETCH MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE, SEARCH MODSEQ):
    /// the first one while a mailbox is selected also reports HIGHESTMODSEQ (RFC 7162 3.1),
    /// the highest this session's snapshot has taken in.
    pub fn enable_condstore(&mut self) {
        if std::mem::replace(&mut self.enabled.condstore, true) {
            return;
        }
        if let Some(m) = self.sel.as_ref().map(|sel| sel.modseq_seen) {
            self.untagged(&format!("OK [HIGHESTMODSEQ {m}] Highest"));
        }
    }

    pub fn selected(&self) -> Result<&Selected, Done> {
        self.sel
            .as_ref()
            .ok_or_else(|| Done::Bad("No mailbox selected.".into()))
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
        name.ok_or_else(|| Done::No("[CANNOT] Invalid mailbox name.".into()))
    }

    /// Writes a mailbox name as an astring in the client's encoding.
    pub fn mailbox_out(&self, out: &mut Vec<u8>, name: &str) {
        if self.enabled.utf8 {
            format::astring(out, name.as_bytes(), true);
        } else {
            format::astring(out, super::mutf7::encode(name).as_bytes(), false);
        }
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
            if self.ctx.backend.allow_plaintext(&self.conn) {
                for m in self.ctx.config.mechanisms() {
                    c.push(format!("AUTH={}", m.as_str()));
                }
            } else {
                c.push("LOGINDISABLED".into());
            }
        } else {
            for x in [
                "NAMESPACE",
                "UNSELECT",
                "UIDPLUS",
                "MULTIAPPEND",
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
                "CONDSTORE",
                "QRESYNC",
                "STATUS=SIZE",
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
        let Some(sel) = self.sel.as_ref() else {
            return Ok(());
        };
        // The user's change counter, read before looking: a change after this read ticks it
        // again, so nothing is missed. Unchanged since the last look => nothing to ask the store
        // (NOOP/IDLE polling costs no store call).
        let version = self.watch.as_mut().map(|w| *w.borrow_and_update());
        let changes = if version.is_some() && version == sel.synced_version {
            // Only expunges held back earlier may be due.
            Arc::new(super::changes::Changes::default())
        } else {
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
                Ok(c) => c,
                Err(Done::No(text)) if text.starts_with("[NONEXISTENT]") => {
                    // Another session deleted or renamed it: as Dovecot, end this session.
                    self.sel = None;
                    self.state = State::Authenticated;
                    self.untagged("BYE Selected mailbox was deleted, have to disconnect.");
                    self.end_reason = Some("Selected mailbox was deleted".into());
                    self.pending_close = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        };
        let condstore = self.enabled.condstore;
        // UIDs whose flags (or modseq, with CONDSTORE) changed; their FETCH lines are written
        // after the expunges, so they carry the sequence numbers the client holds by then.
        let mut flag_changed: BTreeSet<u32> = BTreeSet::new();
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        let last_uid = sel.msgs.last().map(|m| m.meta.uid).unwrap_or(0);
        // New messages are \Recent here unless another session claimed them first.
        let newest = changes.changed.iter().map(|m| m.uid).max().unwrap_or(0);
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let recent_above = if newest <= last_uid {
            u32::MAX
        } else if sel.read_only {
            super::recent::claimed(&store, sel.id, sel.uidvalidity)
        } else {
            super::recent::claim(&store, sel.id, sel.uidvalidity, newest)
        };
        let mut added = 0usize;
        for meta in &changes.changed {
            if let Some(i) = sel.index_of_uid(meta.uid) {
                let m = &mut sel.msgs[i];
                if m.meta.flags != meta.flags || (condstore && m.meta.modseq != meta.modseq) {
                    flag_changed.insert(meta.uid);
                }
                m.meta = meta.clone();
            } else if meta.uid > last_uid && sel.msgs.last().is_none_or(|l| l.meta.uid < meta.uid) {
                sel.msgs.push(Msg {
                    recent: meta.uid > recent_above,
                    meta: meta.clone(),
                });
                added += 1;
            }
        }
        for &uid in &changes.expunged {
            if sel.index_of_uid(uid).is_some() {
                sel.pending_expunge.insert(uid);
            }
        }
        sel.modseq_seen = sel.modseq_seen.max(changes.highestmodseq);
        sel.synced_version = version;
        let mut expunge_lines = Vec::new();
        if allow_expunge && !sel.pending_expunge.is_empty() {
            let gone: Vec<u32> = std::mem::take(&mut sel.pending_expunge)
                .into_iter()
                .collect();
            if self.enabled.qresync {
                expunge_lines.push(format!("VANISHED {}", format::compact_set(&gone)));
                sel.msgs
                    .retain(|m| gone.binary_search(&m.meta.uid).is_err());
            } else {
                // Highest sequence number first, so each number is valid when it is sent.
                for uid in gone.iter().rev() {
                    if let Some(i) = sel.index_of_uid(*uid) {
                        sel.msgs.remove(i);
                        expunge_lines.push(format!("{} EXPUNGE", i + 1));
                    }
                }
            }
        }
        // Sequence numbers as they stand after the expunges above; a message expunged by
        // another session but not yet announced gets no FETCH (the client will be told it is
        // gone instead).
        let mut fetch_lines = Vec::new();
        for uid in flag_changed {
            if sel.pending_expunge.contains(&uid) {
                continue;
            }
            let Some(i) = sel.index_of_uid(uid) else {
                continue;
            };
            let m = &sel.msgs[i];
            let mut line = format!(
                "{} FETCH (UID {} FLAGS {}",
                i + 1,
                uid,
                format::flag_list(&m.meta.flags, m.recent)
            );
            if condstore {
                line.push_str(&format!(" MODSEQ ({})", m.meta.modseq));
            }
            line.push(')');
            fetch_lines.push(line);
        }
        let exists = sel.msgs.len();
        let recent = sel.msgs.iter().filter(|m| m.recent).count();
        for l in expunge_lines {
            self.untagged(&l);
        }
        if added > 0 {
            self.untagged(&format!("{exists} EXISTS"));
            if !self.enabled.rev2 {
                self.untagged(&format!("{recent} RECENT"));
            }
        }
        for l in fetch_lines {
            self.untagged(&l);
        }
        Ok(())
    }

    fn log_disconnect(&self) {
        let secs = self.started.elapsed().as_secs();
        if self.user.is_some() {
            let reason = self.end_reason.as_deref().unwrap_or("Logged out");
            tracing::info!(
                "Disconnected: {reason} in={} out={}",
                self.bytes_in,
                self.bytes_out
            );
        } else if self.auth_attempts > 0 {
            tracing::info!(
                "imap-login: Disconnected (auth failed, {} attempts in {secs} secs): rip={}, lip={}, session=<{}>",
                self.auth_attempts,
                self.conn.remote.ip(),
                self.conn.local.ip(),
                self.conn.session_id
            );
        } else {
            tracing::info!(
                "imap-login: Disconnected (no auth attempts in {secs} secs): rip={}, lip={}, session=<{}>",
                self.conn.remote.ip(),
                self.conn.local.ip(),
                self.conn.session_id
            );
        }
    }
}

pub(crate) const SERVERBUG: &str =
    "[SERVERBUG] Internal error occurred. Refer to server log for more information.";

/// Maps a store error to a tagged NO with Dovecot's response codes and texts.
pub(crate) fn store_error(e: StoreError) -> Done {
    match e {
        StoreError::NoSuchMailbox(name) => {
            Done::No(format!("[NONEXISTENT] Mailbox doesn't exist: {name}"))
        }
        StoreError::MailboxExists(_) => Done::No("[ALREADYEXISTS] Mailbox already exists".into()),
        StoreError::InvalidMailboxName { reason, .. } => {
            Done::No(format!("[CANNOT] Invalid mailbox name: {reason}"))
        }
        StoreError::MailboxProtected(name) => Done::No(format!(
            "[CANNOT] Mailbox {name} can't be deleted or renamed this way."
        )),
        StoreError::HasChildren(_) => {
            Done::No("[INUSE] Mailbox has children, delete them first".into())
        }
        StoreError::OverQuota(what) => Done::No(format!(
            "[OVERQUOTA] Quota exceeded (mailbox for user is full): {what}"
        )),
        StoreError::TooLarge { size, limit } => Done::No(format!(
            "[TOOBIG] Message too large: {size} bytes, limit {limit}"
        )),
        other => {
            tracing::error!("store error: {other}");
            Done::No(SERVERBUG.into())
        }
    }
}
