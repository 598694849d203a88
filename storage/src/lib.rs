//! One node's mail store.
//!
//! The per-user change log ([`log`]) is the truth; message bodies are content-addressed objects in
//! per-user pack files ([`pack`]); the sled index ([`index`]) is a view of the log that can be
//! rebuilt from it at any time. Orderings and unique names come from the hybrid logical clock
//! ([`hlc`]).

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
mod user_core;
mod writer;

pub use error::{Result, StoreError};
pub use store::Tombstone;
pub use store::{
    ApplyOutcome, Counters, NewMessage, PurgeReport, Store, StoreConfig, UidConflict, UserStore,
};
pub use types::*;
