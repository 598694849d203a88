//! The DATA body decoder (RFC 5321 4.5.2, RFC 2033): finds the end of data, removes dot-stuffing
//! and normalises bare LF to CRLF, incrementally over whatever the socket delivered.
//!
//! The end of data is ONLY `CRLF . CRLF` (the CRLF before the dot may be the one that ended the
//! DATA command line). `LF . LF`, `CRLF . LF` and `LF . CRLF` are message text: accepting any of
//! them as an end is the SMTP-smuggling hole, where a second message hides inside the first.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line; `crlf` when the previous line ended with CRLF (only such a line
    /// can be the terminating dot line).
    LineStart { crlf: bool },
    /// Inside a line.
    Text,
    /// Inside a line, after a CR not yet written (it may start a CRLF).
    TextCr,
    /// A dot at the start of a line, not yet written.
    Dot { crlf: bool },
    /// `.` CR at the start of a CRLF line: the end if LF follows.
    DotCr,
}

/// Decodes one DATA body. Feed it input until [`DataDecoder::feed`] reports the end.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    body: Vec<u8>,
    /// Decoded size, counted even after the limit is passed.
    size: u64,
    max_size: u64,
}

/// The decoded body, or how big it would have been when over the limit.
#[derive(Debug, PartialEq, Eq)]
pub enum DataOutcome {
    Complete(Vec<u8>),
    TooLarge { size: u64 },
}

impl DataDecoder {
    /// `max_size` bounds what is kept in memory; the rest of a too-large body is read and dropped.
    pub fn new(max_size: u64) -> DataDecoder {
        DataDecoder {
            state: State::LineStart { crlf: true },
            body: Vec::new(),
            size: 0,
            max_size,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size <= self.max_size {
            self.body.extend_from_slice(bytes);
        } else if !self.body.is_empty() {
            self.body = Vec::new();
        }
    }

    /// Consumes input up to and including the end-of-data line if present. Returns how many bytes
    /// were consumed and, at the end, the outcome; the bytes after it are the next commands.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<DataOutcome>) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Fast path: copy the run of ordinary bytes at once.
                let run = input[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(input.len() - i);
                if run > 0 {
                    self.emit(&input[i..i + run]);
                    i += run;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            if self.step(b) {
                return (i, Some(self.finish()));
            }
        }
        (i, None)
    }

    /// One byte; true at the end of data.
    fn step(&mut self, b: u8) -> bool {
        self.state = match (self.state, b) {
            (State::LineStart { crlf }, b'.') => State::Dot { crlf },
            (State::LineStart { .. } | State::Text, b'\r') => State::TextCr,
            (State::LineStart { .. } | State::Text, b'\n') => {
                self.emit(b"\r\n");
                State::LineStart { crlf: false }
            }
            (State::LineStart { .. } | State::Text, _) => {
                self.emit(&[b]);
                State::Text
            }
            (State::TextCr, b'\n') => {
                self.emit(b"\r\n");
                State::LineStart { crlf: true }
            }
            (State::TextCr, b'\r') => {
                self.emit(b"\r");
                State::TextCr
            }
            (State::TextCr, _) => {
                self.emit(&[b'\r', b]);
                State::Text
            }
            (State::Dot { crlf: true }, b'\r') => State::DotCr,
            (State::Dot { crlf: false }, b'\r') => {
                self.emit(b".");
                State::TextCr
            }
            // A lone dot ended by a bare LF is text (smuggling pattern), kept as ".\r\n".
            (State::Dot { .. }, b'\n') => {
                self.emit(b".\r\n");
                State::LineStart { crlf: false }
            }
            // Dot-stuffing: a leading dot followed by more text is removed.
            (State::Dot { .. }, _) => {
                self.emit(&[b]);
                State::Text
            }
            (State::DotCr, b'\n') => return true,
            // ".\r" then more text: the stuffing dot goes, the CR stays pending.
            (State::DotCr, b'\r') => {
                self.emit(b"\r");
                State::TextCr
            }
            (State::DotCr, _) => {
                self.emit(&[b'\r', b]);
                State::Text
            }
        };
        false
    }

    fn finish(&mut self) -> DataOutcome {
        if self.size > self.max_size {
            DataOutcome::TooLarge { size: self.size }
        } else {
            DataOutcome::Complete(std::mem::take(&mut self.body))
        }
    }
}

/// Converts every bare LF to CRLF (BDAT bodies, which are not dot-stuffed).
pub fn normalize_crlf(raw: &[u8]) -> Vec<u8> {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8]) -> (usize, Option<DataOutcome>) {
        DataDecoder::new(1 << 20).feed(input)
    }

    fn body(input: &[u8]) -> Vec<u8> {
        match decode_all(input) {
            (_, Some(DataOutcome::Complete(b))) => b,
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_leaves_the_rest() {
        let input = b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
        let (used, out) = decode_all(input);
        assert_eq!(
            out,
            Some(DataOutcome::Complete(
                b"Subject: x\r\n\r\nhello\r\n".to_vec()
            ))
        );
        assert_eq!(&input[used..], b"QUIT\r\n");
    }

    #[test]
    fn empty_body() {
        assert_eq!(body(b".\r\n"), b"");
    }

    #[test]
    fn bare_lf_dot_never_ends_data() {
        for smuggle in [&b"a\n.\nb"[..], b"a\r\n.\nb", b"a\n.\r\nb"] {
            let (used, out) = decode_all(smuggle);
            assert_eq!(out, None, "{smuggle:?} ended data");
            assert_eq!(used, smuggle.len());
        }
        let msg = body(b"a\r\n.\nMAIL FROM:<x>\r\n.\r\n");
        assert_eq!(msg, b"a\r\n.\r\nMAIL FROM:<x>\r\n");
        let msg = body(b"a\n.\nb\r\n.\r\n");
        assert_eq!(msg, b"a\r\n.\r\nb\r\n");
    }

    #[test]
    fn dot_unstuffing() {
        assert_eq!(body(b"..hidden\r\n...\r\n.\r\n"), b".hidden\r\n..\r\n");
        assert_eq!(body(b"a\r\n..\r\n.\r\n"), b"a\r\n.\r\n");
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(body(b"a\nb\n\nc\r\n.\r\n"), b"a\r\nb\r\n\r\nc\r\n");
    }

    #[test]
    fn bare_cr_kept() {
        assert_eq!(body(b"a\rb\r\r\n.\r\n"), b"a\rb\r\r\n");
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = b"x\r\n..y\n.\n\r\nz\r\r\n.\r\nNEXT";
        let mut d = DataDecoder::new(1 << 20);
        let mut end = None;
        for (i, b) in input.iter().enumerate() {
            let (used, out) = d.feed(std::slice::from_ref(b));
            assert_eq!(used, 1);
            if out.is_some() {
                end = Some((i + 1, out));
                break;
            }
        }
        let (used, out) = decode_all(input);
        assert_eq!(end, Some((used, out)));
    }

    #[test]
    fn too_large_reads_to_the_end() {
        let mut d = DataDecoder::new(5);
        let (used, out) = d.feed(b"0123456789\r\n.\r\nQUIT\r\n");
        assert_eq!(out, Some(DataOutcome::TooLarge { size: 12 }));
        assert_eq!(used, 15);
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_crlf(b"\na\r\nb\nc"), b"\r\na\r\nb\r\nc");
        assert_eq!(normalize_crlf(b"a\r\n"), b"a\r\n");
    }

    /// Dot-stuffs a CRLF body the way a client does.
    fn stuff(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at_start = true;
        for &b in body {
            if at_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_start = b == b'\n';
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest! {
        #[test]
        fn stuffed_crlf_bodies_round_trip(lines in proptest::collection::vec("[.a-z \\r]{0,8}", 0..8), split in 0usize..64) {
            let mut msg = Vec::new();
            for l in &lines {
                msg.extend_from_slice(l.as_bytes());
                msg.extend_from_slice(b"\r\n");
            }
            let wire = stuff(&msg);
            let split = split.min(wire.len());
            let mut d = DataDecoder::new(1 << 20);
            let (u1, o1) = d.feed(&wire[..split]);
            prop_assert_eq!(u1, split);
            let out = match o1 { Some(o) => o, None => d.feed(&wire[split..]).1.unwrap() };
            prop_assert_eq!(out, DataOutcome::Complete(msg));
        }

        #[test]
        fn random_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let (used, _) = DataDecoder::new(64).feed(&input);
            prop_assert!(used <= input.len());
            let _ = normalize_crlf(&input);
        }
    }
}
