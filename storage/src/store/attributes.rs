//! Attributes of mailboxes and of the user's server: METADATA entries (RFC 5464) and ACL
//! entries (RFC 4314), change-log records like the rest of the user's mail (`Op::Attribute`).

use super::*;
use crate::index::{self, AttrRec};

impl UserStore {
    /// The node's hybrid-logical-clock time in milliseconds: it never goes back, so expiry
    /// times kept in attributes (Sieve's reply tracking) compare across a clock step.
    pub fn clock_now_ms(&self) -> u64 {
        self.core.shared.hlc.now().wall_ms
    }

    /// Sets (value Some) or removes (None) entries of `mailbox` (None: the server's), as one
    /// durable write. Keys and values are checked by `merge::attributes::check`.
    pub fn set_attributes(
        &self,
        mailbox: Option<&str>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<()> {
        self.submit(Req::Attributes {
            mailbox: mailbox.map(str::to_string),
            entries,
        })
        .map(|_| ())
    }

    /// The entries of `mailbox` (None: the server's) whose key starts with `prefix`, in key
    /// order (removed ones left out).
    pub fn attributes(
        &self,
        mailbox: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let id = match mailbox {
            Some(name) => Some(self.mailbox_rec(name)?.id),
            None => None,
        };
        let base = index::k_attr_prefix(id.as_ref());
        let mut scan = base.clone();
        scan.extend_from_slice(prefix.as_bytes());
        let mut out = Vec::new();
        for (k, rec) in self.core.view().scan::<AttrRec>(&scan)? {
            let (Some(value), Some(key)) = (rec.value, k.get(base.len()..)) else {
                continue;
            };
            if let Ok(key) = String::from_utf8(key.to_vec()) {
                out.push((key, value));
            }
        }
        Ok(out)
    }
}
