//! `node health [--active]`: keepalived's track_script. Exit 0 healthy (and active when asked),
//! 1 otherwise, with one line saying why.

use crate::config::Config;
use std::net::IpAddr;

pub fn run(config: &Config, active: bool) -> i32 {
    if config.http.port == 0 {
        eprintln!("node health: [http] port is 0: no health endpoint to ask");
        return 1;
    }
    let Ok(mut addr) = config.http_addr() else {
        eprintln!("node health: [http] listen is not an address");
        return 1;
    };
    // A wildcard listener is asked on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        });
    }
    match crate::server::http::probe(addr, active) {
        Ok((200, body)) => {
            outln!("{body}");
            0
        }
        Ok((status, body)) => {
            outln!("{body}");
            eprintln!(
                "node health: {addr} answered {status}{}",
                if active { " (not the active node)" } else { "" }
            );
            1
        }
        Err(e) => {
            eprintln!("node health: no answer: {e}");
            1
        }
    }
}
