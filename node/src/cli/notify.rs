//! `node notify master|backup|fault|stop`: keepalived's notify scripts. Logs the transition
//! and tells the running node over its admin socket, which logs it and shows it in `/health`.

use crate::active::VrrpState;
use crate::admin::{AdminClient, Request};
use crate::config::Config;

pub fn run(config: &Config, state: VrrpState) -> i32 {
    tracing::info!(target: "vrrp", "keepalived notify: {}", state.as_str());
    let path = config.admin_socket_path();
    let Some(mut client) = AdminClient::connect(&path) else {
        tracing::warn!(
            target: "vrrp",
            "keepalived notify {}: no running node answers on {} (transition logged here only)",
            state.as_str(),
            path.display()
        );
        return 1;
    };
    match client.call(&Request::VrrpNotify { state }) {
        Ok(_) => 0,
        Err(e) => {
            tracing::warn!(target: "vrrp", "keepalived notify {}: the node refused: {e}", state.as_str());
            1
        }
    }
}
