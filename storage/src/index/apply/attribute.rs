//! Attribute records (METADATA and ACL entries): the later write by HLC time wins per key
//! ([`crate::merge::attributes`]); a removal stays as a dated tombstone so an older write
//! that arrives after it changes nothing.

use crate::error::Result;
use crate::index::*;
use crate::merge::attributes::later_wins;
use crate::types::*;

pub(super) fn set(
    tx: &mut Txn,
    mailbox: Option<&MailboxId>,
    key: &str,
    value: Option<&Vec<u8>>,
    time: HlcTime,
) -> Result<()> {
    let k = k_attr(mailbox, key);
    let current = tx.get::<AttrRec>(&k)?.map(|a| a.time);
    if later_wins(current, time) {
        tx.put(
            k,
            &AttrRec {
                time,
                value: value.cloned(),
            },
        );
    }
    Ok(())
}
