//! Expunges (UID STORE \Deleted + UID EXPUNGE) and MOVEs to Archive of messages another
//! client appended, alternately. A target is taken out of the shared list first, so no other
//! client acts on a message that may be gone.

use super::{Ctx, Rng};
use crate::harness::history::{Kind, F};
use crate::harness::wire::Conn;

pub const ARCHIVE: &str = "Archive";

pub fn run(ctx: Ctx) {
    let mut rng = Rng::new(ctx.seed ^ 0xE4B6);
    let mut conn: Option<(Conn, u32)> = None;
    for i in 0..ctx.max_ops {
        if !ctx.running() {
            break;
        }
        let target = {
            let mut t = ctx.lock_targets();
            // Keep a few for the flag workload.
            (t.len() > 4).then(|| {
                let n = t.len();
                t.remove(rng.below(n))
            })
        };
        let Some(target) = target else {
            ctx.sleep(ctx.pace);
            continue;
        };
        let moving = i % 2 == 1;
        let mut inv = ctx
            .invoke(if moving { F::Move } else { F::Expunge })
            .msgid(&target.msgid);
        inv.uid = Some(target.uid);
        inv.uidvalidity = Some(target.uidvalidity);
        inv.mailbox = Some("INBOX".into());
        ctx.rec.record(inv.clone());
        let mut sent = false;
        let result = (|| -> anyhow::Result<(Option<u32>, String)> {
            if conn.is_none() {
                let (mut c, v) = super::inbox_session(&ctx)?;
                // Exists already after the first session: a NO is expected then.
                let _ = c.imap(&format!("CREATE {ARCHIVE}"))?;
                conn = Some((c, v));
            }
            let (c, v) = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            if *v != target.uidvalidity {
                anyhow::bail!("UIDVALIDITY is {v}, the target's {}", target.uidvalidity);
            }
            sent = true;
            let t = if moving {
                c.imap(&format!("UID MOVE {} {ARCHIVE}", target.uid))?.1
            } else {
                let (_, t) = c.imap(&format!(
                    "UID STORE {} +FLAGS.SILENT (\\Deleted)",
                    target.uid
                ))?;
                if !t.starts_with("OK") {
                    t
                } else {
                    c.imap(&format!("UID EXPUNGE {}", target.uid))?.1
                }
            };
            Ok((c.node, t))
        })();
        let done = match result {
            Ok((node, t)) if t.starts_with("OK") => ctx.complete(&inv, Kind::Ok, node, None),
            // A NO after \Deleted was stored still may leave it marked: unknown, not failed.
            Ok((node, t)) => ctx.complete(&inv, Kind::Info, node, Some(t)),
            Err(e) => {
                conn = None;
                ctx.complete(
                    &inv,
                    super::kind_of_error(sent),
                    None,
                    Some(format!("{e:#}")),
                )
            }
        };
        ctx.rec.record(done);
        // Slower than the writers, so the mailbox grows.
        ctx.sleep(ctx.pace * 3);
    }
}
