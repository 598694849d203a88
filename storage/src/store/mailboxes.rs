//! Mailboxes: list, look up, create, delete, rename, subscribe.

use super::*;
use crate::error::StoreError;
use crate::index;
use crate::writer::{Reply, Req};
use crate::{names, Result};

impl UserStore {
    pub(super) fn mailbox_rec(&self, name: &str) -> Result<index::MailboxRec> {
        let canon = names::canonical(name);
        self.core
            .view()
            .mailbox_by_name(&canon)?
            .ok_or(StoreError::NoSuchMailbox(name.to_string()))
    }

    /// All mailboxes, sorted by name.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxInfo>> {
        let v = self.core.view();
        let mut out = Vec::new();
        for mb in v.mailboxes()? {
            let sub = v.get_raw(&index::k_sub(&mb.name))?.is_some();
            out.push(mb.info(sub));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Looks a mailbox up by name ("inbox" in any case is INBOX).
    pub fn mailbox(&self, name: &str) -> Result<MailboxInfo> {
        let mb = self.mailbox_rec(name)?;
        let sub = self.core.view().get_raw(&index::k_sub(&mb.name))?.is_some();
        Ok(mb.info(sub))
    }

    pub fn create_mailbox(
        &self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo> {
        match self.submit(Req::Create {
            name: name.to_string(),
            special_use,
        })? {
            Reply::Mailbox(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }

    /// Deletes a mailbox and expunges its messages. INBOX cannot be deleted.
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        self.submit(Req::Delete {
            name: name.to_string(),
        })
        .map(|_| ())
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its messages to the new
    /// mailbox and leaves INBOX empty (RFC 9051 6.3.6).
    pub fn rename_mailbox(&self, from: &str, to: &str) -> Result<()> {
        self.submit(Req::Rename {
            from: from.to_string(),
            to: to.to_string(),
        })
        .map(|_| ())
    }

    /// Subscriptions are by name and may name a mailbox that does not exist.
    pub fn subscribe(&self, name: &str) -> Result<()> {
        self.submit(Req::Subscribe {
            name: name.to_string(),
            on: true,
        })
        .map(|_| ())
    }

    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        self.submit(Req::Subscribe {
            name: name.to_string(),
            on: false,
        })
        .map(|_| ())
    }

    pub fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(self
            .core
            .view()
            .scan_raw(b"s")?
            .into_iter()
            .filter_map(|(k, _)| String::from_utf8(k[1..].to_vec()).ok())
            .collect())
    }
}
