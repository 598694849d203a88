//! The IMAP workloads: mixed sessions (as a desktop client on new mail), APPEND only, LOGIN
//! and LOGOUT only, idling connections, and the queries of one large mailbox.

use super::parse::{self, ImapReply, Status};
use super::{Ctx, Workload, MAX_LITERAL};
use crate::aconn::Conn;
use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The headers Thunderbird asks for when it lists new mail (Apple Mail's list is a subset).
pub const NEW_MAIL_FETCH: &str = "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc \
    Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To \
    Content-Type Reply-To)])";
/// What a desktop client fetches to list a whole folder.
pub const LIST_FETCH: &str =
    "FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])";

/// One IMAP connection.
pub struct Session {
    c: Conn,
    tag: u32,
}

/// A tagged OK, or the status and text as the error.
fn checked(r: ImapReply) -> Result<ImapReply, String> {
    if r.status == Status::Ok {
        Ok(r)
    } else {
        Err(format!("{:?} {}", r.status, r.text))
    }
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Session {
    /// Connects and reads the greeting.
    pub async fn open(ctx: &Ctx) -> Result<Session> {
        let mut c = ctx.connect().await?;
        let g = c.line_bytes().await?;
        if !g.starts_with(b"* OK") {
            bail!("greeting {:?}", String::from_utf8_lossy(&g));
        }
        Ok(Session { c, tag: 0 })
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    pub async fn cmd(&mut self, cmd: &str) -> Result<ImapReply> {
        let tag = self.next_tag();
        self.c.send(&format!("{tag} {cmd}")).await?;
        self.c.imap_reply(&tag, MAX_LITERAL).await
    }

    /// APPEND with a synchronising literal (every server has them).
    pub async fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<ImapReply> {
        let tag = self.next_tag();
        self.c
            .send(&format!(
                "{tag} APPEND {mailbox} (\\Seen) {{{}}}",
                msg.len()
            ))
            .await?;
        loop {
            let l = self.c.line_bytes().await?;
            if l.starts_with(b"+") {
                break;
            }
            let text = String::from_utf8_lossy(&l);
            if let Some((status, rest)) = parse::tagged(&text, &tag) {
                return Ok(ImapReply {
                    status,
                    text: rest.to_string(),
                    ..ImapReply::default()
                });
            }
        }
        self.c.send_raw(msg).await?;
        self.c.send_raw(b"\r\n").await?;
        self.c.imap_reply(&tag, MAX_LITERAL).await
    }

    async fn login(&mut self, ctx: &Ctx, user: &str) -> Result<Result<ImapReply, String>> {
        let cmd = format!("LOGIN {} {}", quoted(user), quoted(&ctx.args.password));
        Ok(checked(self.cmd(&cmd).await?))
    }

    /// LOGOUT: `* BYE`, then the tagged OK.
    async fn logout(&mut self) -> Result<Result<ImapReply, String>> {
        let r = self.cmd("LOGOUT").await?;
        if !r.untagged.iter().any(|l| l.starts_with("* BYE")) {
            return Ok(Err("LOGOUT without * BYE".into()));
        }
        Ok(checked(r))
    }
}

/// Mixed, APPEND-only and LOGIN-only sessions, one after another until the run stops.
pub async fn client(ctx: &Ctx, _i: usize, mut rng: StdRng) {
    while !ctx.rec.stopped() {
        if session(ctx, &mut rng).await.is_none() {
            // A broken session: do not spin on a server that refuses connections.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One session; None when it broke.
async fn session(ctx: &Ctx, rng: &mut StdRng) -> Option<()> {
    if !ctx.rec.claim() {
        return Some(());
    }
    let user = ctx.random_user(rng);
    let mut s = ctx
        .timed("connect", async { Ok(Ok(Session::open(ctx).await?)) })
        .await?
        .ok()?;
    if !ctx.rec.claim() {
        return Some(());
    }
    ctx.timed("login", s.login(ctx, &user)).await?.ok()?;
    if ctx.args.workload != Workload::Login {
        if !ctx.rec.claim() {
            return Some(());
        }
        let sel = ctx.timed("select", async {
            Ok(checked(s.cmd("SELECT INBOX").await?))
        });
        let mut m = Mailbox {
            exists: parse::track_exists(&sel.await?.ok()?.untagged, 0),
            uids: BTreeSet::new(),
        };
        if ctx.args.workload == Workload::Imap && m.exists > 0 && ctx.rec.claim() {
            m.fetch_new(ctx, &mut s).await?;
        }
        for _ in 0..ctx.args.ops_per_session {
            if !ctx.rec.claim() {
                break;
            }
            m.one(ctx, &mut s, rng).await?;
        }
    }
    // LOGOUT is recorded only while the run goes on; after it the session still ends cleanly.
    if ctx.rec.claim() {
        ctx.timed("logout", s.logout()).await?.ok()?;
    } else {
        let _ = s.logout().await;
    }
    Some(())
}

/// What one session knows of its INBOX.
struct Mailbox {
    exists: u32,
    /// UIDs seen in FETCH replies and APPENDUID.
    uids: BTreeSet<u32>,
}

impl Mailbox {
    fn saw(&mut self, r: &ImapReply) {
        self.exists = parse::track_exists(&r.untagged, self.exists);
        self.uids
            .extend(r.untagged.iter().filter_map(|l| parse::fetch_uid(l)));
    }

    fn random_uid(&self, rng: &mut StdRng) -> Option<u32> {
        let n = self.uids.len();
        (n > 0).then(|| self.uids.iter().nth(rng.gen_range(0..n)).copied())?
    }

    /// The ten newest messages' list headers, as a client fetches on new mail.
    async fn fetch_new(&mut self, ctx: &Ctx, s: &mut Session) -> Option<()> {
        let lo = self.exists.saturating_sub(9).max(1);
        let cmd = format!("FETCH {lo}:* {NEW_MAIL_FETCH}");
        let r = ctx
            .timed("fetch", async { Ok(checked(s.cmd(&cmd).await?)) })
            .await?;
        if let Ok(r) = r {
            self.saw(&r);
        }
        Some(())
    }

    /// One command of the mix (an APPEND in an APPEND-only run).
    async fn one(&mut self, ctx: &Ctx, s: &mut Session, rng: &mut StdRng) -> Option<()> {
        let m = &ctx.args.mix;
        let pick = if ctx.args.workload == Workload::Append {
            4
        } else {
            let total = m.fetch + m.body + m.store + m.expunge + m.append;
            let mut x = rng.gen_range(0..total);
            let mut which = 0;
            for (i, w) in [m.fetch, m.body, m.store, m.expunge, m.append]
                .into_iter()
                .enumerate()
            {
                if x < w {
                    which = i;
                    break;
                }
                x -= w;
            }
            which
        };
        let uid = self.random_uid(rng);
        match (pick, uid) {
            (0, _) | (1..=3, None) if self.exists > 0 => self.fetch_new(ctx, s).await,
            (1, Some(uid)) => {
                let cmd = format!("UID FETCH {uid} (UID BODY.PEEK[])");
                let r = ctx.timed("body", async { Ok(checked(s.cmd(&cmd).await?)) });
                if let Ok(r) = r.await? {
                    self.saw(&r);
                }
                Some(())
            }
            (2, Some(uid)) => {
                let flags = [
                    "+FLAGS (\\Seen $Work)",
                    "-FLAGS ($Work)",
                    "+FLAGS (\\Flagged)",
                ];
                let cmd = format!("UID STORE {uid} {}", flags[rng.gen_range(0..flags.len())]);
                let r = ctx.timed("store", async { Ok(checked(s.cmd(&cmd).await?)) });
                if let Ok(r) = r.await? {
                    self.saw(&r);
                }
                Some(())
            }
            (3, Some(uid)) => {
                let cmd = format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)");
                let r = ctx.timed("store", async { Ok(checked(s.cmd(&cmd).await?)) });
                if r.await?.is_ok() && ctx.rec.claim() {
                    let r = ctx.timed("expunge", async { Ok(checked(s.cmd("EXPUNGE").await?)) });
                    if let Ok(r) = r.await? {
                        self.saw(&r);
                        self.uids.remove(&uid);
                    }
                }
                Some(())
            }
            _ => {
                let id = format!("a{}-{}", ctx.args.seed, rng.gen::<u64>());
                let size = ctx.gen.size(rng);
                let msg = ctx.gen.message(rng, "inbox@example.org", &id, size);
                let r = ctx.timed("append", async {
                    Ok(checked(s.append("INBOX", &msg).await?))
                });
                if let Ok(r) = r.await? {
                    self.saw(&r);
                    if let Some((_, uid)) = crate::harness::imap_parse::appenduid(&r.text) {
                        self.uids.insert(uid);
                    }
                }
                Some(())
            }
        }
    }
}

/// One connection that logs in, SELECTs and IDLEs until the run stops, then DONE and LOGOUT.
pub async fn idle(ctx: &Ctx, i: usize) {
    let settled = || ctx.settled.fetch_add(1, Ordering::AcqRel);
    let (lo, hi) = (ctx.args.users.0, ctx.args.users.1);
    let user = ctx.user(lo + (i as u32) % (hi - lo + 1));
    let s = {
        let Ok(_slot) = ctx.login_slots.acquire().await else {
            settled();
            return;
        };
        idle_start(ctx, &user).await
    };
    settled();
    let Some(mut s) = s else { return };
    // Read while idling (a server may send `* OK Still here`); stop when the run does.
    while !ctx.rec.stopped() {
        match tokio::time::timeout(Duration::from_millis(200), s.c.line_bytes()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                ctx.rec.err("idle", Duration::ZERO, format!("{e:#}"));
                return;
            }
        }
    }
    let tag = format!("b{}", s.tag);
    let _ = ctx
        .timed("done", async {
            s.c.send("DONE").await?;
            Ok(checked(s.c.imap_reply(&tag, MAX_LITERAL).await?))
        })
        .await;
    let _ = s.logout().await;
}

async fn idle_start(ctx: &Ctx, user: &str) -> Option<Session> {
    let mut s = ctx
        .timed("connect", async { Ok(Ok(Session::open(ctx).await?)) })
        .await?
        .ok()?;
    ctx.timed("login", s.login(ctx, user)).await?.ok()?;
    ctx.timed("select", async {
        Ok(checked(s.cmd("SELECT INBOX").await?))
    })
    .await?
    .ok()?;
    let tag = s.next_tag();
    ctx.timed("idle", async {
        s.c.send(&format!("{tag} IDLE")).await?;
        loop {
            let l = s.c.line_bytes().await?;
            if l.starts_with(b"+") {
                return Ok(Ok(()));
            }
            if l.starts_with(tag.as_bytes()) {
                return Ok(Err(String::from_utf8_lossy(&l).into_owned()));
            }
        }
    })
    .await?
    .ok()?;
    Some(s)
}

/// The queries of the large-mailbox workload, in the order they run: (name, command). `{w}` is
/// a word of subjects and bodies, `{n}` a sender's name, `{i}` a number.
pub const LARGE_QUERIES: &[(&str, &str)] = &[
    ("select", "SELECT INBOX"),
    ("fetch_list", LIST_FETCH),
    ("search_subject", "UID SEARCH SUBJECT {w}"),
    ("search_from", "UID SEARCH FROM {n}"),
    ("search_header", "UID SEARCH HEADER Message-ID {i}@bench"),
    ("search_body", "UID SEARCH BODY {w}"),
    ("sort_date", "UID SORT (DATE) UTF-8 ALL"),
    ("sort_subject", "UID SORT (SUBJECT) UTF-8 ALL"),
];

/// One session on the first user of the range running [`LARGE_QUERIES`] in turn.
pub async fn large(ctx: &Ctx, mut rng: StdRng) {
    while !ctx.rec.stopped() {
        if large_session(ctx, &mut rng).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn large_session(ctx: &Ctx, rng: &mut StdRng) -> Option<()> {
    use super::message::{NAMES, WORDS};
    if !ctx.rec.claim() {
        return Some(());
    }
    let mut s = ctx
        .timed("connect", async { Ok(Ok(Session::open(ctx).await?)) })
        .await?
        .ok()?;
    ctx.timed("login", s.login(ctx, &ctx.user(ctx.args.users.0)))
        .await?
        .ok()?;
    let mut exists = None;
    while !ctx.rec.stopped() {
        for (name, template) in LARGE_QUERIES {
            if !ctx.rec.claim() {
                break;
            }
            let cmd = template
                .replace("{w}", WORDS[rng.gen_range(0..40)])
                .replace("{n}", NAMES[rng.gen_range(0..NAMES.len())])
                .replace("{i}", &rng.gen_range(0..100_000).to_string());
            let r = ctx
                .timed(name, async {
                    let r = match checked(s.cmd(&cmd).await?) {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(e)),
                    };
                    if *name == "select" {
                        exists = Some(parse::track_exists(&r.untagged, 0));
                    }
                    Ok(check_large(name, &r, exists))
                })
                .await?;
            if r.is_err() && *name == "select" {
                return None;
            }
        }
    }
    let _ = s.logout().await;
    Some(())
}

/// What a large-mailbox answer must hold: FETCH 1:* a line per message, SEARCH and SORT
/// their untagged answer.
fn check_large(name: &str, r: &ImapReply, exists: Option<u32>) -> Result<(), String> {
    let count = |kw: &str| {
        r.untagged
            .iter()
            .filter_map(|l| parse::numbers_after(l, kw))
            .count()
    };
    match name {
        "fetch_list" => {
            let n = r
                .untagged
                .iter()
                .filter(|l| parse::fetch_uid(l).is_some())
                .count();
            match exists {
                Some(e) if n as u32 != e => Err(format!("FETCH 1:* gave {n} of {e} messages")),
                _ => Ok(()),
            }
        }
        n if n.starts_with("search") && count("SEARCH") != 1 => Err("no * SEARCH".into()),
        n if n.starts_with("sort") && count("SORT") != 1 => Err("no * SORT".into()),
        _ => Ok(()),
    }
}
