//! LMTP command lines (parser, recipient detail split) and DATA/BDAT bodies (the end-of-data
//! decoder, whole and in chunks, and CRLF normalisation) on arbitrary bytes: nothing may panic,
//! and the decoded body may not depend on how reads split the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::lmtp::fuzzing::exercise(data);
});
