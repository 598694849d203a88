//! The body of the `lmtp_command` fuzz target (fuzz/), here so a normal test replays its seed
//! corpus: arbitrary bytes as command lines (parser, recipient detail split) and as a DATA or
//! BDAT body (the end-of-data decoder, fed whole and in chunks, and CRLF normalisation).
//! Nothing may panic, and the decoder's result may not depend on how reads split the input.

use super::{normalize_crlf, parse_command, split_detail, Command, DataDecoder, DataOutcome};

/// The first byte picks the chunk size, the second the message size limit; all of `data`
/// (those two bytes included) is the input, so seeds stay readable text.
pub fn exercise(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let max_size = u64::from(data.get(1).copied().unwrap_or(0)) * 16;

    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(Command::RcptTo(addr)) = parse_command(line) {
            let _ = split_detail(&addr, "+-");
        }
    }

    // Like the session: decode one body, then the rest of the input is the next transaction's.
    let mut rest = data;
    while !rest.is_empty() {
        let (used, whole) = decode(rest, rest.len(), max_size);
        let (used_chunked, chunked) = decode(rest, chunk, max_size);
        assert_eq!(used, used_chunked, "consumed bytes depend on read sizes");
        assert_eq!(whole, chunked, "decoded body depends on read sizes");
        assert!(used > 0 && used <= rest.len());
        match whole {
            Some(DataOutcome::Complete(body)) => {
                assert!(body.len() as u64 <= max_size, "body over the limit kept");
                assert_crlf_only(&body);
            }
            Some(DataOutcome::TooLarge { size }) => assert!(size > max_size),
            None => assert_eq!(used, rest.len()),
        }
        rest = &rest[used..];
    }

    let normal = normalize_crlf(data);
    assert_crlf_only(&normal);
    let bare = data
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
        .count();
    assert_eq!(normal.len(), data.len() + bare);
    assert_eq!(
        normalize_crlf(&normal),
        normal,
        "normalising twice changes it"
    );
}

/// Feeds `input` in pieces of `chunk` bytes until the end of data.
fn decode(input: &[u8], chunk: usize, max_size: u64) -> (usize, Option<DataOutcome>) {
    let mut decoder = DataDecoder::new(max_size);
    let mut used = 0;
    for piece in input.chunks(chunk) {
        let (n, outcome) = decoder.feed(piece);
        used += n;
        if outcome.is_some() {
            return (used, outcome);
        }
        assert_eq!(n, piece.len(), "input left over without an end of data");
    }
    (used, None)
}

/// Every LF is part of a CRLF: what the store keeps and what POP3/IMAP send back.
fn assert_crlf_only(body: &[u8]) {
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r', "bare LF at {i}");
        }
    }
}

/// The committed seeds (`seed-*`) of a fuzz target's corpus; a running fuzzer adds other files.
#[cfg(test)]
pub(crate) fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = entry.expect("corpus entry").path();
        let is_seed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"));
        if is_seed {
            seeds.push(std::fs::read(&path).expect("corpus file"));
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_seed_corpus_replays() {
        let seeds = seeds("lmtp_command");
        assert!(seeds.len() >= 4, "only {} seeds", seeds.len());
        for seed in &seeds {
            // Every prefix too: a body cut off anywhere.
            for cut in 0..=seed.len() {
                exercise(&seed[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_bytes(data in proptest::collection::vec(proptest::sample::select(
            b"\r\n.\0aZ< >:+@".to_vec()), 0..256)) {
            exercise(&data);
        }
    }
}
