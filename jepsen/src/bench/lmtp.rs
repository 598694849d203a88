//! The LMTP workload: each client holds one connection (as an MTA's delivery agent does) and
//! delivers generated messages, one recipient each, to random users.

use super::message::dot_stuffed;
use super::Ctx;
use crate::aconn::Conn;
use anyhow::Result;
use rand::rngs::StdRng;
use std::time::Duration;

pub async fn client(ctx: &Ctx, i: usize, mut rng: StdRng) {
    let mut k = 0u64;
    while !ctx.rec.stopped() {
        if connection(ctx, i, &mut k, &mut rng).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A reply that must have `code`: Ok(Err(line)) when it has another.
async fn expect(c: &mut Conn, code: u16) -> Result<Result<(), String>> {
    let (got, line) = c.smtp_any().await?;
    Ok(if got == code { Ok(()) } else { Err(line) })
}

/// One connection: greeting and LHLO, then deliveries until the run stops; None when broken.
async fn connection(ctx: &Ctx, i: usize, k: &mut u64, rng: &mut StdRng) -> Option<()> {
    // Connections are not counted against `--count`: it counts deliveries.
    if ctx.rec.stopped() {
        return Some(());
    }
    let mut c = ctx
        .timed("connect", async {
            let mut c = ctx.connect().await?;
            if let Err(e) = expect(&mut c, 220).await? {
                return Ok(Err(format!("greeting {e}")));
            }
            c.send("LHLO bench.example").await?;
            Ok(expect(&mut c, 250).await?.map(|()| c))
        })
        .await?
        .ok()?;
    while ctx.rec.claim() {
        *k += 1;
        let id = format!("l{}.{i}.{k}", ctx.args.seed);
        let rcpt = format!("{}@{}", ctx.random_user(rng), ctx.args.domain);
        let size = ctx.gen.size(rng);
        let msg = dot_stuffed(&ctx.gen.message(rng, &rcpt, &id, size));
        let _ = ctx
            .timed("deliver", async {
                c.send("MAIL FROM:<bench@example.com>").await?;
                if let Err(e) = expect(&mut c, 250).await? {
                    return Ok(Err(format!("MAIL FROM: {e}")));
                }
                c.send(&format!("RCPT TO:<{rcpt}>")).await?;
                if let Err(e) = expect(&mut c, 250).await? {
                    // The transaction is open: end it so the connection can go on.
                    c.send("RSET").await?;
                    expect(&mut c, 250).await?.ok();
                    return Ok(Err(format!("RCPT TO: {e}")));
                }
                c.send("DATA").await?;
                if let Err(e) = expect(&mut c, 354).await? {
                    return Ok(Err(format!("DATA: {e}")));
                }
                c.send_raw(&msg).await?;
                Ok(expect(&mut c, 250)
                    .await?
                    .map_err(|e| format!("after DATA: {e}")))
            })
            .await?;
    }
    let _ = c.send("QUIT").await;
    let _ = c.smtp_any().await;
    Some(())
}
