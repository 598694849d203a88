//! The body of the `pop3_command` fuzz target (fuzz/), here so a normal test replays its seed
//! corpus: arbitrary bytes as command lines, and as a stored message rendered for RETR and TOP.
//! Nothing may panic, and what RETR sends must decode (dot-unstuffed, as a client does) back to
//! the stored message.

use super::{parse_command, render};
use crate::lmtp::{normalize_crlf, DataDecoder, DataOutcome};

/// The first byte picks TOP's line count; all of `data` is the input.
pub fn exercise(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let _ = parse_command(line);
    }

    // Stored messages are CRLF-normalised (LMTP and APPEND store them so).
    let stored = normalize_crlf(data);
    let mut expected = stored.clone();
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    let retr = render(&stored, None, false);
    assert_eq!(
        unstuff(&retr),
        expected,
        "RETR does not read back as stored"
    );

    let lines = u32::from(data.first().copied().unwrap_or(0) % 8);
    let top = unstuff(&render(&stored, Some(lines), false));
    assert!(expected.starts_with(&top), "TOP is not a prefix of RETR");

    let no_nuls = render(&stored, None, true);
    assert!(!no_nuls.contains(&0), "outlook-no-nuls left a NUL");
}

/// A multi-line response body as a client reads it: up to the `.` line, dot-unstuffed. The
/// whole of it must be consumed, ending exactly at the terminating line.
fn unstuff(response: &[u8]) -> Vec<u8> {
    let mut decoder = DataDecoder::new(u64::MAX);
    match decoder.feed(response) {
        (n, Some(DataOutcome::Complete(body))) if n == response.len() => body,
        (n, outcome) => panic!(
            "response not a single dot-terminated body: used {n} of {}, {outcome:?}",
            response.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_seed_corpus_replays() {
        let seeds = crate::lmtp::fuzzing::seeds("pop3_command");
        assert!(seeds.len() >= 4, "only {} seeds", seeds.len());
        for seed in &seeds {
            for cut in 0..=seed.len() {
                exercise(&seed[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes(data in proptest::collection::vec(proptest::sample::select(
            b"\r\n.\0aZ 1".to_vec()), 0..256)) {
            exercise(&data);
        }
    }
}
