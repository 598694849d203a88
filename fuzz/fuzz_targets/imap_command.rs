//! IMAP command framing and parsing on arbitrary bytes: the framer, imap-codec plus the
//! hand-written grammars, the tokenizer and the modified UTF-7 decoder. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    protocols::imap::fuzzing::exercise(data);
});
