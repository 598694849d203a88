//! Admin commands on users' stores: through the running server's admin socket when it runs,
//! otherwise on the store opened directly (the same operations: `crate::admin::execute` and,
//! for the mail commands, `crate::admin::mail::MailCtx` over a backend like the server's).

use super::{
    Command, FlagsCmd, LogCmd, MailboxCmd, PenaltyCmd, QuotaCmd, ReplicationCmd, SieveCmd, UserSel,
};
use crate::admin::mail::{FlagOp, MailCtx};
use crate::admin::{self, AdminClient, MailboxStatus, Request, UserListEntry};
use crate::auth::{AuthSettings, Authenticator};
use crate::config::Config;
use crate::sessions::{is_mask, user_mask_matches};
use anyhow::Context as _;
use std::sync::Arc;

/// doveadm's exit code for a user the userdb does not know (EX_NOUSER).
pub const EX_NOUSER: i32 = 67;

pub(super) enum Target {
    Socket(AdminClient),
    Direct {
        store: Arc<storage::Store>,
        auth: Arc<Authenticator>,
        mail: MailCtx,
        rt: tokio::runtime::Runtime,
    },
}

impl Target {
    pub(super) fn open(config: &Config) -> anyhow::Result<Target> {
        let sock = config.admin_socket_path();
        if let Some(client) = AdminClient::try_connect(&sock).map_err(|e| anyhow::anyhow!(e))? {
            return Ok(Target::Socket(client));
        }
        let settings = AuthSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
        let default_quota = settings.default_quota;
        let auth = Authenticator::new(settings, config);
        let store = storage::Store::open(crate::server::store_config(config, default_quota))
            .with_context(|| {
                format!(
                    "cannot open the store in {} (no server answers on {})",
                    config.data_dir().display(),
                    sock.display()
                )
            })?;
        // No server: this process is the only writer; the peers get the changes when the node
        // runs again (version vectors), as with any write made while it was stopped.
        let backend = crate::backend::NodeBackend::new(
            store.clone(),
            auth.clone(),
            Arc::new(crate::backend::Standalone),
            crate::server::backend_settings(config),
            Arc::new(crate::sessions::LiveSessions::default()),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?;
        Ok(Target::Direct {
            store,
            auth: auth.clone(),
            mail: MailCtx { backend, auth },
            rt,
        })
    }

    pub(super) fn call(
        &mut self,
        config: &Config,
        req: &Request,
    ) -> anyhow::Result<serde_json::Value> {
        match (self, req) {
            (Target::Socket(c), _) => c.call(req).map_err(|e| anyhow::anyhow!(e)),
            (Target::Direct { store, auth, .. }, Request::Sync { user, peer, full }) => {
                let user = admin::known_user(auth, user).map_err(|e| anyhow::anyhow!(e))?;
                direct_sync(config, store.clone(), &user, *peer, *full)
            }
            (Target::Direct { mail, rt, .. }, req) if req.is_mail() => rt
                .block_on(mail.execute(req))
                .map_err(|e| anyhow::anyhow!(e)),
            (Target::Direct { store, auth, .. }, _) => {
                admin::execute(store, auth, req).map_err(|e| anyhow::anyhow!(e))
            }
        }
    }
}

/// `node sync` with no server running: this process opens the store and dials the peers.
fn direct_sync(
    config: &Config,
    store: Arc<storage::Store>,
    user: &str,
    peer: Option<u32>,
    full: bool,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        crate::cluster::enabled(config),
        "no [cluster] listen/peers in the configuration: nothing to sync with"
    );
    let tls = crate::cluster::load_tls(config)?;
    let peers: Vec<_> = crate::cluster::peers(config)
        .into_iter()
        .filter(|p| peer.is_none_or(|id| id == p.id))
        .collect();
    anyhow::ensure!(
        !peers.is_empty(),
        "node {:?} is not a configured peer",
        peer
    );
    let me = config.cluster.node_id;
    let resolve =
        replication::policy::should_resolve(me, config.cluster.peers.iter().map(|p| p.node_id));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut reports = Vec::new();
    for p in &peers {
        let r = rt
            .block_on(replication::sync::sync_user_with_store(
                &tls,
                store.clone(),
                p,
                user,
                full,
                resolve,
            ))
            .with_context(|| format!("sync of {user} with node {} ({})", p.id, p.addr))?;
        reports.push(r);
    }
    Ok(serde_json::to_value(reports)?)
}

fn user_list(t: &mut Target, config: &Config) -> anyhow::Result<Vec<UserListEntry>> {
    Ok(serde_json::from_value(t.call(config, &Request::UserList)?)?)
}

/// The users a `-u USER|MASK` / `-A` selection names. -A and masks take the users that are in
/// the userdb and have mail here (a mask never creates a store); a plain name is passed on
/// as given (the server says if the userdb does not know it).
fn select_users(t: &mut Target, config: &Config, sel: &UserSel) -> anyhow::Result<Vec<String>> {
    if let Some(u) = sel.user.as_ref().filter(|u| !is_mask(u)) {
        return Ok(vec![u.clone()]);
    }
    let mask = sel.user.as_deref();
    let users: Vec<String> = user_list(t, config)?
        .into_iter()
        .filter(|u| u.in_userdb && u.has_store)
        .filter(|u| mask.is_none_or(|m| user_mask_matches(m, &u.user)))
        .map(|u| u.user)
        .collect();
    if let Some(m) = mask {
        anyhow::ensure!(!users.is_empty(), "no user with mail here matches {m:?}");
    }
    Ok(users)
}

/// How one command is run per user: the request, how an answer is printed, and whether an
/// answer still means failure.
struct PerUser<'a> {
    verb: &'a str,
    make: &'a dyn Fn(String) -> Request,
    show: &'a dyn Fn(&str, &serde_json::Value, bool),
    failed_in: &'a dyn Fn(&serde_json::Value) -> Option<String>,
}

fn no_problem(_: &serde_json::Value) -> Option<String> {
    None
}

fn silent(_: &str, _: &serde_json::Value, _: bool) {}

/// Runs the request for each selected user, with a progress bar for -A. With --json the
/// answers are printed as one array of {user, result|error}. Exit 0 when every user
/// succeeded, [`EX_NOUSER`] when the one user named does not exist, 1 otherwise.
fn per_user(
    t: &mut Target,
    config: &Config,
    sel: &UserSel,
    json: bool,
    p: PerUser<'_>,
) -> anyhow::Result<i32> {
    let users = select_users(t, config, sel)?;
    let many = sel.all || sel.user.as_deref().is_some_and(is_mask);
    let bar = if sel.all && !json {
        let bar = indicatif::ProgressBar::new(users.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} users {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(p.verb.to_string());
        Some(bar)
    } else {
        None
    };
    let mut failed = 0;
    let mut unknown = false;
    let mut out = Vec::new();
    for user in &users {
        if let Some(b) = &bar {
            b.set_message(user.clone());
        }
        let problem = match t.call(config, &(p.make)(user.clone())) {
            Ok(v) => {
                let problem = (p.failed_in)(&v);
                if json {
                    out.push(serde_json::json!({ "user": user, "result": v }));
                } else {
                    (p.show)(user, &v, many);
                }
                problem
            }
            Err(e) => {
                // A peer-link certificate error says what to do (`node sync`).
                let mut text = crate::cluster::with_tls_hint(&format!("{e:#}"));
                if text.contains("does not exist") && text.starts_with("mailbox ") {
                    text.push_str(&format!(" (`node mailbox list -u {user}` lists them)"));
                }
                unknown |= text.contains("doesn't exist in the userdb");
                if json {
                    out.push(serde_json::json!({ "user": user, "error": text }));
                }
                Some(text)
            }
        };
        if let Some(problem) = problem {
            failed += 1;
            let line = format!("node {}: {user}: {problem}", p.verb);
            match &bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_with_message("done");
    }
    if json {
        print_json(&serde_json::Value::Array(out))?;
    }
    if failed > 0 && !many {
        return Ok(if unknown { EX_NOUSER } else { 1 });
    }
    if failed > 0 {
        eprintln!("node {}: {failed} of {} users failed", p.verb, users.len());
        return Ok(1);
    }
    Ok(0)
}

/// A plain per-user command: the request, nothing printed on success (as doveadm).
fn quiet(
    t: &mut Target,
    config: &Config,
    sel: &UserSel,
    json: bool,
    verb: &str,
    make: &dyn Fn(String) -> Request,
) -> anyhow::Result<i32> {
    per_user(
        t,
        config,
        sel,
        json,
        PerUser {
            verb,
            make,
            show: &silent,
            failed_in: &no_problem,
        },
    )
}

fn prefix(user: &str, many: bool) -> String {
    if many {
        format!("{user} ")
    } else {
        String::new()
    }
}

/// A server-only request: its answer, or why there is no server to ask.
fn ask_server(t: &mut Target, config: &Config, req: &Request) -> anyhow::Result<serde_json::Value> {
    if let Target::Direct { .. } = t {
        anyhow::bail!(
            "no running node answers on {} (this command asks the running server: start it, \
             or pass the -c of the node that runs)",
            config.admin_socket_path().display()
        );
    }
    t.call(config, req)
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn user_table(v: &serde_json::Value) {
    // doveadm user's layout: field, tab, value.
    outln!("field\tvalue");
    for k in ["user", "uid", "gid", "home"] {
        if let Some(s) = v[k].as_str().filter(|s| !s.is_empty()) {
            outln!("{k}\t{s}");
        }
    }
    for f in v["fields"].as_array().into_iter().flatten() {
        if let (Some(k), Some(val)) = (f[0].as_str(), f[1].as_str()) {
            outln!("{k}\t{val}");
        }
    }
    let lim = |x: &serde_json::Value| {
        x.as_u64()
            .map_or("unlimited".to_string(), |n| n.to_string())
    };
    outln!(
        "quota\tbytes={} messages={}",
        lim(&v["quota"]["max_bytes"]),
        lim(&v["quota"]["max_messages"])
    );
}

/// `node user MASK...`: a userdb lookup per name; a mask lists the userdb's matching users.
fn user_cmd(
    t: &mut Target,
    config: &Config,
    masks: Vec<String>,
    json: bool,
) -> anyhow::Result<i32> {
    if masks == ["list"] {
        let list = user_list(t, config)?;
        if json {
            print_json(&serde_json::to_value(&list)?)?;
            return Ok(0);
        }
        for u in list {
            if u.in_userdb {
                outln!("{}", u.user);
            } else {
                outln!("{} (has mail here, not in the userdb)", u.user);
            }
        }
        return Ok(0);
    }
    let mut code = 0;
    let mut out = Vec::new();
    for m in masks {
        if is_mask(&m) {
            let names: Vec<String> = user_list(t, config)?
                .into_iter()
                .filter(|u| u.in_userdb && user_mask_matches(&m, &u.user))
                .map(|u| u.user)
                .collect();
            if json {
                out.push(serde_json::json!({ "mask": m, "users": names }));
            } else {
                for n in names {
                    outln!("{n}");
                }
            }
            continue;
        }
        match t.call(config, &Request::UserLookup { user: m.clone() }) {
            Ok(v) if json => out.push(v),
            Ok(v) => user_table(&v),
            Err(e) => {
                eprintln!("node user: {e:#}");
                if json {
                    out.push(serde_json::json!({ "user": m, "error": format!("{e:#}") }));
                }
                code = EX_NOUSER;
            }
        }
    }
    if json {
        print_json(&serde_json::Value::Array(out))?;
    }
    Ok(code)
}

fn print_fetch(user: &str, v: &serde_json::Value, many: bool) {
    for (i, row) in v.as_array().into_iter().flatten().enumerate() {
        if i > 0 || many {
            // doveadm's pager formatter separates messages with a form feed.
            outln!("\u{c}");
        }
        if many {
            outln!("user: {user}");
        }
        for (k, val) in row.as_object().into_iter().flatten() {
            let text = val.as_str().unwrap_or_default();
            if text.contains('\n') {
                outln!("{k}:");
                out!("{text}");
                if !text.ends_with('\n') {
                    outln!();
                }
            } else {
                outln!("{k}: {text}");
            }
        }
    }
}

fn quota_table(usage: &storage::QuotaUsage) {
    // doveadm quota get's table; STORAGE in kilobytes as Dovecot prints it.
    let pct = |v: u64, l: Option<u64>| match l {
        Some(l) if l > 0 => (v.saturating_mul(100) / l).to_string(),
        _ => "0".into(),
    };
    let lim = |l: Option<u64>| l.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    outln!(
        "{:<10} {:<7} {:>12} {:>12} {:>3}",
        "Quota name",
        "Type",
        "Value",
        "Limit",
        "%"
    );
    outln!(
        "{:<10} {:<7} {:>12} {:>12} {:>3}",
        "User quota",
        "STORAGE",
        usage.bytes / 1024,
        lim(usage.limits.max_bytes.map(|b| b / 1024)),
        pct(usage.bytes, usage.limits.max_bytes)
    );
    outln!(
        "{:<10} {:<7} {:>12} {:>12} {:>3}",
        "User quota",
        "MESSAGE",
        usage.messages,
        lim(usage.limits.max_messages),
        pct(usage.messages, usage.limits.max_messages)
    );
}

fn show_search(user: &str, v: &serde_json::Value, many: bool) {
    for h in v.as_array().into_iter().flatten() {
        // doveadm search's output: mailbox GUID and UID.
        outln!(
            "{}{} {}",
            prefix(user, many),
            h["mailbox_guid"].as_str().unwrap_or(""),
            h["uid"]
        );
    }
}

fn show_sync(_: &str, v: &serde_json::Value, _: bool) {
    if let Ok(reports) = serde_json::from_value::<Vec<replication::SyncReport>>(v.clone()) {
        for r in reports {
            outln!("{r}");
        }
    }
}

/// A full sync that leaves a mailbox different from the peer did not succeed.
fn sync_diverged(v: &serde_json::Value) -> Option<String> {
    let diverged: usize = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["diverged"].as_array().map_or(0, Vec::len))
        .sum();
    (diverged > 0)
        .then(|| format!("{diverged} mailboxes still differ from the peer after the sync"))
}

fn show_quota(user: &str, v: &serde_json::Value, many: bool) {
    if let Ok(usage) = serde_json::from_value::<storage::QuotaUsage>(v.clone()) {
        if many {
            outln!("{user}");
        }
        quota_table(&usage);
    }
}

fn show_purge(user: &str, v: &serde_json::Value, many: bool) {
    if !many {
        outln!(
            "{user}: objects_removed={} bytes_reclaimed={}",
            v["objects_removed"],
            v["bytes_reclaimed"]
        );
    }
}

pub fn run(config: &Config, cmd: Command, json: bool) -> anyhow::Result<i32> {
    let mut target = Target::open(config)?;
    let t = &mut target;
    match cmd {
        Command::User { masks } => user_cmd(t, config, masks, json),
        Command::Mailbox { what } => mailbox(t, config, what, json),
        Command::Search { sel, query } => per_user(
            t,
            config,
            &sel,
            json,
            PerUser {
                verb: "search",
                make: &|user| Request::Search {
                    user,
                    query: query.clone(),
                },
                show: &show_search,
                failed_in: &no_problem,
            },
        ),
        Command::Fetch { sel, fields, query } => {
            let fields: Vec<String> = fields.split_whitespace().map(str::to_string).collect();
            per_user(
                t,
                config,
                &sel,
                json,
                PerUser {
                    verb: "fetch",
                    make: &|user| Request::Fetch {
                        user,
                        fields: fields.clone(),
                        query: query.clone(),
                    },
                    show: &print_fetch,
                    failed_in: &no_problem,
                },
            )
        }
        Command::Expunge { sel, query } => {
            quiet(t, config, &sel, json, "expunge", &|user| Request::Expunge {
                user,
                query: query.clone(),
            })
        }
        Command::Copy {
            sel,
            destination,
            query,
        } => quiet(t, config, &sel, json, "copy", &|user| Request::Copy {
            user,
            destination: destination.clone(),
            query: query.clone(),
            remove: false,
        }),
        Command::Move {
            sel,
            destination,
            query,
        } => quiet(t, config, &sel, json, "move", &|user| Request::Copy {
            user,
            destination: destination.clone(),
            query: query.clone(),
            remove: true,
        }),
        Command::Flags { what } => {
            let (op, sel, flags, query) = match what {
                FlagsCmd::Add { sel, flags, query } => (FlagOp::Add, sel, flags, query),
                FlagsCmd::Remove { sel, flags, query } => (FlagOp::Remove, sel, flags, query),
                FlagsCmd::Replace { sel, flags, query } => (FlagOp::Replace, sel, flags, query),
            };
            quiet(t, config, &sel, json, "flags", &|user| Request::Flags {
                user,
                op,
                flags: vec![flags.clone()],
                query: query.clone(),
            })
        }
        Command::ForceResync { sel, .. } => quiet(t, config, &sel, json, "force-resync", &|user| {
            Request::ForceResync { user }
        }),
        Command::Purge(sel) => per_user(
            t,
            config,
            &sel,
            json,
            PerUser {
                verb: "purge",
                make: &|user| Request::Purge { user },
                show: &show_purge,
                failed_in: &no_problem,
            },
        ),
        Command::Quota {
            what: QuotaCmd::Get { sel },
        } => per_user(
            t,
            config,
            &sel,
            json,
            PerUser {
                verb: "quota get",
                make: &|user| Request::QuotaGet { user },
                show: &show_quota,
                failed_in: &no_problem,
            },
        ),
        Command::Quota {
            what: QuotaCmd::Recalc { sel },
        } => quiet(t, config, &sel, json, "quota recalc", &|user| {
            Request::QuotaRecalc { user }
        }),
        Command::Sync {
            user,
            all,
            peer,
            full,
        } => per_user(
            t,
            config,
            &UserSel { user, all },
            json,
            PerUser {
                verb: "sync",
                make: &|user| Request::Sync { user, peer, full },
                show: &show_sync,
                failed_in: &sync_diverged,
            },
        ),
        Command::Replication {
            what: ReplicationCmd::Status,
        } => replication_status(t, config, json),
        Command::Penalty { what } => penalty(t, config, what, json),
        Command::Log {
            what: LogCmd::Reopen,
        } => {
            ask_server(t, config, &Request::LogReopen)?;
            Ok(0)
        }
        Command::Who { mask } => {
            let v = ask_server(t, config, &Request::Who { mask })?;
            if json {
                print_json(&v)?;
            } else {
                who_table(&v);
            }
            Ok(0)
        }
        Command::Kick { mask } => kick(t, config, mask, json),
        Command::Stats => {
            let v = ask_server(t, config, &Request::Stats)?;
            if json {
                print_json(&v)?;
            } else {
                for (k, val) in v.as_object().into_iter().flatten() {
                    outln!("{k} {val}");
                }
            }
            Ok(0)
        }
        Command::Sieve { what } => sieve(t, config, what),
        other => anyhow::bail!("not an admin command: {other:?}"),
    }
}

fn penalty(
    t: &mut Target,
    config: &Config,
    what: Option<PenaltyCmd>,
    json: bool,
) -> anyhow::Result<i32> {
    let Some(PenaltyCmd::Clear { ip, .. }) = what else {
        let v = ask_server(t, config, &Request::Penalty)?;
        if json {
            print_json(&v)?;
            return Ok(0);
        }
        outln!("{:<40} {:>8} locked", "IP", "failures");
        for p in v.as_array().into_iter().flatten() {
            outln!(
                "{:<40} {:>8} {}",
                p["ip"].as_str().unwrap_or(""),
                p["failures"],
                if p["locked"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        return Ok(0);
    };
    let v = ask_server(t, config, &Request::PenaltyClear { ip })?;
    if json {
        print_json(&v)?;
    } else if v["cleared"].as_u64() == Some(0) {
        // Not an error (the window may have passed already), but worth a word.
        eprintln!("node penalty clear: no failed logins were recorded for that address");
    }
    Ok(0)
}

fn kick(t: &mut Target, config: &Config, mask: String, json: bool) -> anyhow::Result<i32> {
    let v = ask_server(t, config, &Request::Kick { mask: mask.clone() })?;
    let mut users: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["user"].as_str())
        .collect();
    users.dedup();
    if json {
        print_json(&v)?;
    }
    if users.is_empty() {
        eprintln!("node kick: no logged-in user matches {mask:?}");
        return Ok(1);
    }
    if !json {
        outln!("kicked connections from the following users:");
        for u in users {
            outln!("{u}");
        }
    }
    Ok(0)
}

fn who_table(v: &serde_json::Value) {
    // doveadm who: one line per user and service, with the count and the addresses.
    let mut rows: std::collections::BTreeMap<(String, String), (usize, Vec<String>)> =
        Default::default();
    for s in v.as_array().into_iter().flatten() {
        let key = (
            s["user"].as_str().unwrap_or("").to_string(),
            s["service"].as_str().unwrap_or("").to_string(),
        );
        let e = rows.entry(key).or_default();
        e.0 += 1;
        let ip = s["rip"].as_str().unwrap_or("").to_string();
        if !e.1.contains(&ip) {
            e.1.push(ip);
        }
    }
    outln!("{:<30} {:>3} {:<6} (ips)", "username", "#", "proto");
    for ((user, service), (n, ips)) in rows {
        outln!("{user:<30} {n:>3} {service:<6} ({})", ips.join(" "));
    }
}

fn show_mailbox_names(user: &str, v: &serde_json::Value, many: bool) {
    for n in v.as_array().into_iter().flatten() {
        outln!("{}{}", prefix(user, many), n.as_str().unwrap_or(""));
    }
}

fn mailbox(t: &mut Target, config: &Config, what: MailboxCmd, json: bool) -> anyhow::Result<i32> {
    match what {
        MailboxCmd::List { sel } => per_user(
            t,
            config,
            &sel,
            json,
            PerUser {
                verb: "mailbox list",
                make: &|user| Request::MailboxList { user },
                show: &show_mailbox_names,
                failed_in: &no_problem,
            },
        ),
        MailboxCmd::Status { sel, args } => {
            // `[MAILBOX]` (every mailbox without it), or doveadm's `FIELDS MAILBOX_MASK`.
            let (fields, mask) = match args.as_slice() {
                [] => (None, None),
                [m] => (None, Some(m.clone())),
                [f, m] => (Some(f.clone()), Some(m.clone())),
                _ => anyhow::bail!("mailbox status takes [MAILBOX] or 'FIELDS' MAILBOX_MASK"),
            };
            const FIELDS: [&str; 7] = [
                "messages",
                "unseen",
                "uidnext",
                "uidvalidity",
                "highestmodseq",
                "vsize",
                "guid",
            ];
            let wanted: Vec<&str> = match fields.as_deref() {
                None | Some("all") => FIELDS.to_vec(),
                Some(f) => {
                    let list: Vec<&str> = f.split_whitespace().collect();
                    if let Some(bad) = list.iter().find(|x| !FIELDS.contains(x)) {
                        anyhow::bail!(
                            "unknown status field {bad:?} (known: all {})",
                            FIELDS.join(" ")
                        );
                    }
                    list
                }
            };
            let wildcard = mask.as_deref().is_some_and(|m| m.contains(['*', '%']));
            let one = mask.is_some() && !wildcard;
            // Several mailboxes: each line starts with its name.
            let named = !one;
            let show = move |user: &str, v: &serde_json::Value, many: bool| {
                let Ok(list) = serde_json::from_value::<Vec<MailboxStatus>>(v.clone()) else {
                    return;
                };
                for m in list {
                    let all = serde_json::to_value(&m).unwrap_or_default();
                    let fields: Vec<String> = wanted
                        .iter()
                        .map(|f| {
                            let val = &all[*f];
                            format!(
                                "{f}={}",
                                val.as_str().map_or(val.to_string(), str::to_string)
                            )
                        })
                        .collect();
                    let fields = fields.join(" ");
                    if named {
                        outln!("{}{} {fields}", prefix(user, many), m.mailbox);
                    } else {
                        outln!("{}{fields}", prefix(user, many));
                    }
                }
            };
            per_user(
                t,
                config,
                &sel,
                json,
                PerUser {
                    verb: "mailbox status",
                    make: &|user| Request::MailboxStatus {
                        user,
                        mailbox: mask.clone(),
                    },
                    show: &show,
                    failed_in: &no_problem,
                },
            )
        }
        MailboxCmd::Create {
            sel,
            subscribe,
            mailboxes,
        } => quiet(t, config, &sel, json, "mailbox create", &|user| {
            Request::MailboxCreate {
                user,
                mailboxes: mailboxes.clone(),
                subscribe,
            }
        }),
        MailboxCmd::Delete { sel, mailboxes } => {
            quiet(t, config, &sel, json, "mailbox delete", &|user| {
                Request::MailboxDelete {
                    user,
                    mailboxes: mailboxes.clone(),
                }
            })
        }
        MailboxCmd::Rename { sel, old, new } => {
            quiet(t, config, &sel, json, "mailbox rename", &|user| {
                Request::MailboxRename {
                    user,
                    from: old.clone(),
                    to: new.clone(),
                }
            })
        }
        MailboxCmd::Subscribe { sel, mailboxes } => {
            quiet(t, config, &sel, json, "mailbox subscribe", &|user| {
                Request::MailboxSubscribe {
                    user,
                    mailboxes: mailboxes.clone(),
                    on: true,
                }
            })
        }
        MailboxCmd::Unsubscribe { sel, mailboxes } => {
            quiet(t, config, &sel, json, "mailbox unsubscribe", &|user| {
                Request::MailboxSubscribe {
                    user,
                    mailboxes: mailboxes.clone(),
                    on: false,
                }
            })
        }
    }
}

fn replication_status(t: &mut Target, config: &Config, json: bool) -> anyhow::Result<i32> {
    let v = t.call(config, &Request::ReplicationStatus)?;
    if json {
        print_json(&v)?;
        return Ok(0);
    }
    let st: replication::ReplicationStatus = serde_json::from_value(v)?;
    outln!(
        "node {} durability={:?} degraded={} users_tracked={}",
        st.node,
        st.durability,
        st.degraded,
        st.users_tracked
    );
    for p in st.peers {
        outln!(
            "peer {} {} {} records_behind={} batches_failed={}{}",
            p.id,
            p.addr,
            if p.connected {
                "connected"
            } else {
                "disconnected"
            },
            p.records_behind,
            p.batches_failed,
            p.last_error
                .as_ref()
                .map(|e| format!(" last_error={e:?}"))
                .unwrap_or_default()
        );
        if p.behind.iter().any(|u| !u.peer_state_known) {
            // After a restart, until the peer answers, this node does not know what it has.
            outln!(
                "  records<=N: upper bound, peer {} has not said what it holds since this node started",
                p.id
            );
        }
        if let Some(hint) = p.last_error.as_deref().and_then(crate::cluster::tls_hint) {
            outln!("  what to do: {hint}");
        }
        for u in p.behind {
            outln!(
                "  {} records{}{} bytes={} seconds={:.1}",
                u.user,
                if u.peer_state_known { "=" } else { "<=" },
                u.records,
                u.bytes,
                u.seconds
            );
        }
    }
    let y = &st.pacing;
    outln!(
        "yield to clients={} catch_up_batches={} delayed={} shrunk={} yield_seconds={:.3} \
         applies_delayed={} apply_yield_seconds={:.3}",
        y.enabled,
        y.catch_up_batches,
        y.catch_up_batches_delayed,
        y.catch_up_batches_shrunk,
        y.yield_seconds,
        y.applies_delayed,
        y.apply_yield_seconds
    );
    // Messages a peer shipped without their object (purged there), invisible until
    // their removal arrives; one that stays is a peer's error (see docs/operations.md).
    outln!("ghosts={}", st.ghosts.iter().map(|g| g.ghosts).sum::<u64>());
    for g in &st.ghosts {
        outln!("  {} ghosts={}", g.user, g.ghosts);
    }
    Ok(0)
}

/// `node sieve ...`: the request carries the configuration's path templates.
fn sieve(t: &mut Target, config: &Config, what: SieveCmd) -> anyhow::Result<i32> {
    use crate::sieve_admin::{ScriptEntry, SieveOp};
    let ms = crate::server::protocol_settings::managesieve(config);
    let mut call = |user: &str, op: SieveOp| {
        t.call(
            config,
            &Request::Sieve {
                user: user.to_string(),
                active_path: ms.active_path.clone(),
                script_dir: ms.script_dir.clone(),
                op,
            },
        )
    };
    match what {
        SieveCmd::List { user } => {
            let list: Vec<ScriptEntry> = serde_json::from_value(call(&user, SieveOp::List)?)?;
            for s in list {
                println!("{}{}", s.name, if s.active { " ACTIVE" } else { "" });
            }
        }
        SieveCmd::Get { user, name } => {
            let v = call(&user, SieveOp::Get { name })?;
            print!("{}", v.as_str().unwrap_or_default());
        }
        SieveCmd::Put {
            user,
            activate,
            name,
            file,
        } => {
            let script = match file {
                Some(f) => std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?,
                None => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
            };
            call(
                &user,
                SieveOp::Put {
                    name: name.clone(),
                    script,
                },
            )?;
            if activate {
                call(&user, SieveOp::Activate { name })?;
            }
        }
        SieveCmd::Activate { user, name } => {
            call(&user, SieveOp::Activate { name })?;
        }
        SieveCmd::Deactivate { user } => {
            call(&user, SieveOp::Deactivate)?;
        }
        SieveCmd::Delete { user, name } => {
            call(&user, SieveOp::Delete { name })?;
        }
    }
    Ok(0)
}
