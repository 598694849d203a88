//! `node import --format mbox`'s parser (node/src/migrate/mbox_parse.rs) on arbitrary bytes.
//! Nothing may panic; a parsed message is never longer than the input, and the dates read
//! from `From ` lines are real dates.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../node/src/migrate/mbox_parse.rs"]
#[allow(dead_code)]
mod mbox_parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = mbox_parse::parse(data) {
        for msg in &m.messages {
            assert!(msg.raw.len() <= data.len());
            if let Some(d) = msg.date {
                assert!(d >= 0);
            }
        }
    }
    let _ = mbox_parse::parse_from_date(&String::from_utf8_lossy(data));
});
