//! The body of the `managesieve_command` fuzz target: arbitrary bytes as a stream of commands
//! and as SASL responses. Nothing may panic, every step consumes input or asks for more, and
//! what is consumed never exceeds the input.

use super::parse::{parse, parse_response, Parsed};

pub fn exercise(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        match parse(rest, 4096, 512) {
            Parsed::Incomplete => break,
            Parsed::Done(_, used) | Parsed::Bad(_, used) => {
                assert!(
                    used > 0 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                rest = &rest[used..];
            }
        }
    }
    let mut rest = data;
    while !rest.is_empty() {
        match parse_response(rest, 4096) {
            Parsed::Incomplete => break,
            Parsed::Done(_, used) | Parsed::Bad(_, used) => {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_seed_corpus_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/managesieve_command");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("seed corpus").flatten() {
            let data = std::fs::read(e.path()).expect("seed");
            for end in 0..=data.len() {
                super::exercise(&data[..end]);
            }
            n += 1;
        }
        assert!(n > 0);
    }
}
