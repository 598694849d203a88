//! Group commit, per user. A writer enqueues its request; if no leader is running it becomes the
//! leader, takes the whole queue, plans every request against the index (assigning UIDs,
//! modseqs, GUIDs, records), writes the batch's new objects to the pack and its records to the
//! log, makes both durable (one fdatasync each for the whole batch), applies the batch to the
//! index in one atomic sled batch, and wakes every writer of the batch. Writers that arrive
//! meanwhile form the next batch. No lock is shared between users.
//!
//! Below the facade ([`crate::store`]), which it never imports: [`Writer`] holds the queue and
//! the leader's files ([`WriterState`]); the leader's steps are methods on the user's
//! [`UserCore`], defined in the files below.
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | the requests, the group-commit queue ([`Writer`]) and the batch run |
//! | `plan.rs` | what every request's planning shares: stamping records, lookups, quota |
//! | `durable.rs` | writing a batch to packs and log segments, and what makes it durable |
//! | one file per kind of request | `append.rs`, `import.rs`, `attribute.rs`, `copy.rs`, `flags.rs`, `expunge.rs`, `mailbox.rs`, `defaults.rs`, `remote.rs`, `resolve.rs` |

mod append;
mod attribute;
mod copy;
mod defaults;
mod durable;
mod expunge;
mod flags;
mod import;
mod mailbox;
mod plan;
mod recover;
mod remote;
mod resolve;

pub(crate) use append::AppendReq;
pub(crate) use import::{ImportMsg, ImportReq};
pub use remote::ApplyOutcome;

use crate::error::{Result, StoreError};
use crate::index::{self, Txn};
use crate::pack::Prepared;
use crate::record::Record;
use crate::types::*;
use crate::user_core::{UserCore, WriterState};
use parking_lot::{Condvar, Mutex, MutexGuard};
use plan::{Batch, Plan};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

/// A change the facade asks for; planned by the leader in the kind's own file.
pub(crate) enum Req {
    InitDefaults,
    Append(AppendReq),
    /// Messages with the UIDs (and the mailbox with the UIDVALIDITY) of another server.
    Import(ImportReq),
    Copy {
        from: String,
        uids: Vec<u32>,
        to: String,
        mv: bool,
    },
    Flags {
        mailbox: String,
        uids: Vec<u32>,
        mode: FlagMode,
        flags: Flags,
        unchanged_since: Option<u64>,
    },
    Expunge {
        mailbox: String,
        uids: Vec<u32>,
    },
    Create {
        name: String,
        special_use: Option<SpecialUse>,
    },
    Delete {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        name: String,
        on: bool,
    },
    /// METADATA or ACL entries of a mailbox (None: the server's); a value None removes one.
    Attributes {
        mailbox: Option<String>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
    /// Records from a peer, with the objects that arrived with them (stored first, in the same
    /// batch, so records and objects share one durable write).
    Remote {
        objects: Vec<Prepared>,
        records: Vec<Record>,
        /// Objects the peer says it no longer has (purged): insertions of them that arrive
        /// without them may stay ghosts (`index::Ghost`). Any other missing object must have its
        /// message removed within the request.
        purged: HashSet<ObjectId>,
    },
    PutObject {
        object: Prepared,
    },
    Resolve {
        mailbox: String,
    },
    /// Writes `Op::AlignModseqs` (see `UserStore::align_modseqs`).
    Align {
        mailbox: MailboxId,
        modseq: u64,
        messages: Vec<Guid>,
    },
    /// Writes `Op::AlignExpunged` (see `UserStore::align_expunged`).
    AlignExpunged {
        mailbox: MailboxId,
        modseq: u64,
        uids: Vec<u32>,
    },
}

/// What a request's writer gets back once its batch is durable.
pub(crate) enum Reply {
    Unit,
    Append(AppendOutcome),
    Import(ImportOutcome),
    Copy(CopyOutcome),
    Store(StoreOutcome),
    Expunged(Vec<u32>),
    Mailbox(MailboxInfo),
    Applied(ApplyOutcome),
    Object(ObjectId),
    Resolved(Option<Record>),
    Aligned(Option<u64>),
}

/// Requests waiting for a leader, and replies waiting for their writers (by request id).
#[derive(Default)]
struct Queue {
    next: u64,
    pending: Vec<(u64, Req)>,
    done: HashMap<u64, Result<Reply>>,
    leader: bool,
}

/// One user's group commit: the queue of waiting requests and the leader's files.
pub(crate) struct Writer {
    queue: Mutex<Queue>,
    cond: Condvar,
    state: Mutex<WriterState>,
}

/// The mailboxes a new user starts with, each subscribed (see `defaults.rs`).
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Sent", Some(SpecialUse::Sent)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// Default mailboxes have the same GUID on every node, so two nodes that each created a user's
/// INBOX agree it is one mailbox when they replicate.
pub fn default_mailbox_guid(user: &str, name: &str) -> Guid {
    let h = blake3::hash(format!("default-mailbox\0{user}\0{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    Guid(b)
}

impl Writer {
    /// A writer over the files recovery opened.
    pub(crate) fn new(state: WriterState) -> Writer {
        Writer {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            state: Mutex::new(state),
        }
    }

    /// The leader's files, for purge and rebuild: holding them keeps every batch out.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock()
    }

    /// Queues `req` and returns its reply once its batch is durable (or refused): the first
    /// waiter that finds no leader running becomes the leader and runs the whole queue as one
    /// batch; the others sleep until their reply is there.
    pub(crate) fn submit(&self, core: &UserCore, req: Req) -> Result<Reply> {
        let mut q = self.queue.lock();
        let id = q.next;
        q.next += 1;
        q.pending.push((id, req));
        loop {
            if let Some(r) = q.done.remove(&id) {
                return r;
            }
            if !q.leader && !q.pending.is_empty() {
                q.leader = true;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let ids: Vec<u64> = batch.iter().map(|(i, _)| *i).collect();
                let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut ws = self.state.lock();
                    core.run_batch(&mut ws, batch)
                }))
                .unwrap_or_else(|_| {
                    self.state.lock().poisoned = Some("writer panicked".into());
                    ids.iter()
                        .map(|i| {
                            (
                                *i,
                                Err(StoreError::Other("internal error in the writer".into())),
                            )
                        })
                        .collect()
                });
                q = self.queue.lock();
                q.leader = false;
                q.done.extend(results);
                self.cond.notify_all();
                continue;
            }
            self.cond.wait(&mut q);
        }
    }
}

impl UserCore {
    /// Runs one batch as the leader: plans every request, writes the batch durably, applies
    /// it to the index; returns each request's reply.
    fn run_batch(&self, ws: &mut WriterState, reqs: Vec<(u64, Req)>) -> Vec<(u64, Result<Reply>)> {
        if ws.poisoned.is_some() && !self.recover(ws) {
            let p = ws.poisoned.as_deref().unwrap_or_default();
            let msg = format!(
                "user {} store is failed ({p}); writes resume once it recovers (a full disk \
                 freed, an I/O error gone)",
                self.name
            );
            return reqs
                .into_iter()
                .map(|(i, _)| (i, Err(StoreError::Other(msg.clone()))))
                .collect();
        }
        let mut tx = Txn::new(&self.name, &self.ix);
        let mut meta = ws.meta.clone();
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(reqs.len());
        for (id, req) in reqs {
            let sp = tx.savepoint();
            let meta_sp = meta.clone();
            let (nrec, nobj, nbefore) =
                (batch.records.len(), batch.objects.len(), batch.before.len());
            let r = self.plan(
                &mut Plan {
                    tx: &mut tx,
                    meta: &mut meta,
                    b: &mut batch,
                },
                req,
            );
            if r.is_err() {
                tx.rollback(sp);
                meta = meta_sp;
                batch.records.truncate(nrec);
                batch.encoded.truncate(nrec);
                batch.before.truncate(nbefore);
                for o in batch.objects.drain(nobj..) {
                    batch.new_objects.remove(&o.id);
                }
            }
            out.push((id, r));
        }
        if batch.records.is_empty() && batch.objects.is_empty() {
            if !tx.is_empty() {
                if let Err(e) = self.tree_apply(tx) {
                    return fail_all(out, e);
                }
            }
            return out;
        }
        if let Err(e) = self.check_free_space(&batch) {
            // Nothing written: not a failure of the store, nothing to recover.
            tracing::warn!(user = %self.name, error = %e, "write refused");
            return fail_all(out, e);
        }
        if let Err(e) = self.write_durably(ws, &mut tx, &mut meta, &batch) {
            tracing::error!(user = %self.name, error = %e, "store write failed; user store stops accepting writes");
            ws.poisoned = Some(e.to_string());
            return fail_all(out, e);
        }
        // The batch is durable: from here on it is acknowledged. The index is a view and may lag.
        // Readers do not see its own records until a peer holds them (`replicated` durability).
        self.unconfirmed.push(std::mem::take(&mut batch.before));
        tx.put(index::META.to_vec(), &meta);
        let committed = self.tree_apply(tx);
        ws.meta = meta;
        {
            let mut recent = self.recent.lock();
            recent.push(&batch.records);
            for o in &batch.objects {
                recent.push_object(o);
            }
        }
        let c = &self.shared.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.records
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        if let Err(e) = committed {
            self.shared.index_write_failed(&e);
            // The log has it; the index will catch up from the log at the next open.
            tracing::error!(user = %self.name, error = %e, "index update failed after a durable write");
            ws.poisoned = Some(e.to_string());
        }
        self.notify_changed();
        out
    }

    /// Hands a commit's index changes to the overlay (sled gets them with the next flush).
    fn tree_apply(&self, tx: Txn) -> Result<()> {
        self.ix.commit(tx.into_changes())
    }

    /// Plans one request into the batch: the kind's own file says how.
    fn plan(&self, p: &mut Plan, req: Req) -> Result<Reply> {
        match req {
            Req::InitDefaults => self.init_defaults(p),
            Req::Append(a) => self.plan_append(p, a),
            Req::Import(i) => self.plan_import(p, i),
            Req::Copy { from, uids, to, mv } => self.plan_copy(p, from, uids, to, mv),
            Req::Flags {
                mailbox,
                uids,
                mode,
                flags,
                unchanged_since,
            } => self.plan_flags(p, mailbox, uids, mode, flags, unchanged_since),
            Req::Expunge { mailbox, uids } => self.plan_expunge(p, mailbox, uids),
            Req::Create { name, special_use } => self.plan_create(p, name, special_use),
            Req::Delete { name } => self.plan_delete(p, name),
            Req::Rename { from, to } => self.plan_rename(p, from, to),
            Req::Subscribe { name, on } => self.plan_subscribe(p, name, on),
            Req::Attributes { mailbox, entries } => self.plan_attributes(p, mailbox, entries),
            Req::PutObject { object } => self.plan_put_object(p, object),
            Req::Remote {
                objects,
                records,
                purged,
            } => self.plan_remote(p, objects, records, purged),
            Req::Resolve { mailbox } => self.plan_resolve(p, mailbox),
            Req::Align {
                mailbox,
                modseq,
                messages,
            } => self.plan_align(p, mailbox, modseq, messages),
            Req::AlignExpunged {
                mailbox,
                modseq,
                uids,
            } => self.plan_align_expunged(p, mailbox, modseq, uids),
        }
    }
}

fn fail_all(out: Vec<(u64, Result<Reply>)>, e: StoreError) -> Vec<(u64, Result<Reply>)> {
    let msg = e.to_string();
    out.into_iter()
        .map(|(i, r)| match r {
            // A full disk stays recognisable (clients get a temporary "no space" answer).
            Ok(_) => match &e {
                StoreError::DiskFull(why) => (i, Err(StoreError::DiskFull(why.clone()))),
                _ => (i, Err(StoreError::Other(format!("write failed: {msg}")))),
            },
            Err(e) => (i, Err(e)),
        })
        .collect()
}
