//! LMTP deliveries with unique Message-IDs. A delivery whose outcome is unknown is retried
//! with the same Message-ID, as an MTA would: the server must not store it twice.

use super::{Ctx, IO_TIMEOUT};
use crate::harness::history::{Kind, F};
use crate::harness::lab::RCPT;
use crate::harness::wire::{self, Delivery};

const RETRIES: usize = 3;

pub fn run(ctx: Ctx) {
    for i in 0..ctx.max_ops {
        if !ctx.running() {
            break;
        }
        let msgid = format!("d{i}-{}@jepsen.test", ctx.run_id);
        let msg = wire::message(&msgid);
        for _attempt in 0..RETRIES {
            let inv = ctx.invoke(F::Deliver).msgid(&msgid);
            ctx.rec.record(inv.clone());
            let mut sent = false;
            let done = match wire::lmtp_deliver(ctx.lmtp, RCPT, &msg, IO_TIMEOUT, &mut sent) {
                Ok(Delivery::Ok(node)) => ctx.complete(&inv, Kind::Ok, node, None),
                Ok(Delivery::Refused(r)) => ctx.complete(&inv, Kind::Fail, None, Some(r)),
                Err(e) => ctx.complete(
                    &inv,
                    super::kind_of_error(sent),
                    None,
                    Some(format!("{e:#}")),
                ),
            };
            let unknown = done.kind == Kind::Info;
            ctx.rec.record(done);
            ctx.sleep(ctx.pace);
            if !unknown || !ctx.running() {
                break;
            }
        }
    }
}
