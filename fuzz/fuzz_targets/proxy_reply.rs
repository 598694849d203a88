//! A proxy backend's replies: arbitrary bytes, in arbitrary chunks, through the reply-line
//! splitter and the IMAP, POP3, ManageSieve and LMTP login/forward machines. Nothing may
//! panic, nothing sent to the backend carries a stray line break, every LMTP recipient ends
//! with one reply.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::proxy::fuzzing::exercise(data);
});
