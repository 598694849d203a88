//! Admin operations on users' stores, shared by the CLI and the running server's admin socket
//! (`<data_dir>/admin.sock`). sled allows one process per index, so while the server runs the
//! CLI asks it over the socket; otherwise the CLI opens the store itself and runs the same code.
//!
//! Wire protocol: one JSON [`Request`] per line; one JSON [`Response`] per line back.

pub mod mail;
pub mod query;
pub mod transfer;

use crate::auth::Authenticator;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A request line may not be longer than this: an import batch carries messages (base64),
/// up to the largest `max_message_size` one can configure and then some. The socket is mode
/// 0600: only the node's own user (or root) can send one.
pub const MAX_REQUEST: usize = 160 << 20;

/// How much message data (raw bytes) `node import` puts in one request.
pub const IMPORT_BATCH_BYTES: usize = 8 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Users the userdb knows and users that have a store.
    UserList,
    MailboxList {
        user: String,
    },
    /// Every mailbox when `mailbox` is None.
    MailboxStatus {
        user: String,
        mailbox: Option<String>,
    },
    ForceResync {
        user: String,
    },
    Purge {
        user: String,
    },
    QuotaGet {
        user: String,
    },
    /// A user's Sieve scripts; the path templates come from the caller's configuration.
    Sieve {
        user: String,
        active_path: String,
        script_dir: String,
        #[serde(flatten)]
        op: crate::sieve_admin::SieveOp,
    },
    /// Per peer and per user replication lag (running server only).
    ReplicationStatus,
    /// Exchange one user's differences with one peer or every peer, both ways.
    Sync {
        user: String,
        peer: Option<u32>,
        full: bool,
    },
    /// keepalived's notify script (`node notify STATE`) reports a VRRP transition (running
    /// server only: it logs it and shows it in `/health`).
    VrrpNotify {
        state: crate::active::VrrpState,
    },
    /// Raft mode (running server only): members, leader, active node, epoch, links, backlog.
    ClusterStatus,
    /// A userdb lookup (doveadm user).
    UserLookup {
        user: String,
    },
    /// Running server only: forget every cached login.
    AuthCacheFlush,
    /// Running server only: addresses with recent failed logins.
    Penalty,
    /// Running server only: forget the failures of one address, or of all.
    PenaltyClear {
        ip: Option<std::net::IpAddr>,
    },
    /// Running server only: reopen log_path.
    LogReopen,
    /// Running server only: logged-in sessions, of users matching `mask` if given.
    Who {
        mask: Option<String>,
    },
    /// Running server only: disconnect the sessions of users matching `mask`.
    Kick {
        mask: String,
    },
    /// Running server only: the metrics (Prometheus text) as name -> value.
    Stats,
    /// Running server only: the hybrid logical clock against the wall clock (`node doctor`:
    /// a clock ahead of the wall clock means a peer's clock is ahead of this node's).
    Clock,
    MailboxCreate {
        user: String,
        mailboxes: Vec<String>,
        subscribe: bool,
    },
    MailboxDelete {
        user: String,
        mailboxes: Vec<String>,
    },
    MailboxRename {
        user: String,
        from: String,
        to: String,
    },
    MailboxSubscribe {
        user: String,
        mailboxes: Vec<String>,
        on: bool,
    },
    /// doveadm fetch: `fields` of the messages `query` matches.
    Fetch {
        user: String,
        fields: Vec<String>,
        query: Vec<String>,
    },
    Search {
        user: String,
        query: Vec<String>,
    },
    Expunge {
        user: String,
        query: Vec<String>,
    },
    /// doveadm copy, or move when `remove`.
    Copy {
        user: String,
        destination: String,
        query: Vec<String>,
        remove: bool,
    },
    Flags {
        user: String,
        op: mail::FlagOp,
        flags: Vec<String>,
        query: Vec<String>,
    },
    QuotaRecalc {
        user: String,
    },
    /// `node import`: messages with the UIDs they had at the source, into one mailbox
    /// (created with `uidvalidity`, see `storage::UserStore::import`).
    Import {
        user: String,
        mailbox: String,
        uidvalidity: u32,
        messages: Vec<transfer::WireMessage>,
    },
    /// `node export`: the messages of a mailbox with UIDs above `after`, about `max_bytes`.
    Export {
        user: String,
        mailbox: String,
        after: u32,
        max_bytes: u64,
    },
    /// doveadm acl get|set|delete|rights on a mailbox of `user`.
    Acl {
        user: String,
        mailbox: String,
        #[serde(flatten)]
        op: transfer::AclOp,
    },
    /// Planned hand-over of the active role (on the active node).
    TransferActive {
        node: u32,
    },
    /// Adds a voter (or a witness) to the group (on the leader).
    AddMember {
        node: u32,
        raft_address: String,
        witness: bool,
    },
    /// Removes a member from the group (on the leader).
    RemoveMember {
        node: u32,
    },
}

/// `node cluster status --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub coordinator: replication::coord::CoordStatus,
    /// Peer links and backlog (records each peer has not acknowledged).
    pub replication: Option<replication::ReplicationStatus>,
}

/// Cluster requests, answered by the running coordinator.
pub async fn execute_cluster(
    coord: &replication::coord::Coordinator,
    replication: Option<&replication::Handle>,
    req: &Request,
) -> Result<serde_json::Value, String> {
    use replication::coord::CoordError;
    let not_leader = |e: CoordError| match e {
        CoordError::NotLeader { leader } => format!(
            "node {} is not the Raft leader; run this on {}",
            coord.node_id(),
            leader.map_or(
                "the leader (none elected yet; try again)".to_string(),
                |l| format!("node {l}")
            )
        ),
        e => e.to_string(),
    };
    let ok = serde_json::Value::Null;
    match req {
        Request::ClusterStatus => {
            let replication = match replication {
                Some(h) => Some(h.status().await),
                None => None,
            };
            serde_json::to_value(ClusterStatus {
                coordinator: coord.status(),
                replication,
            })
            .map_err(|e| e.to_string())
        }
        Request::TransferActive { node } => {
            let started = std::time::Instant::now();
            // On any node: a node that is not the leader forwards it to the leader.
            let epoch = coord.transfer_active(*node).await.map_err(not_leader)?;
            Ok(serde_json::json!({
                "active": node,
                "epoch": epoch,
                "seconds": started.elapsed().as_secs_f64(),
            }))
        }
        Request::AddMember {
            node,
            raft_address,
            witness,
        } => coord
            .add_member(*node, raft_address.clone(), *witness)
            .await
            .map(|()| ok)
            .map_err(not_leader),
        Request::RemoveMember { node } => coord
            .remove_member(*node)
            .await
            .map(|()| ok)
            .map_err(not_leader),
        _ => Err("not a cluster request".into()),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserListEntry {
    pub user: String,
    pub in_userdb: bool,
    pub has_store: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub mailbox: String,
    pub messages: u32,
    pub unseen: u32,
    pub uidnext: u32,
    pub uidvalidity: u32,
    pub highestmodseq: u64,
    pub vsize: u64,
    pub guid: String,
}

/// Runs one request against the store. Blocking (disk): call from a blocking context.
pub fn execute(
    store: &storage::Store,
    auth: &Authenticator,
    req: &Request,
) -> Result<serde_json::Value, String> {
    let open = |user: &str| -> Result<std::sync::Arc<storage::UserStore>, String> {
        let record = auth.lookup_blocking(user)?;
        let Some(record) = record else {
            return Err(format!("User {user} doesn't exist"));
        };
        let us = store.user(&record.user).map_err(|e| e.to_string())?;
        us.set_quota_limits(record.quota);
        Ok(us)
    };
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match req {
        Request::UserList => {
            let mut users: std::collections::BTreeMap<String, UserListEntry> = Default::default();
            for name in auth.userdb_users()? {
                users.insert(
                    name.clone(),
                    UserListEntry {
                        user: name,
                        in_userdb: true,
                        has_store: false,
                    },
                );
            }
            for name in store.list_users().map_err(|e| e.to_string())? {
                users
                    .entry(name.clone())
                    .or_insert(UserListEntry {
                        user: name,
                        in_userdb: false,
                        has_store: false,
                    })
                    .has_store = true;
            }
            json(serde_json::to_value(
                users.into_values().collect::<Vec<_>>(),
            ))
        }
        Request::MailboxList { user } => {
            let us = open(user)?;
            let names: Vec<String> = us
                .list_mailboxes()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|m| m.name)
                .collect();
            json(serde_json::to_value(names))
        }
        Request::MailboxStatus { user, mailbox } => {
            let us = open(user)?;
            let boxes = match mailbox {
                // A doveadm mailbox mask: every mailbox it matches.
                Some(mask) if mask.contains(['*', '%']) => us
                    .list_mailboxes()
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|m| query::wildcard(mask, &m.name))
                    .collect(),
                Some(name) => vec![us.mailbox(name).map_err(|e| e.to_string())?],
                None => us.list_mailboxes().map_err(|e| e.to_string())?,
            };
            let out: Vec<MailboxStatus> = boxes
                .into_iter()
                .map(|m| MailboxStatus {
                    mailbox: m.name,
                    messages: m.exists,
                    unseen: m.unseen,
                    uidnext: m.uidnext,
                    uidvalidity: m.uidvalidity,
                    highestmodseq: m.highestmodseq,
                    vsize: m.size,
                    guid: m.id.to_hex(),
                })
                .collect();
            json(serde_json::to_value(out))
        }
        Request::ForceResync { user } => {
            open(user)?.rebuild_index().map_err(|e| e.to_string())?;
            Ok(serde_json::Value::Null)
        }
        Request::Purge { user } => {
            let report = open(user)?.purge().map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "objects_removed": report.objects_removed,
                "bytes_reclaimed": report.bytes_reclaimed,
            }))
        }
        Request::Sieve {
            user,
            active_path,
            script_dir,
            op,
        } => {
            let us = open(user)?;
            crate::sieve_admin::execute(&us, active_path, script_dir, op)
        }
        Request::QuotaGet { user } => json(serde_json::to_value(
            open(user)?.quota().map_err(|e| e.to_string())?,
        )),
        Request::UserLookup { user } => match auth.lookup_blocking(user)? {
            Some(rec) => json(serde_json::to_value(rec)),
            None => Err(format!("userdb lookup: user {user} doesn't exist")),
        },
        Request::AuthCacheFlush
        | Request::Penalty
        | Request::PenaltyClear { .. }
        | Request::LogReopen
        | Request::Who { .. }
        | Request::Kick { .. }
        | Request::Stats
        | Request::Clock => Err(
            "no running node answers on the admin socket: this command asks the running server \
             (start it, or pass the -c of the node that runs)"
                .into(),
        ),
        Request::MailboxCreate { .. }
        | Request::MailboxDelete { .. }
        | Request::MailboxRename { .. }
        | Request::MailboxSubscribe { .. }
        | Request::Fetch { .. }
        | Request::Search { .. }
        | Request::Expunge { .. }
        | Request::Copy { .. }
        | Request::Flags { .. }
        | Request::QuotaRecalc { .. }
        | Request::Import { .. }
        | Request::Export { .. }
        | Request::Acl { .. } => Err("a mail request: run it through mail::MailCtx".into()),
        Request::ReplicationStatus | Request::Sync { .. } => Err(
            "replication is not running here ([cluster] listen is not set, or no server is running)"
                .into(),
        ),
        Request::VrrpNotify { .. } => Err("no server is running to tell".into()),
        Request::ClusterStatus
        | Request::TransferActive { .. }
        | Request::AddMember { .. }
        | Request::RemoveMember { .. } => Err("no server is running here to ask".into()),
    }
}

impl Response {
    pub fn from_result(r: Result<serde_json::Value, String>) -> Response {
        match r {
            Ok(data) => Response {
                ok: true,
                error: None,
                data,
            },
            Err(e) => Response {
                ok: false,
                error: Some(e),
                data: serde_json::Value::Null,
            },
        }
    }
}

/// Replication requests, answered by the running replicator.
pub async fn execute_replication(
    handle: &replication::Handle,
    req: &Request,
) -> Result<serde_json::Value, String> {
    match req {
        Request::ReplicationStatus => {
            serde_json::to_value(handle.status().await).map_err(|e| e.to_string())
        }
        Request::Sync { user, peer, full } => {
            let reports = handle
                .sync_user(user, *peer, *full)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(reports).map_err(|e| e.to_string())
        }
        _ => Err("not a replication request".into()),
    }
}

impl Request {
    /// Requests that act on mail through [`mail::MailCtx`] (the protocols' write path).
    pub fn is_mail(&self) -> bool {
        matches!(
            self,
            Request::MailboxCreate { .. }
                | Request::MailboxDelete { .. }
                | Request::MailboxRename { .. }
                | Request::MailboxSubscribe { .. }
                | Request::Fetch { .. }
                | Request::Search { .. }
                | Request::Expunge { .. }
                | Request::Copy { .. }
                | Request::Flags { .. }
                | Request::QuotaRecalc { .. }
                | Request::Import { .. }
                | Request::Export { .. }
                | Request::Acl { .. }
        )
    }
}

/// The canonical name of a user the userdb knows; an error naming the user otherwise, so a
/// typo never creates a store (which would replicate to every peer). Blocking (file stat).
pub fn known_user(auth: &Authenticator, user: &str) -> Result<String, String> {
    match auth.lookup_blocking(user)? {
        Some(rec) => Ok(rec.user),
        None => Err(format!(
            "User {user} doesn't exist in the userdb (check the spelling: `node user '*'` lists \
             the users); nothing was done"
        )),
    }
}

/// The CLI's side of the admin socket.
pub struct AdminClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AdminClient {
    /// Connects when a server is running there; None when there is no socket or nobody listens
    /// (a stale socket left by a killed server).
    pub fn connect(path: &Path) -> Option<AdminClient> {
        Self::try_connect(path).ok().flatten()
    }

    /// [`AdminClient::connect`], but a socket this user may not open is an error that says
    /// so (rather than falling back to opening the store, which fails less clearly).
    pub fn try_connect(path: &Path) -> Result<Option<AdminClient>, String> {
        match UnixStream::connect(path) {
            Ok(stream) => Ok(Self::from_stream(stream)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
                "admin socket {}: permission denied: run the command as the user the node runs \
                 as (the socket is mode 0600), e.g. with sudo",
                path.display()
            )),
            Err(_) => Ok(None),
        }
    }

    fn from_stream(stream: UnixStream) -> Option<AdminClient> {
        // Long operations (a resync of a big user) may take a while; only a dead server hangs.
        stream
            .set_read_timeout(Some(Duration::from_secs(3600)))
            .ok()?;
        let writer = stream.try_clone().ok()?;
        Some(AdminClient {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn call(&mut self, req: &Request) -> Result<serde_json::Value, String> {
        let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("admin socket: {e}"))?;
        let mut answer = String::new();
        self.reader
            .read_line(&mut answer)
            .map_err(|e| format!("admin socket: {e}"))?;
        if answer.is_empty() {
            return Err("admin socket: the server closed the connection".into());
        }
        let resp: Response =
            serde_json::from_str(&answer).map_err(|e| format!("admin socket: bad answer: {e}"))?;
        if resp.ok {
            Ok(resp.data)
        } else {
            Err(resp.error.unwrap_or_else(|| "failed".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::MailboxStatus {
            user: "demo".into(),
            mailbox: Some("INBOX".into()),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"mailbox-status","user":"demo","mailbox":"INBOX"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"user-list"}"#).unwrap(),
            Request::UserList
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm-rf"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"purge"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"vrrp-notify","state":"master"}"#).unwrap(),
            Request::VrrpNotify {
                state: crate::active::VrrpState::Master
            }
        );
    }
}
