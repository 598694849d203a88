//! Admin commands on users' stores: through the running server's admin socket when it runs,
//! otherwise on the store opened directly (the same operations, `crate::admin::execute`).

use super::{Command, MailboxCmd, QuotaCmd, ReplicationCmd, SieveCmd, UserCmd, UserSel};
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

    fn call(&mut self, config: &Config, req: &Request) -> anyhow::Result<serde_json::Value> {
        match (self, req) {
            (Target::Socket(c), _) => c.call(req).map_err(|e| anyhow::anyhow!(e)),
            (Target::Direct { store, .. }, Request::Sync { user, peer, full }) => {
                direct_sync(config, store.clone(), user, *peer, *full)
            }
            (Target::Direct { store, auth }, _) => {
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

fn users_with_store(t: &mut Target, config: &Config) -> anyhow::Result<Vec<String>> {
    let list: Vec<UserListEntry> = serde_json::from_value(t.call(config, &Request::UserList)?)?;
    Ok(list
        .into_iter()
        .filter(|u| u.has_store)
        .map(|u| u.user)
        .collect())
}

/// Runs `make(user)` for one user or, with -A, every user with a store, with a progress bar.
fn per_user(
    t: &mut Target,
    config: &Config,
    sel: &UserSel,
    verb: &str,
    make: impl Fn(String) -> Request,
    show: impl Fn(&str, &serde_json::Value),
) -> anyhow::Result<i32> {
    let users = match (&sel.user, sel.all) {
        (Some(u), _) => vec![u.clone()],
        (None, _) => users_with_store(t, config)?,
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
        match t.call(config, &make(user.clone())) {
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
            let list: Vec<UserListEntry> =
                serde_json::from_value(t.call(config, &Request::UserList)?)?;
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
                serde_json::from_value(t.call(config, &Request::MailboxList { user })?)?;
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
                serde_json::from_value(t.call(config, &Request::MailboxStatus { user, mailbox })?)?;
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
            config,
            &sel,
            "force-resync",
            |user| Request::ForceResync { user },
            |_, _| {},
        ),
        Command::Purge(sel) => {
            let verbose = !sel.all;
            per_user(
                &mut t,
                config,
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
                serde_json::from_value(t.call(config, &Request::QuotaGet { user })?)?;
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
        Command::Sync {
            user,
            all,
            peer,
            full,
        } => {
            let sel = UserSel { user, all };
            per_user(
                &mut t,
                config,
                &sel,
                "sync",
                |user| Request::Sync { user, peer, full },
                |_, v| {
                    if let Ok(reports) =
                        serde_json::from_value::<Vec<replication::SyncReport>>(v.clone())
                    {
                        for r in reports {
                            println!("{r}");
                        }
                    }
                },
            )
        }
        Command::Replication {
            what: ReplicationCmd::Status { json },
        } => {
            let v = t.call(config, &Request::ReplicationStatus)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            let st: replication::ReplicationStatus = serde_json::from_value(v)?;
            println!(
                "node {} durability={:?} degraded={} users_tracked={}",
                st.node, st.durability, st.degraded, st.users_tracked
            );
            for p in st.peers {
                println!(
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
                        .map(|e| format!(" last_error={e:?}"))
                        .unwrap_or_default()
                );
                for u in p.behind {
                    println!(
                        "  {} records={} bytes={} seconds={:.1}",
                        u.user, u.records, u.bytes, u.seconds
                    );
                }
            }
            let y = &st.pacing;
            println!(
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
            println!("ghosts={}", st.ghosts.iter().map(|g| g.ghosts).sum::<u64>());
            for g in &st.ghosts {
                println!("  {} ghosts={}", g.user, g.ghosts);
            }
            Ok(0)
        }
        Command::Sieve { what } => sieve(&mut t, config, what),
        other => anyhow::bail!("not an admin command: {other:?}"),
    }
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
