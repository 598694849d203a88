//! The merge rules: how a change from any node (this one or a peer) combines with what this
//! node already holds. Every rule is a function of (local state, incoming change) alone, never
//! of arrival order, so two nodes that applied the same set of records hold the same index
//! (invariant 5). The index ([`crate::index`]) applies them record by record; replication
//! decides when records travel and when the resolver runs; neither writes a rule of its own.
//!
//! | rule | where | invariant |
//! |---|---|---|
//! | a peer's record is checked before anything of it is applied | [`validate`] | 7 |
//! | flags: last writer wins per flag, by HLC time | [`flags`] | 5 |
//! | an expunge beats a flag change (a change to a gone message is dropped) | [`flags`] | 5 |
//! | a UID taken by another message parks the newcomer until renumbered | [`uids`] | 2 |
//! | the resolver renumbers every contested message past UIDNEXT | [`uids`] | 2 |
//! | a mailbox's name: latest rename wins, else earliest create; clashes get a suffix | [`names`] | 5 |
//! | the same mailbox created twice: the earliest creation's UIDVALIDITY everywhere | [`mailboxes`] | 2, 5 |
//! | a mailbox delete is final: a late create of that GUID is ignored | [`mailboxes`] | 5 |
//! | modseqs only grow; aligned ones land above everything shown | [`modseqs`] | 3 |
//! | attributes (METADATA, ACL): last writer wins per key, removals too | [`attributes`] | 5 |

pub mod attributes;
pub mod flags;
pub mod mailboxes;
pub mod modseqs;
pub mod names;
pub mod uids;
pub mod validate;

pub use validate::{validate_peer_record, PeerRecordError};
