//! Time to filter one message with a typical five-rule script (parse the message, run the
//! compiled script, collect the actions), against doing nothing: run with
//! `cargo run --release -p sieve --example bench [iterations]`.

use sieve::{Compiler, Config, Envelope, Message, NoHost, Runtime};
use std::time::Instant;

const SCRIPT: &str = r#"require ["fileinto", "imap4flags", "envelope", "subaddress", "variables"];
if header :contains "list-id" "announce" { fileinto "Lists"; stop; }
if address :domain :is "from" "spam.example" { discard; stop; }
if header :contains "subject" ["[SPAM]", "***SPAM***"] { fileinto "Junk"; stop; }
if envelope :detail "to" "news" { fileinto "News"; stop; }
if header :matches "subject" "*urgent*" { addflag "\\Flagged"; }
"#;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let body = "Some text of a typical message body.\r\n".repeat(50);
    let msg = format!(
        "Return-Path: <sender@example.net>\r\nDelivered-To: demo@example.org\r\n\
         Received: from mx.example.net by mx.example.org; Tue, 1 Jan 2008 14:05:06 +0100\r\n\
         From: Sender <sender@example.net>\r\nTo: demo@example.org\r\nSubject: report 1\r\n\
         Date: Tue, 1 Jan 2008 14:05:06 +0100\r\nMessage-ID: <bench-1@example.net>\r\n\r\n{body}"
    );
    let compiler = Compiler::new();
    let t = Instant::now();
    let script = compiler.compile(SCRIPT).expect("compiles");
    let compile_us = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    let mut kept = 0;
    for _ in 0..n {
        let env = Envelope {
            from: "sender@example.net".into(),
            to: "demo@example.org".into(),
            auth: None,
        };
        let mut rt = Runtime::new(
            compiler.clone(),
            Config::default(),
            Message::parse(msg.as_bytes()),
            env,
        );
        rt.run(&mut NoHost, &script).expect("runs");
        kept += rt.result().len();
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    assert_eq!(kept, n as usize);
    println!(
        "compile: {compile_us:.0} us once; filter one {}-byte message: {per:.1} us ({n} runs)",
        msg.len()
    );
}
