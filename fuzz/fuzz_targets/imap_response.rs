//! `node import imap://`'s response reader (node/src/migrate/imap_resp.rs) on arbitrary
//! server bytes, fed in two pieces: nothing may panic, a literal is never larger than the
//! limit or the input, and every framed response parses or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../node/src/migrate/imap_resp.rs"]
#[allow(dead_code)]
mod imap_resp;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut f = imap_resp::Framer::new(4096);
    for piece in [a, b] {
        f.feed(piece);
        loop {
            match f.next_frame() {
                Ok(Some(frame)) => {
                    for l in &frame.literals {
                        assert!(l.len() <= 4096 && l.len() <= data.len());
                    }
                    if let Ok(imap_resp::Response::Fetch(item)) = imap_resp::parse(&frame) {
                        assert!(item.uid != Some(0));
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = imap_resp::parse_date_time(&String::from_utf8_lossy(data));
});
