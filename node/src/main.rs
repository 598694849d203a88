//! `node`: the mail node's binary: the server (`node serve`) and its doveadm-like admin CLI.

mod active;
mod admin;
mod auth;
mod backend;
mod cli;
mod cluster;
mod config;
mod keepalived_gate;
mod lab;
mod logging;
mod migrate;
mod proxy;
mod raft;
mod server;
mod sessions;
mod sieve_admin;
mod tls;

use clap::Parser as _;

fn main() {
    // Started by a checkpassword program as its reply program (Dovecot's checkpassword-reply).
    if std::env::var_os(auth::db::checkpassword::REPLY_ENV).is_some() {
        std::process::exit(auth::db::checkpassword::reply_main());
    }
    let cli = cli::Cli::parse();
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The whole chain: "cannot open the store in ./data: <why>".
            eprintln!("node: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
