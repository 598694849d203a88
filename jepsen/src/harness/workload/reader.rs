//! Readers that resynchronise as a CONDSTORE/QRESYNC client does: the first SELECT is plain
//! (with CONDSTORE) and fetches everything; later ones are
//! `SELECT box (QRESYNC (uidvalidity modseq))` followed by a FETCH CHANGEDSINCE, and record
//! every UID -> Message-ID, MODSEQ, flags and VANISHED UID they saw. The state survives
//! reconnects (and fail-overs): that is what a real client trusts.

use super::{Ctx, IO_TIMEOUT};
use crate::harness::history::{Kind, Observation, Seen, F};
use crate::harness::imap_parse;
use crate::harness::lab::{PASS, USER};
use crate::harness::wire::Conn;
use std::collections::BTreeMap;

const MAILBOXES: [&str; 2] = ["INBOX", super::expunge_move::ARCHIVE];
const FETCH_ITEMS: &str = "(UID FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])";
/// VANISHED ranges are expanded up to this many UIDs.
const MAX_VANISHED: usize = 100_000;

pub fn run(ctx: Ctx) {
    let mut conn: Option<Conn> = None;
    // Per mailbox: (UIDVALIDITY, HIGHESTMODSEQ) of the last good resync.
    let mut known: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for i in 0..ctx.max_ops {
        if !ctx.running() {
            break;
        }
        let mailbox = MAILBOXES[i % MAILBOXES.len()];
        let mut inv = ctx.invoke(F::Read);
        inv.mailbox = Some(mailbox.to_string());
        ctx.rec.record(inv.clone());
        let prev = known.get(mailbox).copied();
        let result = (|| -> anyhow::Result<(Option<u32>, Result<Observation, String>)> {
            if conn.is_none() {
                let mut c = Conn::imap_login(ctx.addr, USER, PASS, IO_TIMEOUT)?;
                let (_, t) = c.imap("ENABLE QRESYNC")?;
                if !t.starts_with("OK") {
                    anyhow::bail!("ENABLE QRESYNC: {t}");
                }
                conn = Some(c);
            }
            let c = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            Ok((c.node, resync(c, mailbox, prev)?))
        })();
        let done = match result {
            Ok((node, Ok(obs))) => {
                if let Some(m) = obs.highestmodseq {
                    known.insert(mailbox, (obs.uidvalidity, m));
                }
                let mut d = ctx.complete(&inv, Kind::Ok, node, None);
                d.read = Some(obs);
                d
            }
            Ok((node, Err(no))) => ctx.complete(&inv, Kind::Fail, node, Some(no)),
            Err(e) => {
                conn = None;
                // A read changes nothing: its failure is a failure whatever the cause.
                ctx.complete(&inv, Kind::Fail, None, Some(format!("{e:#}")))
            }
        };
        ctx.rec.record(done);
        ctx.sleep(ctx.pace);
    }
}

/// One resynchronisation; Ok(Err(reply)) when the server said NO (e.g. no Archive yet).
fn resync(
    c: &mut Conn,
    mailbox: &str,
    prev: Option<(u32, u64)>,
) -> anyhow::Result<Result<Observation, String>> {
    let select = match prev {
        Some((v, m)) => format!("SELECT {mailbox} (QRESYNC ({v} {m}))"),
        None => format!("SELECT {mailbox} (CONDSTORE)"),
    };
    let (lines, t) = c.imap(&select)?;
    if !t.starts_with("OK") {
        return Ok(Err(t));
    }
    let Some(uidvalidity) =
        imap_parse::code_number(&lines, "UIDVALIDITY").and_then(|v| u32::try_from(v).ok())
    else {
        anyhow::bail!("{select}: no UIDVALIDITY");
    };
    let highestmodseq = imap_parse::code_number(&lines, "HIGHESTMODSEQ");
    let mut obs = Observation {
        mailbox: mailbox.to_string(),
        uidvalidity,
        highestmodseq,
        ..Observation::default()
    };
    let mut by_uid: BTreeMap<u32, Seen> = BTreeMap::new();
    for l in &lines {
        if let Some(s) = imap_parse::fetch(l) {
            by_uid.insert(s.uid, s);
        } else if let Some(v) = imap_parse::vanished(l, MAX_VANISHED) {
            obs.vanished.extend(v);
        }
    }
    // Same UIDVALIDITY: only what changed since; otherwise everything.
    let fetch = match prev {
        Some((v, m)) if v == uidvalidity => {
            format!("UID FETCH 1:* {FETCH_ITEMS} (CHANGEDSINCE {m})")
        }
        _ => format!("UID FETCH 1:* {FETCH_ITEMS}"),
    };
    let (lines, t) = c.imap(&fetch)?;
    if !t.starts_with("OK") {
        return Ok(Err(t));
    }
    for l in &lines {
        if let Some(s) = imap_parse::fetch(l) {
            // The later FETCH has the Message-ID; it wins.
            by_uid.insert(s.uid, s);
        }
    }
    obs.messages = by_uid.into_values().collect();
    Ok(Ok(obs))
}
