//! Attribute requests (METADATA and ACL entries, see `Op::Attribute`): a record per entry
//! whose value changes.

use super::plan::Plan;
use super::Reply;
use crate::error::{Result, StoreError};
use crate::index::{self, AttrRec};
use crate::merge::attributes;
use crate::names;
use crate::record::Op;
use crate::user_core::UserCore;

impl UserCore {
    pub(super) fn plan_attributes(
        &self,
        p: &mut Plan,
        mailbox: Option<String>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let id = match mailbox {
            None => None,
            Some(name) => Some(
                tx.mailbox_by_name(&names::canonical(&name))?
                    .ok_or(StoreError::NoSuchMailbox(name))?
                    .id,
            ),
        };
        for (key, value) in entries {
            attributes::check(&key, value.as_deref()).map_err(StoreError::Other)?;
            let current = tx
                .get::<AttrRec>(&index::k_attr(id.as_ref(), &key))?
                .and_then(|a| a.value);
            if current != value {
                self.emit(
                    tx,
                    meta,
                    b,
                    Op::Attribute {
                        mailbox: id,
                        key,
                        value,
                    },
                )?;
            }
        }
        Ok(Reply::Unit)
    }
}
