//! Sieve scripts on arbitrary bytes: compiled (lexer, parser, validator) and, when valid, run
//! against a small message; nothing may panic and the run's bounds hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sieve::fuzzing::exercise(data);
});
