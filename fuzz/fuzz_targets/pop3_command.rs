//! POP3 command lines on arbitrary bytes, and the bytes as a stored message rendered for RETR
//! and TOP: nothing may panic, and RETR must read back (dot-unstuffed) as the stored message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::pop3::fuzzing::exercise(data);
});
