//! The index: a view of the change log in sled, one tree per user, behind the narrow
//! [`IndexTree`] trait. [`apply()`] is the only code that turns records into index state, so the
//! live index and one rebuilt from the log are the same by construction (tests compare dumps);
//! the rules it applies when changes meet are in [`crate::merge`].
//!
//! Writes are staged in a [`Txn`] overlay and land in one atomic sled batch per group commit,
//! after the log is durable. sled is never flushed on the write path: after a crash it may lag
//! the log, and the [`Meta`] checkpoint written in the same batch says where to catch up from.
//!
//! | file | holds |
//! |---|---|
//! | `tree.rs` | the key-value trait, sled and the in-memory overlay of recent commits |
//! | `keys.rs` | the key schema |
//! | `values.rs` | the stored value types |
//! | `txn.rs` | staged changes with savepoints, typed reads, the value codec |
//! | `apply/` | one record into the index, a file per kind of change |

mod apply;
mod keys;
mod tree;
mod txn;
mod values;

pub use apply::{apply, tombstones, Effects};
pub use keys::*;
pub use tree::{EmptyTree, IndexTree, Overlaid, INDEX_FLUSH_COMMITS, INDEX_FLUSH_KEYS};
pub use txn::{decode, encode, hex, Txn};
pub use values::*;
