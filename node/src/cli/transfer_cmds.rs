//! `node import`, `node export` (doveadm import/backup for people leaving Dovecot, and back)
//! and `node acl`. They go through the running server's admin socket when it runs, or open
//! the store themselves (see `admin_cmds::Target`).

use super::admin_cmds::{Target, EX_NOUSER};
use super::{AclCmd, ExportFormat};
use crate::admin::transfer::{AclOp, ExportPage, WireMessage};
use crate::admin::{MailboxStatus, Request, IMPORT_BATCH_BYTES};
use crate::config::Config;
use crate::migrate::maildir_names as names;
use crate::migrate::source::{self, Format};
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Messages per import request, at most.
const BATCH_MESSAGES: usize = 500;

/// Test hook: stop (as if killed) once this many messages are imported, to test resuming.
pub(super) const STOP_AFTER_ENV: &str = "NODE_TEST_IMPORT_STOP_AFTER";

/// The user as the userdb knows it; Err(exit code) after saying why when it does not.
pub(super) fn known_user(t: &mut Target, config: &Config, user: &str) -> Result<String, i32> {
    match t.call(config, &Request::UserLookup { user: user.into() }) {
        Ok(v) => Ok(v["user"].as_str().unwrap_or(user).to_string()),
        Err(e) => {
            let text = format!("{e:#}");
            if text.contains("doesn't exist") {
                eprintln!(
                    "User {user} doesn't exist in the userdb (`node user '*'` lists the users); \
                     nothing was done"
                );
                Err(EX_NOUSER)
            } else {
                eprintln!("node: {text}");
                Err(1)
            }
        }
    }
}

pub(super) fn progress(total: u64, json: bool, what: &str) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} messages {msg} ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// `maildir:PATH` / `mbox:PATH` (doveadm's mail locations) name the format too.
fn location(path: &str, format: Option<Format>) -> (Format, PathBuf) {
    if let Some(p) = path.strip_prefix("maildir:") {
        return (Format::Maildir, PathBuf::from(p));
    }
    if let Some(p) = path.strip_prefix("mbox:") {
        return (Format::Mbox, PathBuf::from(p));
    }
    (format.unwrap_or(Format::Maildir), PathBuf::from(path))
}

#[derive(serde::Serialize, Default)]
pub(super) struct MailboxReport {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub imported: u32,
    pub present: u32,
    pub refused: Vec<u32>,
}

/// `node import imap://...`'s options (see `imap_import`).
#[derive(clap::Args, Debug, Default)]
pub struct ImapArgs {
    /// A file whose first line is the remote password (else NODE_IMPORT_PASSWORD).
    #[arg(long = "password-file")]
    pub password_file: Option<PathBuf>,
    /// Log in as this master user on behalf of the URL's user (AUTHENTICATE PLAIN with an
    /// authorization identity); the password is the master user's.
    #[arg(long = "master-user")]
    pub master_user: Option<String>,
    /// Accept any TLS certificate (an old server with a self-signed one).
    #[arg(long)]
    pub insecure: bool,
    /// Verify the server's certificate against these CA certificates (PEM) instead of the
    /// system's.
    #[arg(long = "ca-file")]
    pub ca_file: Option<PathBuf>,
}

pub struct ImportArgs<'a> {
    pub user: Option<&'a str>,
    pub all: bool,
    pub format: Option<Format>,
    pub mailbox: Option<&'a str>,
    pub imap: ImapArgs,
    pub path: &'a str,
}

pub fn import(config: &Config, a: ImportArgs<'_>, json: bool) -> anyhow::Result<i32> {
    if a.path.starts_with("imap://") || a.path.starts_with("imaps://") {
        if a.all {
            eprintln!("node import: -A reads a mail root; an imap:// URL is one user's (give -u USER or none)");
            return Ok(64);
        }
        return super::imap_import::import(config, a.user, a.path, &a.imap, json);
    }
    let (format, path) = location(a.path, a.format);
    if a.all {
        return import_all(config, format, &path, json);
    }
    let Some(user) = a.user else {
        eprintln!("node import: give -u USER (or -A for a whole mail root)");
        return Ok(64);
    };
    let src = match source::read(&path, format, a.mailbox) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("node import: {e}");
            return Ok(1);
        }
    };
    let mut t = Target::open(config)?;
    let user = match known_user(&mut t, config, user) {
        Ok(u) => u,
        Err(code) => return Ok(code),
    };
    let (reports, failed) = import_user(&mut t, config, &user, &src, json)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_reports("", &reports);
    }
    Ok(i32::from(failed))
}

pub(super) fn print_reports(prefix: &str, reports: &[MailboxReport]) {
    for r in reports {
        outln!(
            "{prefix}{}: {} imported, {} already present, {} refused (UIDVALIDITY {})",
            r.mailbox,
            r.imported,
            r.present,
            r.refused.len(),
            r.uidvalidity
        );
    }
}

/// `node import -A ROOT`: a whole mail root, one directory per user (`ROOT/USER/Maildir`,
/// else `ROOT/USER` itself), as Dovecot's `mail_location = maildir:/var/vmail/%u/Maildir`
/// lays it out. A directory whose name the userdb does not know is skipped (and fails the
/// run): nothing is created for it.
fn import_all(config: &Config, format: Format, root: &Path, json: bool) -> anyhow::Result<i32> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) => {
            eprintln!(
                "node import: {}: {e} (give the mail root: one directory per user)",
                root.display()
            );
            return Ok(1);
        }
    };
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    let mut t = Target::open(config)?;
    let mut failed = 0;
    let mut out = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let user = match known_user(&mut t, config, &name) {
            Ok(u) => u,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        let path = if dir.join("Maildir").is_dir() {
            dir.join("Maildir")
        } else {
            dir.clone()
        };
        let src = match source::read(&path, format, None) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("node import: {user}: {e}");
                failed += 1;
                continue;
            }
        };
        let (reports, bad) = import_user(&mut t, config, &user, &src, json)?;
        failed += usize::from(bad);
        if json {
            out.push(serde_json::json!({ "user": user, "mailboxes": reports }));
        } else {
            print_reports(&format!("{user} "), &reports);
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    if failed > 0 {
        eprintln!("node import: {failed} of {} users failed", dirs.len());
        return Ok(1);
    }
    Ok(0)
}

/// Imports one user's source; the per-mailbox reports and whether anything failed.
fn import_user(
    t: &mut Target,
    config: &Config,
    user: &str,
    src: &source::Source,
    json: bool,
) -> anyhow::Result<(Vec<MailboxReport>, bool)> {
    let user = user.to_string();
    for w in &src.warnings {
        eprintln!("node import: warning: {w}");
    }
    let stop_after: Option<u64> = std::env::var(STOP_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let total: u64 = src.mailboxes.iter().map(|m| m.messages.len() as u64).sum();
    let bar = progress(total, json, &format!("import {user}"));
    let mut done = 0u64;
    let mut reports = Vec::new();
    let mut failed = false;
    for mb in &src.mailboxes {
        bar.set_message(mb.name.clone());
        let mut rep = MailboxReport {
            mailbox: mb.name.clone(),
            uidvalidity: mb.uidvalidity,
            ..MailboxReport::default()
        };
        let mut i = 0;
        // One request even for an empty mailbox: it creates it with its UIDVALIDITY.
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(m) = mb.messages.get(i) {
                if batch.len() >= BATCH_MESSAGES
                    || (!batch.is_empty() && bytes + m.size() as usize > IMPORT_BATCH_BYTES)
                    || stop_after.is_some_and(|n| done + batch.len() as u64 >= n)
                {
                    break;
                }
                let raw = crate::migrate::to_crlf(
                    &m.read()
                        .with_context(|| format!("reading UID {} of {}", m.uid, mb.name))?,
                );
                bytes += raw.len();
                batch.push(WireMessage::new(m.uid, m.flags.clone(), m.date, 0, &raw));
                i += 1;
            }
            let n = batch.len() as u64;
            let req = Request::Import {
                user: user.clone(),
                mailbox: mb.name.clone(),
                uidvalidity: mb.uidvalidity,
                messages: batch,
            };
            match t.call(config, &req) {
                Ok(v) => {
                    let o: storage::ImportOutcome = serde_json::from_value(v)?;
                    rep.imported += o.imported;
                    rep.present += o.present;
                    rep.refused.extend(o.refused);
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("node import: {}: {e:#}", mb.name));
                    failed = true;
                    break;
                }
            }
            done += n;
            bar.inc(n);
            if stop_after.is_some_and(|s| done >= s) {
                bar.abandon();
                eprintln!("node import: stopped after {done} messages ({STOP_AFTER_ENV})");
                std::process::exit(137);
            }
            if i >= mb.messages.len() {
                break;
            }
        }
        if !rep.refused.is_empty() {
            failed = true;
            bar.suspend(|| {
                eprintln!(
                    "node import: {}: UIDs {:?} are below the mailbox's UIDNEXT and held by \
                     no message or another one: not imported (a UID is never reused; import \
                     into a new user or mailbox to keep them)",
                    mb.name, rep.refused
                )
            });
        }
        reports.push(rep);
    }
    bar.finish_and_clear();
    let subscribe: Vec<String> = src.subscriptions.clone();
    if !subscribe.is_empty() {
        let req = Request::MailboxSubscribe {
            user: user.clone(),
            mailboxes: subscribe,
            on: true,
        };
        if let Err(e) = t.call(config, &req) {
            eprintln!("node import: subscriptions: {e:#}");
            failed = true;
        }
    }
    Ok((reports, failed))
}

/// Page size of export requests.
const EXPORT_PAGE_BYTES: u64 = 8 << 20;

/// Where a mailbox's mbox file goes: `A/B` in `A.sbd/B`, as Thunderbird keeps children
/// beside their parent's file (a name cannot be both a file and a directory).
fn mbox_path(root: &Path, mailbox: &str) -> PathBuf {
    let parts: Vec<&str> = mailbox.split('/').collect();
    let mut p = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            p.push(format!("{part}.sbd"));
        } else {
            p.push(part);
        }
    }
    p
}

pub fn export(
    config: &Config,
    user: &str,
    format: ExportFormat,
    path: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    let mbox = matches!(format, ExportFormat::Mbox);
    if let Ok(mut rd) = std::fs::read_dir(path) {
        if rd.next().is_some() {
            eprintln!(
                "node export: {} is not empty: export into a new or empty directory",
                path.display()
            );
            return Ok(1);
        }
    } else if path.exists() {
        eprintln!(
            "node export: {} exists and is not a directory",
            path.display()
        );
        return Ok(1);
    }
    let mut t = Target::open(config)?;
    let user = match known_user(&mut t, config, user) {
        Ok(u) => u,
        Err(code) => return Ok(code),
    };
    let boxes: Vec<MailboxStatus> = serde_json::from_value(t.call(
        config,
        &Request::MailboxStatus {
            user: user.clone(),
            mailbox: None,
        },
    )?)?;
    let total: u64 = boxes.iter().map(|b| b.messages as u64).sum();
    let bar = progress(total, json, "export");
    let mut subscriptions = Vec::new();
    let mut reports = Vec::new();
    for b in &boxes {
        bar.set_message(b.mailbox.clone());
        if !mbox && b.mailbox.contains('.') {
            // Maildir++ separates levels with '.': Dovecot (and `node import`) read it back
            // as a child mailbox.
            bar.suspend(|| {
                eprintln!(
                    "node export: warning: {}: a '.' in a Maildir++ folder name reads back \
                     as a level separator ({})",
                    b.mailbox,
                    b.mailbox.replace('.', "/")
                )
            });
        }
        let dir = match names::mailbox_to_folder(&b.mailbox) {
            None => path.to_path_buf(),
            Some(f) => path.join(f),
        };
        let mut mbox_file = None;
        if mbox {
            let file = mbox_path(path, &b.mailbox);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let f = std::fs::File::create(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            mbox_file = Some(std::io::BufWriter::new(f));
        } else {
            for s in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(dir.join(s))
                    .with_context(|| format!("creating {}", dir.join(s).display()))?;
            }
        }
        let mut keywords: Vec<String> = Vec::new();
        let mut entries = Vec::new();
        let mut after = 0u32;
        let mut first: Option<ExportPage> = None;
        let mut dropped = 0usize;
        loop {
            let page: ExportPage = serde_json::from_value(t.call(
                config,
                &Request::Export {
                    user: user.clone(),
                    mailbox: b.mailbox.clone(),
                    after,
                    max_bytes: EXPORT_PAGE_BYTES,
                },
            )?)?;
            for m in &page.messages {
                let raw = m.bytes().map_err(|e| anyhow::anyhow!(e))?;
                if let Some(out) = mbox_file.as_mut() {
                    use std::io::Write as _;
                    let base = (entries.is_empty()).then_some((page.uidvalidity, page.uidnext));
                    out.write_all(&crate::migrate::mbox_parse::write_message(
                        m.uid, &m.flags, m.date, &raw, base,
                    ))?;
                    entries.push((m.uid, String::new()));
                    bar.inc(1);
                    continue;
                }
                let (mut system, mut letters): (Vec<String>, Vec<u8>) = (Vec::new(), Vec::new());
                for f in &m.flags {
                    if f.starts_with('\\') || f == "$Forwarded" {
                        system.push(f.clone());
                        continue;
                    }
                    let i = match keywords.iter().position(|k| k == f) {
                        Some(i) => i,
                        None if keywords.len() < names::MAX_KEYWORDS => {
                            keywords.push(f.clone());
                            keywords.len() - 1
                        }
                        None => {
                            dropped += 1;
                            continue;
                        }
                    };
                    letters.push(i as u8);
                }
                let base = format!(
                    "{}.M{}V{}.export,S={}",
                    m.date.max(0),
                    m.uid,
                    page.uidvalidity,
                    raw.len()
                );
                let tmp = dir.join("tmp").join(&base);
                let file = dir
                    .join("cur")
                    .join(format!("{base}{}", names::info_part(&system, &letters)));
                std::fs::write(&tmp, &raw).with_context(|| format!("writing {}", tmp.display()))?;
                let when =
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.date.max(0) as u64);
                std::fs::File::options()
                    .write(true)
                    .open(&tmp)
                    .and_then(|f| f.set_modified(when))
                    .with_context(|| format!("setting the date of {}", tmp.display()))?;
                std::fs::rename(&tmp, &file)
                    .with_context(|| format!("moving {} into cur/", tmp.display()))?;
                entries.push((m.uid, base));
                bar.inc(1);
            }
            after = page.messages.last().map_or(after, |m| m.uid);
            let more = page.more;
            if first.is_none() {
                first = Some(page);
            }
            if !more {
                break;
            }
        }
        if let Some(mut out) = mbox_file {
            use std::io::Write as _;
            out.flush()?;
        }
        let Some(page) = first else { continue };
        if dropped > 0 {
            bar.suspend(|| {
                eprintln!(
                    "node export: {}: {dropped} keyword flags left out: a Maildir holds 26 \
                     keywords per folder",
                    b.mailbox
                )
            });
        }
        let list = names::UidList {
            uidvalidity: page.uidvalidity,
            next_uid: page.uidnext,
            guid: Some(page.guid.clone()),
            entries,
        };
        if !mbox {
            std::fs::write(dir.join("dovecot-uidlist"), names::write_uidlist(&list))?;
        }
        if !mbox && !keywords.is_empty() {
            std::fs::write(
                dir.join("dovecot-keywords"),
                names::write_keywords(&keywords),
            )?;
        }
        if page.subscribed {
            subscriptions.push(b.mailbox.clone());
        }
        reports.push(serde_json::json!({
            "mailbox": b.mailbox,
            "uidvalidity": page.uidvalidity,
            "messages": list.entries.len(),
            "keywords_left_out": dropped,
        }));
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(path)?;
    if !mbox {
        std::fs::write(
            path.join("subscriptions"),
            names::write_subscriptions(&subscriptions),
        )?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            outln!(
                "{}: {} messages (UIDVALIDITY {})",
                r["mailbox"].as_str().unwrap_or(""),
                r["messages"],
                r["uidvalidity"]
            );
        }
    }
    Ok(0)
}

/// doveadm acl's right names, as letters.
const RIGHT_NAMES: [(&str, char); 11] = [
    ("lookup", 'l'),
    ("read", 'r'),
    ("write-seen", 's'),
    ("write", 'w'),
    ("insert", 'i'),
    ("post", 'p'),
    ("create", 'k'),
    ("delete", 'x'),
    ("write-deleted", 't'),
    ("expunge", 'e'),
    ("admin", 'a'),
];

/// `read write-seen` or `rs` (or a mix) to letters.
fn rights_letters(words: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for w in words {
        let w = w.trim_start_matches(['+', '-']);
        match RIGHT_NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)) {
            Some((_, c)) => out.push(*c),
            None if w.chars().all(|c| protocols::imap::acl::ALL.contains(c)) => out.push_str(w),
            None => {
                return Err(format!(
                    "{w}: not a right (lookup read write write-seen write-deleted insert post \
                     expunge create delete admin, or RFC 4314 letters {})",
                    protocols::imap::acl::ALL
                ))
            }
        }
    }
    Ok(out)
}

pub fn acl(config: &Config, what: AclCmd, json: bool) -> anyhow::Result<i32> {
    let (user, mailbox, op) = match what {
        AclCmd::Get { user, mailbox } => (user, mailbox, AclOp::Get),
        AclCmd::Set {
            user,
            mailbox,
            id,
            rights,
        } => (user, mailbox, set(id, "", &rights)?),
        AclCmd::Add {
            user,
            mailbox,
            id,
            rights,
        } => (user, mailbox, set(id, "+", &rights)?),
        AclCmd::Remove {
            user,
            mailbox,
            id,
            rights,
        } => (user, mailbox, set(id, "-", &rights)?),
        AclCmd::Delete { user, mailbox, id } => (user, mailbox, AclOp::Delete { id }),
        AclCmd::Rights { user, mailbox, id } => {
            let id = match id {
                Some(id) => {
                    crate::admin::transfer::acl_identifier(&id).map_err(|e| anyhow::anyhow!(e))?
                }
                None => user.clone(),
            };
            (user, mailbox, AclOp::Rights { id })
        }
    };
    let mut t = Target::open(config)?;
    let user = match known_user(&mut t, config, &user) {
        Ok(u) => u,
        Err(code) => return Ok(code),
    };
    let v = match t.call(
        config,
        &Request::Acl {
            user: user.clone(),
            mailbox: mailbox.clone(),
            op: op.clone(),
        },
    ) {
        Ok(v) => v,
        Err(e) => {
            let mut text = format!("{e:#}");
            if text.contains("does not exist") {
                text.push_str(&format!(" (`node mailbox list -u {user}` lists them)"));
            }
            eprintln!("node acl: {text}");
            return Ok(1);
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let names = |letters: &str| -> String {
        letters
            .chars()
            .filter_map(|c| RIGHT_NAMES.iter().find(|(_, l)| *l == c).map(|(n, _)| *n))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match op {
        AclOp::Get => {
            outln!("ID\tGlobal\tRights");
            for e in v.as_array().into_iter().flatten() {
                let r = e["rights"].as_str().unwrap_or("");
                let id = e["id"].as_str().unwrap_or("");
                let id = if id.starts_with("owner=") || is_special(id) {
                    id.to_string()
                } else {
                    match id.strip_prefix('-') {
                        Some(n) => format!("-user={n}"),
                        None => format!("user={id}"),
                    }
                };
                outln!("{id}\t\t{}", names(r));
            }
        }
        AclOp::Rights { .. } => outln!("{}", names(v["rights"].as_str().unwrap_or(""))),
        AclOp::Set { .. } | AclOp::Delete { .. } => {}
    }
    Ok(0)
}

fn is_special(id: &str) -> bool {
    matches!(id.trim_start_matches('-'), "anyone" | "authenticated")
}

fn set(id: String, sign: &str, rights: &[String]) -> anyhow::Result<AclOp> {
    let letters = rights_letters(rights).map_err(|e| anyhow::anyhow!(e))?;
    Ok(AclOp::Set {
        id,
        rights: format!("{sign}{letters}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_names_and_locations() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rights_letters(&w(&["lookup", "read", "write-seen"])).unwrap(),
            "lrs"
        );
        assert_eq!(rights_letters(&w(&["lr", "admin"])).unwrap(), "lra");
        assert!(rights_letters(&w(&["fly"])).is_err());
        assert_eq!(
            location("mbox:/x", None),
            (Format::Mbox, PathBuf::from("/x"))
        );
        assert_eq!(location("/y", None), (Format::Maildir, PathBuf::from("/y")));
        assert_eq!(location("/y", Some(Format::Mbox)).0, Format::Mbox);
    }
}
