//! IMAP APPEND of messages with unique Message-IDs; the acknowledged APPENDUID
//! (UIDVALIDITY, UID) is recorded. Never retried: a retried APPEND is a new message in IMAP.

use super::{Ctx, Target, IO_TIMEOUT};
use crate::harness::history::{Kind, F};
use crate::harness::imap_parse;
use crate::harness::lab::{PASS, USER};
use crate::harness::wire::{self, Conn};

pub fn run(ctx: Ctx) {
    appends(ctx, false);
}

/// Appends until one is acknowledged (or the count or time is up); whether one was.
pub fn run_until_ok(ctx: Ctx) -> bool {
    appends(ctx, true)
}

fn appends(ctx: Ctx, stop_at_first_ok: bool) -> bool {
    let mut conn: Option<Conn> = None;
    for i in 0..ctx.max_ops {
        if !ctx.running() {
            break;
        }
        let msgid = format!("a{i}-{}@jepsen.test", ctx.run_id);
        let inv = ctx.invoke(F::Append).msgid(&msgid);
        ctx.rec.record(inv.clone());
        let mut sent = false;
        let result = (|| -> anyhow::Result<(Option<u32>, String)> {
            if conn.is_none() {
                conn = Some(Conn::imap_login(ctx.addr, USER, PASS, IO_TIMEOUT)?);
            }
            let c = conn
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            sent = true;
            let t = c.append("INBOX", &wire::message(&msgid))?;
            Ok((c.node, t))
        })();
        let done = match result {
            Ok((node, t)) if t.starts_with("OK") => match imap_parse::appenduid(&t) {
                Some((v, u)) => {
                    let mut d = ctx.complete(&inv, Kind::Ok, node, None);
                    d.uidvalidity = Some(v);
                    d.uid = Some(u);
                    ctx.lock_targets().push(Target {
                        msgid: msgid.clone(),
                        uidvalidity: v,
                        uid: u,
                    });
                    d
                }
                None => ctx.complete(&inv, Kind::Ok, node, Some(format!("no APPENDUID: {t}"))),
            },
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
        let acked = done.kind == Kind::Ok;
        ctx.rec.record(done);
        if acked && stop_at_first_ok {
            return true;
        }
        ctx.sleep(ctx.pace);
    }
    false
}
