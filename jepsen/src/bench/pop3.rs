//! The POP3 workload: sessions of USER/PASS, STAT, RETR of every message, DELE of some
//! (`--pop3-dele-pct`), QUIT, on random users, one after another.

use super::parse;
use super::Ctx;
use crate::aconn::Conn;
use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;

/// Client `i` takes only users whose number is `i` modulo the clients (when there are at least
/// as many users as clients): two sessions of one user would race each other's DELE and QUIT
/// (`-ERR Message expunged`), which is the load's doing, not the server's.
pub async fn client(ctx: &Ctx, i: usize, mut rng: StdRng) {
    let (lo, hi) = (ctx.args.users.0, ctx.args.users.1);
    let clients = ctx.args.clients as u32;
    let mine: Vec<u32> = (lo..=hi)
        .filter(|n| hi - lo + 1 < clients || (n - lo) % clients == i as u32 % clients)
        .collect();
    while !ctx.rec.stopped() {
        let user = ctx.user(mine[rng.gen_range(0..mine.len())]);
        if session(ctx, &user, &mut rng).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A command's status line: Ok(Ok(line)) on +OK, Ok(Err(line)) on -ERR.
async fn command(c: &mut Conn, cmd: &str) -> Result<Result<String, String>> {
    c.send(cmd).await?;
    status(c).await
}

async fn status(c: &mut Conn) -> Result<Result<String, String>> {
    let l = String::from_utf8_lossy(&c.line_bytes().await?).into_owned();
    match parse::pop3_ok(&l) {
        Some(true) => Ok(Ok(l)),
        Some(false) => Ok(Err(l)),
        None => bail!("not a POP3 status line: {l:?}"),
    }
}

/// The rest of a multi-line reply; its size in bytes (dot-stuffing removed).
async fn data(c: &mut Conn) -> Result<u64> {
    let mut n = 0u64;
    loop {
        let l = c.line_bytes().await?;
        match parse::pop3_data(&l) {
            Some(d) => n += d.len() as u64 + 2,
            None => return Ok(n),
        }
    }
}

async fn session(ctx: &Ctx, user: &str, rng: &mut StdRng) -> Option<()> {
    if !ctx.rec.claim() {
        return Some(());
    }
    let mut c = ctx
        .timed("connect", async {
            let mut c = ctx.connect().await?;
            Ok(status(&mut c).await?.map(|_| c))
        })
        .await?
        .ok()?;
    if !ctx.rec.claim() {
        return Some(());
    }
    ctx.timed("login", async {
        if let Err(e) = command(&mut c, &format!("USER {user}")).await? {
            return Ok(Err(e));
        }
        command(&mut c, &format!("PASS {}", ctx.args.password)).await
    })
    .await?
    .ok()?;
    if !ctx.rec.claim() {
        return Some(());
    }
    let stat = ctx.timed("stat", command(&mut c, "STAT")).await?.ok()?;
    let Some((count, _)) = parse::pop3_stat(&stat) else {
        ctx.rec.err(
            "stat",
            Duration::ZERO,
            format!("unreadable STAT reply {stat:?}"),
        );
        return None;
    };
    for n in 1..=count {
        if !ctx.rec.claim() {
            break;
        }
        let _ = ctx
            .timed("retr", async {
                Ok(match command(&mut c, &format!("RETR {n}")).await? {
                    Ok(_) => {
                        data(&mut c).await?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                })
            })
            .await?;
        if rng.gen_range(0..100) < ctx.args.pop3_dele_pct && ctx.rec.claim() {
            let _ = ctx
                .timed("dele", command(&mut c, &format!("DELE {n}")))
                .await?;
        }
    }
    // QUIT commits the deletions: timed while the run goes on.
    if ctx.rec.claim() {
        ctx.timed("quit", command(&mut c, "QUIT")).await?.ok()?;
    } else {
        let _ = command(&mut c, "QUIT").await;
    }
    Some(())
}
