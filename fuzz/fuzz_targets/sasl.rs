//! SASL exchanges of every mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-256; with
//! and without an initial response; against each kind of passdb answer) and the PLAIN, SCRAM,
//! CRAM-MD5 and Dovecot stored-secret parsers on arbitrary bytes: nothing may panic, an ended
//! exchange stays ended, no random proof is accepted, a decoded PLAIN message re-encodes to its
//! bytes and its Debug form never shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::sasl::fuzzing::exercise(data);
});
