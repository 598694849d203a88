//! ManageSieve (RFC 5804): users upload, check, list and activate their Sieve scripts (port
//! 4190). STARTTLS, AUTHENTICATE with the node's passdbs (SASL PLAIN and LOGIN), and the
//! script commands, with quotas on script count, size and total storage. Scripts are files in
//! Pigeonhole's layout ([`storage`]), where delivery finds the active one.

/// The `managesieve_command` fuzz target's body (fuzz/), replayed over its seeds in the tests.
pub mod attrs;
pub mod fuzzing;
pub mod parse;
mod proxy;
mod scripts;
mod session;
pub mod storage;
#[cfg(test)]
mod tests;

use crate::backend::{Backend, ConnInfo};
use crate::sasl::Mechanism;
use crate::stream::{BoxStream, TlsUpgrade};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct ManageSieveConfig {
    pub login_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_bad_commands: u32,
    pub max_auth_failures: u32,
    pub auth_mechanisms: Vec<String>,
    /// The `sieve` (active link) and `sieve_dir` (scripts) path templates, as delivery has them.
    pub active_path: String,
    pub script_dir: String,
    /// `sieve_quota_max_scripts` (0 = no limit), `sieve_quota_max_storage` (bytes, 0 = no
    /// limit) and `sieve_max_script_size`.
    pub max_scripts: usize,
    pub max_storage: u64,
    pub max_script_size: u64,
    pub max_redirects: usize,
    pub max_line_length: usize,
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        ManageSieveConfig {
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            max_bad_commands: 20,
            max_auth_failures: 3,
            auth_mechanisms: vec!["plain".into(), "login".into()],
            active_path: "~/.dovecot.sieve".into(),
            script_dir: "~/sieve".into(),
            max_scripts: 100,
            max_storage: 10 << 20,
            max_script_size: 1 << 20,
            max_redirects: 4,
            max_line_length: 8192,
        }
    }
}

impl ManageSieveConfig {
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        Mechanism::select(&self.auth_mechanisms)
    }
}

pub struct ManageSieveContext {
    pub backend: Arc<dyn Backend>,
    pub tls: Option<Arc<dyn TlsUpgrade>>,
    pub config: ManageSieveConfig,
    pub shutdown: CancellationToken,
}

/// Runs one ManageSieve session to its end. Never panics on input.
pub async fn serve(stream: BoxStream, conn: ConnInfo, ctx: Arc<ManageSieveContext>) {
    session::run(stream, conn, ctx).await
}
