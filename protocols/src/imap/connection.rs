//! The connection loop: greets, reads and frames the byte stream, parses each command, runs it
//! through the dispatcher, brings the client up to date and writes the tagged completion.
//! Commands see only [`Session`]'s interface (session.rs); this is the one place that knows
//! the commands.

use super::commands;
use super::framing::{Frame, Framer};
use super::parse::{self, Request};
use super::reply::Done;
use super::response::{Code, RespText, Status, Tagged, Untagged};
use super::session::{Enabled, Session, State, FLUSH_AT, PRE_AUTH_MAX_LITERAL};
use super::ImapContext;
use crate::backend::ConnInfo;
use crate::stream::BoxStream;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

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
        compressed: false,
        notify: None,
        shared: None,
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
        let greeting = RespText::coded(
            Code::Capability(self.capabilities()),
            self.ctx.config.greeting.clone(),
        );
        self.send(&Untagged::Ok(greeting));
        if self.flush().await.is_err() {
            return;
        }
        loop {
            while let Some(frame) = self.framer.next_frame() {
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

    async fn handle_frame(&mut self, frame: Frame) -> Done {
        match frame {
            Frame::Continue => {
                self.encoder().continuation(&mut self.out, "OK");
                if self.flush().await.is_err() {
                    return Done::Close;
                }
                Done::Ok(RespText::new(""))
            }
            Frame::LiteralRefused { tag, size } => {
                let text = self.literal_too_large(size);
                self.finish(tag.as_deref(), Done::No(text))
            }
            Frame::LiteralFatal { tag, size } => {
                let text = self.literal_too_large(size);
                self.finish(tag.as_deref(), Done::Bad(text));
                self.send(&Untagged::Bye(
                    "Literal too large; closing the connection.".into(),
                ));
                self.end_reason = Some("Literal too large".into());
                Done::Close
            }
            Frame::LineTooLong { tag } => self.finish(
                tag.as_deref(),
                Done::Bad("Error in IMAP command received by server: Too long argument.".into()),
            ),
            Frame::Command(msg) => match parse::parse(&self.expand_saved(msg)) {
                Ok(req) => self.command(req).await,
                Err(e) => self.finish(e.tag.as_deref(), Done::Bad(e.text)),
            },
        }
    }

    /// SEARCHRES: `$` written out as the saved result (see [`super::searchres`]).
    fn expand_saved(&self, msg: Vec<u8>) -> Vec<u8> {
        let Some(sel) = self.sel.as_ref() else {
            return msg;
        };
        let seq_of = |u: u32| sel.index_of_uid(u).map(|i| i as u32 + 1);
        super::searchres::substitute(&msg, &sel.saved, &seq_of).unwrap_or(msg)
    }

    fn literal_too_large(&self, size: u64) -> RespText {
        RespText::coded(
            Code::TooBig,
            format!(
                "Literal too large: {size} bytes, limit {}",
                self.framer.max_literal()
            ),
        )
    }

    /// Writes the tagged (or untagged, when the tag is unknown) completion.
    fn finish(&mut self, tag: Option<&str>, done: Done) -> Done {
        let (status, text) = match &done {
            Done::Ok(t) => (Status::Ok, t),
            Done::No(t) => (Status::No, t),
            Done::Bad(t) => (Status::Bad, t),
            Done::Close | Done::Silent => return done,
        };
        let enc = self.encoder();
        match tag {
            Some(tag) => enc.tagged(&mut self.out, &Tagged { tag, status, text }),
            None => {
                let r = match status {
                    Status::Ok => Untagged::Ok(text.clone()),
                    Status::No => Untagged::No(text.clone()),
                    Status::Bad => Untagged::Bad(text.clone()),
                };
                enc.untagged(&mut self.out, &r);
            }
        }
        done
    }

    async fn command(&mut self, req: Request) -> Done {
        let tag = req.tag.clone();
        self.current_tag = tag.clone();
        let allow_expunge = commands::allows_expunge(&req.kind);
        let reply = commands::dispatch(self, &tag, req.kind).await;
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
            if let Err(d) = commands::update_contexts(self).await {
                tracing::warn!("search context update failed: {d:?}");
            }
        }
        // NOTIFY: other mailboxes' changes, selected or not.
        if self.notify.is_some() && !self.pending_close && !matches!(done, Done::Bad(_)) {
            if let Err(d) = commands::notify_check(self).await {
                tracing::warn!("NOTIFY update failed: {d:?}");
            }
        }
        let done = self.finish(Some(&tag), done);
        if self.pending_close {
            return Done::Close;
        }
        done
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
