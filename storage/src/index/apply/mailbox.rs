//! Mailbox records: create, rename, delete, a new UIDVALIDITY. Mailboxes are matched by GUID;
//! the naming and creation rules are [`crate::merge::names`] and [`crate::merge::mailboxes`].

use super::ghosts::drop_ghosts;
use super::messages::del_msg;
use crate::error::Result;
use crate::index::*;
use crate::merge::{self, names::Naming};
use crate::types::*;

pub(super) fn create(
    tx: &mut Txn,
    mailbox: &MailboxId,
    name: &str,
    uidvalidity: u32,
    special_use: Option<SpecialUse>,
    time: HlcTime,
) -> Result<()> {
    if tx.get_raw(&k_deleted(mailbox))?.is_some() {
        return Ok(()); // deleted here: the delete is final
    }
    if let Some(mut mb) = tx.mailbox(mailbox)? {
        if merge::mailboxes::earlier_creation_wins(mb.created, time) {
            if mb.uidvalidity != uidvalidity {
                // Clients see a new UIDVALIDITY and resynchronise; counted and explained here.
                tracing::warn!(user = tx.user, mailbox = %mb.name, old = mb.uidvalidity,
                    new = uidvalidity, "UIDVALIDITY changed: the same mailbox was created \
                    earlier on another node, and the earliest creation's UIDVALIDITY is kept \
                    on every node");
            }
            mb.uidvalidity = uidvalidity;
            mb.created = time;
            tx.put_mailbox(&mb);
        }
        return claim_name(tx, mb, name, time, false);
    }
    let mb = MailboxRec {
        id: *mailbox,
        name: String::new(),
        uidvalidity,
        uidnext: 1,
        highestmodseq: 1,
        special_use,
        exists: 0,
        unseen: 0,
        size: 0,
        created: time,
        named: time,
        wanted: name.to_string(),
        renamed: false,
    };
    tx.put_mailbox(&mb);
    tx.put_raw(k_wanted(name, mailbox), Vec::new());
    settle_name(tx, name)
}

pub(super) fn rename(tx: &mut Txn, mailbox: &MailboxId, name: &str, time: HlcTime) -> Result<()> {
    match tx.mailbox(mailbox)? {
        Some(mb) => claim_name(tx, mb, name, time, true),
        None => Ok(()),
    }
}

/// Deletes the mailbox with its messages, ghosts, tombstones and conflicts, and remembers the
/// GUID as deleted (final).
pub(super) fn delete(tx: &mut Txn, mailbox: &MailboxId) -> Result<()> {
    let Some(mb) = tx.mailbox(mailbox)? else {
        return Ok(());
    };
    for m in tx.messages(mailbox)? {
        tx.del(k_guid(&m.meta.guid));
        del_msg(tx, mailbox, &m);
    }
    drop_ghosts(tx, mailbox)?;
    for prefix in [
        k_tomb_prefix(mailbox),
        k_expunged_prefix(mailbox),
        k_pending_prefix(mailbox),
        k_contested_prefix(mailbox),
    ] {
        for (k, _) in tx.scan_raw(&prefix)? {
            tx.del(k);
        }
    }
    if tx.get::<MailboxId>(&k_name(&mb.name))? == Some(*mailbox) {
        tx.del(k_name(&mb.name));
    }
    tx.del(k_mailbox(mailbox));
    tx.del(k_wanted(&mb.wanted, mailbox));
    tx.put_raw(k_deleted(mailbox), Vec::new());
    settle_name(tx, &mb.wanted)
}

pub(super) fn set_uidvalidity(tx: &mut Txn, mailbox: &MailboxId, uidvalidity: u32) -> Result<()> {
    if let Some(mut mb) = tx.mailbox(mailbox)? {
        mb.uidvalidity = uidvalidity;
        super::bump(&mut mb);
        tx.put_mailbox(&mb);
    }
    Ok(())
}

/// A create or rename of an existing mailbox asks for `name` at `time`; if it wins
/// ([`merge::names::claim_wins`]) the mailbox wants that name from now on.
fn claim_name(
    tx: &mut Txn,
    mut mb: MailboxRec,
    name: &str,
    time: HlcTime,
    rename: bool,
) -> Result<()> {
    let current = Naming {
        named: mb.named,
        renamed: mb.renamed,
    };
    if !merge::names::claim_wins(current, time, rename) {
        return Ok(());
    }
    mb.named = time;
    mb.renamed = rename;
    let old = std::mem::replace(&mut mb.wanted, name.to_string());
    tx.put_mailbox(&mb);
    if old != name {
        tx.del(k_wanted(&old, &mb.id));
        tx.put_raw(k_wanted(name, &mb.id), Vec::new());
        settle_name(tx, &old)?;
    }
    // Even for the same name: a later `named` can change who keeps it.
    settle_name(tx, name)
}

/// Gives `wanted` to the first of the mailboxes that want it ([`merge::names::clash_order`])
/// and suffixed names to the others. A function of the live mailboxes only, so every node ends
/// with the same names whatever order records came in.
fn settle_name(tx: &mut Txn, wanted: &str) -> Result<()> {
    let prefix = k_wanted_prefix(wanted);
    let mut boxes = Vec::new();
    for (k, _) in tx.scan_raw(&prefix)? {
        let Some(id) = k
            .get(prefix.len()..)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
        else {
            continue;
        };
        if let Some(mb) = tx.mailbox(&Guid(id))? {
            boxes.push(mb);
        }
    }
    boxes.sort_by_key(|m| merge::names::clash_order(m.named, m.id));
    let mut renamed = Vec::new();
    for (i, mb) in boxes.into_iter().enumerate() {
        let name = if i == 0 {
            wanted.to_string()
        } else {
            merge::names::suffixed(wanted, &mb.id)
        };
        if mb.name != name {
            if i > 0 {
                tracing::warn!(user = tx.user, mailbox = %wanted, renamed_to = %name,
                    "mailbox name clash between nodes: the one named later gets a suffix");
            }
            renamed.push((mb, name));
        }
    }
    // Release every old name first, then take the new ones (two mailboxes may swap).
    for (mb, _) in &renamed {
        if !mb.name.is_empty() && tx.get::<MailboxId>(&k_name(&mb.name))? == Some(mb.id) {
            tx.del(k_name(&mb.name));
        }
    }
    for (mut mb, name) in renamed {
        tx.put(k_name(&name), &mb.id);
        mb.name = name;
        tx.put_mailbox(&mb);
    }
    Ok(())
}
