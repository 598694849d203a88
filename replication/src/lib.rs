//! Replication between the nodes of a cluster: a mutual-TLS peer transport, continuous shipping of
//! each user's change log (with the message objects it needs), idempotent apply on the receiving
//! side, merge policy for conflicts, on-demand `node sync`, and status for operators.

pub mod certs;
pub mod conn;
pub mod error;
pub mod tls;
pub mod validate;
pub mod wire;

pub use error::{ReplError, Result};
