//! SASL PLAIN and LOGIN exchanges (with and without an initial response) and PLAIN message
//! decoding on arbitrary bytes: nothing may panic, an ended exchange stays ended, a decoded
//! PLAIN message re-encodes to its bytes and its Debug form never shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::sasl::fuzzing::exercise(data);
});
