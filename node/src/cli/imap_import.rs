//! `node import [-u USER] imap://USER@HOST[:PORT]` (and imaps://): every mailbox of a remote
//! IMAP account, with its UIDs, UIDVALIDITY, flags, keywords and internal dates (time zone
//! kept), and its subscriptions, as `doveadm backup -R imapc:` does. Through the same import
//! request as a Maildir, so a rerun skips what is already present.

use super::admin_cmds::Target;
use super::transfer_cmds::{
    known_user, print_reports, progress, ImapArgs, MailboxReport, STOP_AFTER_ENV,
};
use crate::admin::transfer::WireMessage;
use crate::admin::{Request, IMPORT_BATCH_BYTES};
use crate::config::Config;
use crate::migrate::imapc::{self, Client, ImapUrl, Options};
use std::time::Duration;

/// UIDs per UID FETCH (and per import request, at most).
const FETCH_UIDS: usize = 200;

/// The environment variable with the remote password, when no --password-file.
const PASSWORD_ENV: &str = "NODE_IMPORT_PASSWORD";

fn password(a: &ImapArgs) -> Result<String, String> {
    if let Some(f) = &a.password_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("--password-file {}: {e}", f.display()))?;
        let line = text.lines().next().unwrap_or_default();
        if line.is_empty() {
            return Err(format!(
                "--password-file {}: the first line is empty",
                f.display()
            ));
        }
        return Ok(line.to_string());
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => Err(format!(
            "no password: give --password-file FILE or set {PASSWORD_ENV} (never on the \
             command line, where other users see it)"
        )),
    }
}

pub fn import(
    config: &Config,
    user: Option<&str>,
    url: &str,
    a: &ImapArgs,
    json: bool,
) -> anyhow::Result<i32> {
    let url = match ImapUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("node import: {e}");
            return Ok(64);
        }
    };
    let password = match password(a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("node import: {e}");
            return Ok(64);
        }
    };
    let mut t = Target::open(config)?;
    let local = match known_user(&mut t, config, user.unwrap_or(&url.user)) {
        Ok(u) => u,
        Err(code) => return Ok(code),
    };
    let shown = format!(
        "{}://{}@{}:{}",
        if url.tls { "imaps" } else { "imap" },
        url.user,
        url.host,
        url.port
    );
    let opts = Options {
        url,
        password,
        master_user: a.master_user.clone(),
        insecure: a.insecure,
        ca_file: a.ca_file.clone(),
        timeout: Duration::from_secs(120),
    };
    let mut client = match Client::connect(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("node import: {shown}: {e}");
            return Ok(1);
        }
    };
    let (reports, failed) = match import_account(&mut t, config, &local, &mut client, json) {
        Ok(r) => r,
        Err(Stop::Remote(e)) => {
            eprintln!("node import: {shown}: {e}; run the same command again to go on");
            return Ok(1);
        }
        Err(Stop::Local(e)) => return Err(e),
    };
    client.logout();
    if json {
        outln!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_reports("", &reports);
    }
    Ok(i32::from(failed))
}

enum Stop {
    Remote(imapc::ImapcError),
    Local(anyhow::Error),
}

impl From<imapc::ImapcError> for Stop {
    fn from(e: imapc::ImapcError) -> Stop {
        Stop::Remote(e)
    }
}

/// Splits ascending (UID, size) pairs into fetch batches: at most FETCH_UIDS UIDs and,
/// past the first, at most IMPORT_BATCH_BYTES of announced size.
fn batches(uids: &[(u32, u64)]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for &(uid, size) in uids {
        if cur.len() >= FETCH_UIDS || (!cur.is_empty() && bytes + size > IMPORT_BATCH_BYTES as u64)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push(uid);
        bytes += size;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn import_account(
    t: &mut Target,
    config: &Config,
    user: &str,
    c: &mut Client,
    json: bool,
) -> Result<(Vec<MailboxReport>, bool), Stop> {
    let listed = c.list(false)?;
    let subscribed = c.list(true)?;
    let mut failed = false;
    let mut boxes = Vec::new();
    for l in &listed {
        if l.has("\\Noselect") || l.has("\\NonExistent") {
            continue;
        }
        match imapc::local_name(l) {
            Some(name) => boxes.push((l.name.clone(), name)),
            None => {
                eprintln!(
                    "node import: warning: mailbox {:?} (separator {:?}) has a level with '/' \
                     or an empty level: not imported",
                    String::from_utf8_lossy(&l.name),
                    l.separator.map(char::from)
                );
                failed = true;
            }
        }
    }
    // INBOX first, then as the server listed them (parents before children).
    boxes.sort_by_key(|(_, n)| n != "INBOX");
    let bar = progress(0, json, &format!("import {user}"));
    let stop_after: Option<u64> = std::env::var(STOP_AFTER_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut done = 0u64;
    let mut reports = Vec::new();
    for (remote, name) in &boxes {
        bar.set_message(name.clone());
        let sel = c.examine(remote)?;
        let uids = if sel.exists > 0 {
            c.uids()?
        } else {
            Vec::new()
        };
        bar.inc_length(uids.len() as u64);
        let mut rep = MailboxReport {
            mailbox: name.clone(),
            uidvalidity: sel.uidvalidity,
            ..MailboxReport::default()
        };
        let mut groups = batches(&uids);
        if groups.is_empty() {
            // One request even for an empty mailbox: it creates it with its UIDVALIDITY.
            groups.push(Vec::new());
        }
        for mut group in groups {
            if let Some(s) = stop_after {
                group.truncate(usize::try_from(s.saturating_sub(done)).unwrap_or(usize::MAX));
            }
            let items = c.fetch(&group)?;
            let mut batch = Vec::with_capacity(items.len());
            for it in items {
                let (Some(uid), Some(body), Some((date, tz))) = (it.uid, it.body, it.internal_date)
                else {
                    continue;
                };
                let flags = it
                    .flags
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .collect();
                batch.push(WireMessage::new(uid, flags, date, tz, &body));
            }
            let missing = group.len() - batch.len();
            if missing > 0 {
                // Expunged on the server between the listing and the fetch, most likely.
                bar.suspend(|| {
                    eprintln!(
                        "node import: warning: {name}: {missing} messages came back without \
                         their UID, date or body (expunged meanwhile?): not imported"
                    )
                });
            }
            let n = group.len() as u64;
            let req = Request::Import {
                user: user.to_string(),
                mailbox: name.clone(),
                uidvalidity: sel.uidvalidity,
                messages: batch,
            };
            match t.call(config, &req) {
                Ok(v) => {
                    let o: storage::ImportOutcome =
                        serde_json::from_value(v).map_err(|e| Stop::Local(e.into()))?;
                    rep.imported += o.imported;
                    rep.present += o.present;
                    rep.refused.extend(o.refused);
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("node import: {name}: {e:#}"));
                    failed = true;
                    break;
                }
            }
            bar.inc(n);
            done += n;
            if stop_after.is_some_and(|s| done >= s) {
                bar.abandon();
                eprintln!("node import: stopped after {done} messages ({STOP_AFTER_ENV})");
                std::process::exit(137);
            }
        }
        if !rep.refused.is_empty() {
            failed = true;
            bar.suspend(|| {
                eprintln!(
                    "node import: {name}: UIDs {:?} are below the mailbox's UIDNEXT and held by \
                     no message or another one: not imported (a UID is never reused; import \
                     into a new user or mailbox to keep them)",
                    rep.refused
                )
            });
        }
        reports.push(rep);
    }
    bar.finish_and_clear();
    let subs: Vec<String> = subscribed
        .iter()
        .filter_map(imapc::local_name)
        .filter(|n| boxes.iter().any(|(_, b)| b == n))
        .collect();
    if !subs.is_empty() {
        let req = Request::MailboxSubscribe {
            user: user.to_string(),
            mailboxes: subs,
            on: true,
        };
        if let Err(e) = t.call(config, &req) {
            eprintln!("node import: subscriptions: {e:#}");
            failed = true;
        }
    }
    Ok((reports, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cut_by_count_and_bytes() {
        let uids: Vec<(u32, u64)> = (1..=450).map(|u| (u, 10)).collect();
        let b = batches(&uids);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [200, 200, 50]);
        let big = IMPORT_BATCH_BYTES as u64;
        let b = batches(&[(1, big), (2, 1), (3, big + 5), (4, 1)]);
        assert_eq!(b, vec![vec![1], vec![2], vec![3], vec![4]]);
        assert!(batches(&[]).is_empty());
    }
}
