//! The body of the `sieve_script` fuzz target (fuzz/), here so a normal test replays its seed
//! corpus: arbitrary bytes as a script (lexer, parser, validator, with errors that point inside
//! the script) and, when it compiles, run against a small message (the bounds hold, nothing
//! panics).

use crate::{Compiler, Config, Envelope, Message, NoHost, Runtime};

const MESSAGE: &[u8] = b"From: A <a@example.org>\r\nTo: b+x@example.com\r\nSubject: =?utf-8?q?h=C3=A9?=\r\nDate: Tue, 1 Jan 2008 14:05:06 +0100\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nbody\r\n--q--\r\n";

pub fn exercise(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let compiler = Compiler::new();
    // The same text compiled as every script it includes: include chains, cycles and the
    // include limits end in errors, never in a loop or a panic.
    let mut as_every_include = |_: bool, _: &str| Ok(Some(src.to_string()));
    let _ = compiler.compile_with_includes(&src, &mut as_every_include);
    let script = match compiler.compile(&src) {
        Ok(s) => s,
        Err(e) => {
            let lines = src.lines().count() as u32 + 1;
            for err in e.errors {
                assert!(
                    err.line >= 1 && err.line <= lines,
                    "error line {} of {lines}",
                    err.line
                );
            }
            return;
        }
    };
    let env = Envelope {
        from: "a@example.org".into(),
        to: "b+x@example.com".into(),
        auth: None,
    };
    let config = Config::default();
    let limits = config.limits.clone();
    let mut rt = Runtime::new(compiler, config, Message::parse(MESSAGE), env);
    let _ = rt.run(&mut NoHost, &script);
    let result = rt.result();
    assert!(
        result.len() <= limits.max_actions + 1,
        "action limit broken"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_seed_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sieve_script");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("seed corpus").flatten() {
            let data = std::fs::read(e.path()).expect("seed");
            for end in 0..=data.len() {
                super::exercise(&data[..end]);
            }
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }

    /// Seeds with bytes replaced, inserted and removed (a fixed pseudo-random sequence).
    #[test]
    fn mutations_do_not_panic() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sieve_script");
        let alphabet = b"\"[]{}(),;:*?\\$ \r\n#/azAZ09.@-+%\xc3\xa9\xff";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for e in std::fs::read_dir(&dir).expect("seed corpus").flatten() {
            let seed = std::fs::read(e.path()).expect("seed");
            for _ in 0..400 {
                let mut d = seed.clone();
                for _ in 0..(next() % 8 + 1) {
                    let at = (next() as usize) % (d.len() + 1);
                    let b = alphabet[(next() as usize) % alphabet.len()];
                    match next() % 3 {
                        0 if at < d.len() => d[at] = b,
                        1 => d.insert(at, b),
                        _ if at < d.len() => {
                            d.remove(at);
                        }
                        _ => {}
                    }
                }
                super::exercise(&d);
            }
        }
    }
}
