//! The body of the `imap_command` fuzz target, here so a normal test runs it too: arbitrary
//! bytes through the framer (as one stream, in arbitrary chunks) and every framed command
//! through the parser, the tokenizer and the mailbox-name decoder, SEARCHRES's `$`
//! expansion, SAVEDATE's search-key rewrite, the IMAP URL parser and THREAD's header readers. Nothing may panic, and the
//! framer's buffer stays bounded.

use super::framing::{Frame, Framer};

pub fn exercise(data: &[u8]) {
    let mut framer = Framer::new(1024, 4096);
    // The first byte picks a chunk size, so reads split commands at many different places.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(chunk) {
        framer.push(piece);
        while let Some(frame) = framer.next_frame() {
            if let Frame::Command(msg) = frame {
                let _ = super::parse::parse(&msg);
                let _ = super::lexer::tokenize(&msg);
                let _ = super::mutf7::decode(&msg);
                // CATENATE's IMAP URLs.
                let _ = super::url::parse(&String::from_utf8_lossy(&msg));
                // THREAD's reading of message headers (client-made, via APPEND).
                let _ = super::commands::thread::msg_ids(&msg);
                let _ = super::commands::thread::header_value(&msg, b"references");
                // SAVEDATE's search keys written as keys imap-codec knows.
                if let Ok(Some(m)) = super::savedate::rewrite(&msg) {
                    let _ = super::parse::parse(&m);
                }
                // SEARCHRES: `$` written out, then parsed like any command.
                let saved = [1, 5, 9];
                let seq_of = |u: u32| u.checked_sub(1);
                if let Some(m) = super::searchres::substitute(&msg, &saved, &seq_of) {
                    let _ = super::parse::parse(&m);
                }
            }
        }
        assert!(
            framer.buffered() <= 1024 + chunk + 2,
            "framer buffer unbounded"
        );
    }
    while let Some(Ok(line)) = framer.next_raw_line() {
        let _ = super::parse::parse(&line);
    }
}

#[cfg(test)]
mod tests {
    /// Runs the fuzz body over the committed seed corpus and random mutations of it.
    #[test]
    fn corpus_and_mutations_do_not_panic() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/imap_command");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !seeds.is_empty(),
            "seed corpus missing at {}",
            dir.display()
        );
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for s in seeds.clone() {
            super::exercise(&s);
            for _ in 0..200 {
                let mut m = s.clone();
                for _ in 0..1 + next() % 6 {
                    let at = (next() as usize) % (m.len() + 1);
                    match next() % 3 {
                        0 => m.insert(at, next() as u8),
                        1 if at < m.len() => {
                            m.remove(at);
                        }
                        _ => m.truncate(at),
                    }
                }
                super::exercise(&m);
                seeds.push(m);
            }
        }
    }
}
