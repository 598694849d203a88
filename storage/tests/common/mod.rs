#![allow(dead_code)]
use std::sync::Arc;
use storage::*;

pub fn config(root: &std::path::Path) -> StoreConfig {
    StoreConfig::new(root)
}

pub fn open(root: &std::path::Path) -> Arc<Store> {
    Store::open(config(root)).unwrap()
}

pub fn msg(i: usize) -> Vec<u8> {
    format!(
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: test {i}\r\nMessage-ID: <{i}@x>\r\n\r\nbody {i}\r\n"
    )
    .into_bytes()
}

pub fn append(u: &UserStore, mailbox: &str, raw: &[u8]) -> AppendOutcome {
    u.append(
        mailbox,
        NewMessage {
            raw,
            flags: Flags::new(),
            internal_date: None,
            delivery_key: None,
        },
    )
    .unwrap()
}

pub fn flags(names: &[&str]) -> Flags {
    names.iter().map(|n| Flag::from_imap(n)).collect()
}
