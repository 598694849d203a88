//! Admin commands on users' stores: through the running server's admin socket when it runs,
//! otherwise on the store opened directly (the same operations, `crate::admin::execute`).

use super::{Command, MailboxCmd, QuotaCmd, UserCmd, UserSel};
use crate::admin::{self, AdminClient, MailboxStatus, Request, UserListEntry};
use crate::auth::{AuthSettings, Authenticator};
use crate::config::Config;
use anyhow::Context as _;
use std::sync::Arc;

enum Target {
    Socket(AdminClient),
    Direct {
        store: Arc<storage::Store>,
        auth: Arc<Authenticator>,
    },
}

impl Target {
    fn open(config: &Config) -> anyhow::Result<Target> {
        let sock = config.admin_socket_path();
        if let Some(client) = AdminClient::connect(&sock) {
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
        Ok(Target::Direct { store, auth })
    }

    fn call(&mut self, req: &Request) -> anyhow::Result<serde_json::Value> {
        match self {
            Target::Socket(c) => c.call(req),
            Target::Direct { store, auth } => admin::execute(store, auth, req),
        }
        .map_err(|e| anyhow::anyhow!(e))
    }
}

fn users_with_store(t: &mut Target) -> anyhow::Result<Vec<String>> {
    let list: Vec<UserListEntry> = serde_json::from_value(t.call(&Request::UserList)?)?;
    Ok(list
        .into_iter()
        .filter(|u| u.has_store)
        .map(|u| u.user)
        .collect())
}

/// Runs `make(user)` for one user or, with -A, every user with a store, with a progress bar.
fn per_user(
    t: &mut Target,
    sel: &UserSel,
    verb: &str,
    make: impl Fn(String) -> Request,
    show: impl Fn(&str, &serde_json::Value),
) -> anyhow::Result<i32> {
    let users = match (&sel.user, sel.all) {
        (Some(u), _) => vec![u.clone()],
        (None, _) => users_with_store(t)?,
    };
    let bar = if sel.all {
        let bar = indicatif::ProgressBar::new(users.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} users {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(verb.to_string());
        Some(bar)
    } else {
        None
    };
    let mut failed = 0;
    for user in users {
        if let Some(b) = &bar {
            b.set_message(user.clone());
        }
        match t.call(&make(user.clone())) {
            Ok(v) => show(&user, &v),
            Err(e) => {
                failed += 1;
                let line = format!("node {verb}: {user}: {e:#}");
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_with_message("done");
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

pub fn run(config: &Config, cmd: Command) -> anyhow::Result<i32> {
    let mut t = Target::open(config)?;
    match cmd {
        Command::User {
            what: UserCmd::List,
        } => {
            let list: Vec<UserListEntry> = serde_json::from_value(t.call(&Request::UserList)?)?;
            for u in list {
                if u.in_userdb {
                    println!("{}", u.user);
                } else {
                    println!("{} (has mail here, not in the userdb)", u.user);
                }
            }
            Ok(0)
        }
        Command::Mailbox {
            what: MailboxCmd::List { user },
        } => {
            let names: Vec<String> =
                serde_json::from_value(t.call(&Request::MailboxList { user })?)?;
            for n in names {
                println!("{n}");
            }
            Ok(0)
        }
        Command::Mailbox {
            what: MailboxCmd::Status { user, mailbox },
        } => {
            let all = mailbox.is_none();
            let list: Vec<MailboxStatus> =
                serde_json::from_value(t.call(&Request::MailboxStatus { user, mailbox })?)?;
            for m in list {
                let fields = format!(
                    "messages={} unseen={} uidnext={} uidvalidity={} highestmodseq={} vsize={} guid={}",
                    m.messages, m.unseen, m.uidnext, m.uidvalidity, m.highestmodseq, m.vsize, m.guid
                );
                if all {
                    println!("{} {fields}", m.mailbox);
                } else {
                    println!("{fields}");
                }
            }
            Ok(0)
        }
        Command::ForceResync(sel) => per_user(
            &mut t,
            &sel,
            "force-resync",
            |user| Request::ForceResync { user },
            |_, _| {},
        ),
        Command::Purge(sel) => {
            let verbose = !sel.all;
            per_user(
                &mut t,
                &sel,
                "purge",
                |user| Request::Purge { user },
                move |user, v| {
                    if verbose {
                        println!(
                            "{user}: objects_removed={} bytes_reclaimed={}",
                            v["objects_removed"], v["bytes_reclaimed"]
                        );
                    }
                },
            )
        }
        Command::Quota {
            what: QuotaCmd::Get { user },
        } => {
            let usage: storage::QuotaUsage =
                serde_json::from_value(t.call(&Request::QuotaGet { user })?)?;
            // doveadm quota get's table; STORAGE in kilobytes as Dovecot prints it.
            let pct = |v: u64, l: Option<u64>| match l {
                Some(l) if l > 0 => (v.saturating_mul(100) / l).to_string(),
                _ => "0".into(),
            };
            let lim = |l: Option<u64>| l.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "{:<10} {:<7} {:>12} {:>12} {:>3}",
                "Quota name", "Type", "Value", "Limit", "%"
            );
            println!(
                "{:<10} {:<7} {:>12} {:>12} {:>3}",
                "User quota",
                "STORAGE",
                usage.bytes / 1024,
                lim(usage.limits.max_bytes.map(|b| b / 1024)),
                pct(usage.bytes, usage.limits.max_bytes)
            );
            println!(
                "{:<10} {:<7} {:>12} {:>12} {:>3}",
                "User quota",
                "MESSAGE",
                usage.messages,
                lim(usage.limits.max_messages),
                pct(usage.messages, usage.limits.max_messages)
            );
            Ok(0)
        }
        other => anyhow::bail!("not an admin command: {other:?}"),
    }
}
