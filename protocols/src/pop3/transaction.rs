//! The TRANSACTION state's commands, and the UPDATE state at QUIT, where the deletions are
//! applied as one expunge.

use super::command::Command;
use super::maildrop::{render, uidl, MsgError};
use super::session::{Session, Stop, Transaction};
use crate::mail::WriteError;
use storage::{Flag, FlagMode};

impl Session {
    fn tx(&mut self) -> Result<&mut Transaction, Stop> {
        // Only called in the TRANSACTION state; a missing state ends the session, never panics.
        self.tx.as_mut().ok_or(Stop::Closed)
    }

    fn msg_error(&mut self, e: MsgError) {
        self.io.send_line(&format!("-ERR {e}"));
    }

    pub(super) async fn transaction_command(&mut self, cmd: Command) -> Result<(), Stop> {
        match cmd {
            Command::Capa => self.capa(),
            Command::Stat => {
                let (n, size) = self.tx()?.maildrop.stat();
                self.io.send_line(&format!("+OK {n} {size}"));
            }
            Command::List(None) => {
                let tx = self.tx()?;
                let (n, _) = tx.maildrop.stat();
                let mut out = format!("+OK {n} messages:\r\n");
                for (i, m) in tx.maildrop.live() {
                    out.push_str(&format!("{i} {}\r\n", m.size));
                }
                out.push('.');
                self.io.send_line(&out);
            }
            Command::List(Some(n)) => match self.tx()?.maildrop.get(n).map(|m| m.size) {
                Ok(size) => self.io.send_line(&format!("+OK {n} {size}")),
                Err(e) => self.msg_error(e),
            },
            Command::Uidl(None) => {
                let tx = self.tx()?;
                let mut out = String::from("+OK\r\n");
                for (i, m) in tx.maildrop.live() {
                    out.push_str(&format!("{i} {}\r\n", uidl(m)));
                }
                out.push('.');
                self.io.send_line(&out);
            }
            Command::Uidl(Some(n)) => match self.tx()?.maildrop.get(n).map(uidl) {
                Ok(u) => self.io.send_line(&format!("+OK {n} {u}")),
                Err(e) => self.msg_error(e),
            },
            Command::Retr(n) => return self.send_message(n, None).await,
            Command::Top(n, lines) => return self.send_message(n, Some(lines)).await,
            Command::Dele(n) => match self.tx()?.maildrop.dele(n) {
                Ok(()) => self.io.send_line("+OK Marked to be deleted."),
                Err(e) => self.msg_error(e),
            },
            Command::Rset => {
                self.tx()?.maildrop.rset();
                self.io.send_line("+OK");
            }
            Command::Noop => self.io.send_line("+OK"),
            Command::Quit => {
                self.update().await;
                // The reply is still queued: release first, so the client's next login,
                // sent as soon as it reads "+OK", never meets this session's lock.
                if let Some(tx) = self.tx.as_mut() {
                    tx.lock = None;
                    tx.session = None;
                }
                return Err(Stop::Said);
            }
            Command::User(_)
            | Command::Pass(_)
            | Command::Auth(_)
            | Command::Apop(..)
            | Command::Xclient(_)
            | Command::Stls => {
                self.io.send_line("-ERR Unknown command.");
                return self.bad_command();
            }
        }
        Ok(())
    }

    /// RETR (top = None) or TOP n m.
    async fn send_message(&mut self, n: u32, top: Option<u32>) -> Result<(), Stop> {
        let no_nuls = self.ctx.config.no_nuls;
        let tx = self.tx()?;
        let meta = match tx.maildrop.get(n) {
            Ok(m) => m.clone(),
            Err(e) => {
                self.msg_error(e);
                return Ok(());
            }
        };
        let store = tx.store.reader().clone();
        let user = tx.user.clone();
        let read = crate::blocking::run(move || {
            store
                .read_message(&meta.object)
                .map(|raw| (render(&raw, top, no_nuls), raw.len() as u64))
        })
        .await;
        let (body, size) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!("pop3({user}): cannot read message {n}: {e}");
                self.io
                    .send_line("-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information.");
                return Ok(());
            }
            Err(e) => {
                tracing::error!("pop3({user}): cannot read message {n}: {e}");
                self.io
                    .send_line("-ERR [SYS/TEMP] Internal error occurred. Refer to server log for more information.");
                return Ok(());
            }
        };
        let tx = self.tx()?;
        match top {
            None => {
                tx.maildrop.mark_retrieved(n);
                tx.retr = (tx.retr.0 + 1, tx.retr.1 + size);
                self.io.send_line(&format!("+OK {size} octets"));
            }
            Some(_) => {
                tx.top = (tx.top.0 + 1, tx.top.1 + body.len() as u64);
                self.io.send_line("+OK");
            }
        }
        self.io.send(&body);
        Ok(())
    }

    /// The UPDATE state: \Seen for retrieved messages, then the deletions as one expunge. The
    /// reply is queued only once the write may be acknowledged (see [`crate::mail`]).
    async fn update(&mut self) {
        let no_flag_updates = self.ctx.config.no_flag_updates;
        let Some(tx) = self.tx.as_mut() else { return };
        let deleted = tx.maildrop.deleted_uids();
        let seen = if no_flag_updates {
            Vec::new()
        } else {
            tx.maildrop.seen_uids()
        };
        if deleted.is_empty() && seen.is_empty() {
            self.io.send_line("+OK Logging out.");
            return;
        }
        let user = tx.user.clone();
        let result = tx
            .store
            .write(move |store| {
                if !seen.is_empty() {
                    let flags = [Flag::Seen].into_iter().collect();
                    // Best effort: a lost \Seen must not stop the deletions.
                    if let Err(e) = store.store_flags("INBOX", &seen, FlagMode::Add, &flags, None) {
                        tracing::warn!("could not set \\Seen on retrieved messages: {e}");
                    }
                }
                if deleted.is_empty() {
                    Ok(Vec::new())
                } else {
                    store.expunge("INBOX", &deleted)
                }
            })
            .await;
        let not_removed = "-ERR [SYS/TEMP] Some deleted messages were not removed.";
        match result {
            Ok(Ok(expunged)) => {
                if let Some(tx) = self.tx.as_mut() {
                    tx.expunged = expunged.len();
                }
                if expunged.is_empty() {
                    self.io.send_line("+OK Logging out.");
                } else {
                    self.io.send_line("+OK Logging out, messages deleted.");
                }
            }
            Err(WriteError::Refused(refused)) => {
                // Names the node that takes writes, so the operator (and a curious user) knows
                // where to go; the deletions may be durable here, but are not acknowledged.
                tracing::warn!("pop3({user}): deletions not acknowledged: {refused}");
                self.io.send_line(&format!(
                    "-ERR [SYS/TEMP] Deleted messages were not removed: {refused}"
                ));
            }
            Ok(Err(e)) => {
                tracing::error!("pop3({user}): expunge at QUIT failed: {e}");
                self.io.send_line(not_removed);
            }
            Err(WriteError::Internal(e)) => {
                tracing::error!("pop3({user}): expunge at QUIT failed: {e}");
                self.io.send_line(not_removed);
            }
        }
    }
}
