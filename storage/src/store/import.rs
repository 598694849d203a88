//! Import with the source's UIDs and UIDVALIDITY (see `writer/import.rs` for the rules).

use super::*;
use crate::error::StoreError;
use crate::writer::{ImportMsg, ImportReq, Reply};
use crate::{pack, Result};

/// A message as another server held it.
#[derive(Clone, Debug)]
pub struct ImportMessage<'a> {
    pub uid: u32,
    /// Raw RFC 5322 message, stored byte for byte.
    pub raw: &'a [u8],
    pub flags: Flags,
    /// Seconds since the epoch and UTC offset in minutes.
    pub internal_date: (i64, i32),
}

impl UserStore {
    /// Stores `messages` in `mailbox` at their UIDs, creating the mailbox with `uidvalidity`
    /// (or giving it that UIDVALIDITY while it has never held a message). One durable batch:
    /// all of them or none. Run again with the same messages, it stores nothing twice.
    pub fn import(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        messages: &[ImportMessage<'_>],
    ) -> Result<ImportOutcome> {
        let limit = self.core.shared.config.max_message_size;
        let mut prepared = Vec::with_capacity(messages.len());
        for m in messages {
            if m.raw.len() as u64 > limit {
                return Err(StoreError::TooLarge {
                    size: m.raw.len() as u64,
                    limit,
                });
            }
            let facts = std::panic::catch_unwind(|| crate::mime::parse_facts(m.raw))
                .ok()
                .map(Box::new);
            prepared.push(ImportMsg {
                uid: m.uid,
                object: pack::prepare(m.raw)?,
                facts,
                flags: m.flags.clone(),
                internal_date: m.internal_date,
            });
        }
        prepared.sort_by_key(|m| m.uid);
        match self.submit(Req::Import(ImportReq {
            mailbox: mailbox.to_string(),
            uidvalidity,
            messages: prepared,
        }))? {
            Reply::Import(o) => Ok(o),
            _ => Err(unexpected()),
        }
    }
}
