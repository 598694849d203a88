//! One node's mail store.
//!
//! The per-user change log ([`log`]) is the truth; message bodies are content-addressed objects in
//! per-user pack files ([`pack`]); the sled index ([`index`]) is a view of the log that can be
//! rebuilt from it at any time. Orderings and unique names come from the hybrid logical clock
//! ([`hlc`]).
//!
//! Layout, top down (a module uses only those in its row or below; the links between the upper
//! rows' modules that are only in documentation aside):
//!
//! | layer | modules |
//! |---|---|
//! | the public facade | [`store`]: `Store` (one per node) and `UserStore` (one per user) |
//! | one user's work | `writer` (group commit), `purge`, `recovery` (open after a crash) |
//! | one user's shared state | `user_core` (`UserCore`, `WriterState`); `recent` (in-memory log tail) |
//! | the node's shared state | `shared` (`StoreConfig`, clock, counters) |
//! | the merge rules and the index | [`merge`], [`index`] (sled view of the log; `index::apply`) |
//! | files and formats | [`log`], [`pack`], [`framed`], [`record`], [`mime`] (parsed facts) |
//! | plain values | [`types`], [`names`], [`hlc`], [`error`], [`low_priority`] |

pub mod disk;
pub mod error;
pub mod framed;
pub mod hlc;
pub mod index;
pub mod log;
pub mod low_priority;
pub mod merge;
pub mod mime;
pub mod names;
pub mod pack;
mod purge;
mod recent;
pub mod record;
mod recovery;
mod shared;
pub mod store;
pub mod types;
pub use unconfirmed::VisibleLimit;
mod unconfirmed;
mod user_core;
mod writer;

pub use error::{Result, StoreError};
pub use shared::DEFAULT_MIN_FREE;
pub use store::Tombstone;
pub use store::{
    ApplyOutcome, Counters, ImportMessage, NewMessage, PurgeReport, Store, StoreConfig,
    UidConflict, UserStore,
};
pub use types::*;
