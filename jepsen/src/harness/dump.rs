//! The final state of each node, read over IMAP straight from the node (from inside its
//! namespace): per mailbox its UIDVALIDITY, and per message UID, Message-ID, flags, MODSEQ.

use super::history::Seen;
use super::imap_parse;
use super::lab::{Lab, PASS, USER};
use super::netns;
use super::wire::Conn;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxDump {
    pub uidvalidity: u32,
    pub highestmodseq: Option<u64>,
    pub messages: Vec<Seen>,
}

/// One node's mail: mailbox name -> contents. None when the node could not be read.
pub type NodeDump = BTreeMap<String, MailboxDump>;

/// A mailbox list longer than this is not ours.
const MAX_MAILBOXES: usize = 100;

pub fn read(addr: SocketAddr) -> Result<NodeDump> {
    let mut c = Conn::imap_login(addr, USER, PASS, Duration::from_secs(20))?;
    let (_, t) = c.imap("ENABLE CONDSTORE")?;
    if !t.starts_with("OK") {
        bail!("ENABLE CONDSTORE: {t}");
    }
    let (lines, t) = c.imap("LIST \"\" \"*\"")?;
    if !t.starts_with("OK") {
        bail!("LIST: {t}");
    }
    let names: Vec<String> = lines
        .iter()
        .filter_map(|l| imap_parse::list_name(l))
        .take(MAX_MAILBOXES)
        .collect();
    let mut dump = NodeDump::new();
    for name in names {
        let (lines, t) = c.imap(&format!("SELECT \"{name}\""))?;
        if !t.starts_with("OK") {
            bail!("SELECT {name}: {t}");
        }
        let uidvalidity = imap_parse::code_number(&lines, "UIDVALIDITY")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        let highestmodseq = imap_parse::code_number(&lines, "HIGHESTMODSEQ");
        let (lines, t) =
            c.imap("UID FETCH 1:* (UID FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")?;
        if !t.starts_with("OK") {
            bail!("FETCH in {name}: {t}");
        }
        let mut messages: Vec<Seen> = lines.iter().filter_map(|l| imap_parse::fetch(l)).collect();
        for m in &mut messages {
            m.flags.sort();
            // \Recent is per session, not state.
            m.flags.retain(|f| f != "\\Recent");
        }
        messages.sort_by_key(|m| m.uid);
        dump.insert(
            name,
            MailboxDump {
                uidvalidity,
                highestmodseq,
                messages,
            },
        );
    }
    let _ = c.imap("LOGOUT");
    Ok(dump)
}

/// Every node's dump, read from inside its namespace; Err(text) for a node that did not
/// answer.
pub fn read_all(lab: &Lab) -> BTreeMap<u32, Result<NodeDump, String>> {
    lab.members
        .iter()
        .map(|m| {
            let addr = SocketAddr::from((m.addr, 143));
            let r = netns::run_in(&m.netns, move || read(addr))
                .and_then(|r| r)
                .map_err(|e| format!("{e:#}"));
            (m.id, r)
        })
        .collect()
}
