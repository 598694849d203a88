//! `node`: the mail node's binary (server and admin CLI).

mod auth;
mod config;
mod tls;

fn main() {}
