//! Flag changes: UID STORE of a keyword on a message another client appended.

use super::{Ctx, Rng};
use crate::harness::history::{Kind, F};
use crate::harness::wire::Conn;

pub fn run(ctx: Ctx) {
    let mut rng = Rng::new(ctx.seed ^ 0xF1A6);
    let mut conn: Option<(Conn, u32)> = None;
    for i in 0..ctx.max_ops {
        if !ctx.running() {
            break;
        }
        let target = {
            let t = ctx.lock_targets();
            (!t.is_empty()).then(|| t[rng.below(t.len())].clone())
        };
        let Some(target) = target else {
            ctx.sleep(ctx.pace);
            continue;
        };
        let flag = format!("$j{}", i % 4);
        let mut inv = ctx.invoke(F::Store).msgid(&target.msgid);
        inv.uid = Some(target.uid);
        inv.uidvalidity = Some(target.uidvalidity);
        inv.mailbox = Some("INBOX".into());
        ctx.rec.record(inv.clone());
        let mut sent = false;
        let result = (|| -> anyhow::Result<(Option<u32>, String)> {
            if conn.is_none() {
                conn = Some(super::inbox_session(&ctx)?);
            }
            let (c, v) = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            if *v != target.uidvalidity {
                anyhow::bail!("UIDVALIDITY is {v}, the target's {}", target.uidvalidity);
            }
            sent = true;
            let (_, t) = c.imap(&format!("UID STORE {} +FLAGS.SILENT ({flag})", target.uid))?;
            Ok((c.node, t))
        })();
        let done = match result {
            Ok((node, t)) if t.starts_with("OK") => ctx.complete(&inv, Kind::Ok, node, None),
            Ok((node, t)) => ctx.complete(&inv, Kind::Fail, node, Some(t)),
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
        ctx.sleep(ctx.pace);
    }
}
