//! ManageSieve command and SASL response parsing on arbitrary bytes: nothing may panic and
//! every step consumes what it says.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::managesieve::fuzzing::exercise(data);
});
