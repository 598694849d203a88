//! parse_facts on arbitrary bytes, then every FETCH view of the result (ENVELOPE, BODY,
//! BODYSTRUCTURE, each part's sections, BINARY) and a content SEARCH: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::imap::message::exercise(data);
});
