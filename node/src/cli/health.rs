//! `node health [--active]`: keepalived's track_script. Exit 0 healthy (and active when asked),
//! 1 otherwise, with one line saying why.

use crate::config::Config;
use std::net::{IpAddr, SocketAddr};

pub fn run(config: &Config, active: bool) -> i32 {
    if config.http.port == 0 {
        eprintln!("node health: [http] port is 0: no health endpoint to ask");
        return 1;
    }
    let ip = match config.listen_addrs().ok().and_then(|a| a.first().copied()) {
        Some(ip) if ip.is_unspecified() => match ip {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        },
        Some(ip) => ip,
        None => IpAddr::from([127, 0, 0, 1]),
    };
    let addr = SocketAddr::new(ip, config.http.port);
    match crate::server::http::probe(addr, active) {
        Ok((200, body)) => {
            println!("{body}");
            0
        }
        Ok((status, body)) => {
            println!("{body}");
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
