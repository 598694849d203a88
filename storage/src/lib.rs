//! One node's mail store.
//!
//! The per-user change log ([`log`]) is the truth; message bodies are content-addressed objects in
//! per-user pack files ([`pack`]); the sled index ([`index`]) is a view of the log that can be
//! rebuilt from it at any time. Orderings and unique names come from the hybrid logical clock
//! ([`hlc`]).

pub mod error;
pub mod hlc;
pub mod mime;
pub mod record;
pub mod store;
pub mod types;

pub use error::{Result, StoreError};
pub use store::{NewMessage, PurgeReport, Store, StoreConfig, UserStore};
pub use types::*;
