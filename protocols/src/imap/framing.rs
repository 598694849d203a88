//! Sans-I/O command framing: turns the client's byte stream into whole commands (a command line
//! plus the literals it announces), asks for continuation where a synchronizing literal needs
//! one, and enforces the line and literal limits. It never interprets literal data as a command.
//!
//! Literal forms recognised at the end of a line: `{N}` (synchronizing), `{N+}` (LITERAL+ /
//! LITERAL- non-synchronizing) and the literal8 forms `~{N}` / `~{N+}`.

/// Non-synchronizing literals up to this size are accepted under LITERAL- (RFC 7888).
pub const LITERAL_MINUS_MAX: u64 = 4096;

/// Buffers larger than this are released once empty.
const RETAIN_CAPACITY: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: every line with its CRLF (or LF) and every literal's bytes.
    Command(Vec<u8>),
    /// A synchronizing literal was announced and accepted: send a continuation request.
    Continue,
    /// A synchronizing literal was too large. The client will not send its data; answer the
    /// command (tagged NO [TOOBIG]) and carry on with the next line.
    LiteralRefused { tag: Option<String>, size: u64 },
    /// A non-synchronizing literal was too large: its data follows regardless and cannot be
    /// skipped safely, so the connection must end (RFC 7888 section 4).
    LiteralFatal { tag: Option<String>, size: u64 },
    /// A command line longer than the limit. Its rest, up to the next line end, is discarded
    /// without being buffered.
    LineTooLong { tag: Option<String> },
}

#[derive(Debug)]
enum State {
    /// Reading a line of the current command.
    Line,
    /// Reading `remaining` bytes of literal data into the current command.
    Literal { remaining: u64 },
    /// Discarding until the next LF (after an over-long line).
    Discard,
}

#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a line end in the current line (avoids rescans).
    scanned: usize,
    /// The command assembled so far (earlier lines and literals).
    msg: Vec<u8>,
    state: State,
    max_line: usize,
    max_literal: u64,
    /// Whether to ask for continuation of synchronizing literals (false while the session
    /// decides a refused command must be answered first).
    literal_plus: bool,
}

impl Framer {
    pub fn new(max_line: usize, max_literal: u64) -> Framer {
        Framer {
            buf: Vec::new(),
            scanned: 0,
            msg: Vec::new(),
            state: State::Line,
            max_line: max_line.max(64),
            max_literal,
            literal_plus: true,
        }
    }

    /// Changes the literal limit (a session allows only small literals before login).
    pub fn set_max_literal(&mut self, max_literal: u64) {
        self.max_literal = max_literal;
    }

    pub fn max_literal(&self) -> u64 {
        self.max_literal
    }

    /// Whether non-synchronizing literals of any (allowed) size are accepted (LITERAL+); when
    /// false, LITERAL- rules apply: above 4096 bytes they are refused.
    pub fn set_literal_plus(&mut self, on: bool) {
        self.literal_plus = on;
    }

    /// Adds bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Hands over the bytes not yet framed (commands pipelined after a proxied login go to
    /// the backend as they are).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }

    /// Bytes buffered and not yet framed (for bounding reads).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True when no partial command is pending.
    pub fn is_idle(&self) -> bool {
        self.msg.is_empty() && self.buf.is_empty() && matches!(self.state, State::Line)
    }

    /// Takes one raw line (IDLE's DONE, an AUTHENTICATE response) without literal handling.
    /// `Some(Err(()))` when the line exceeds the limit (it is discarded).
    pub fn next_raw_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        loop {
            match self.state {
                State::Discard => {
                    let pos = self.buf.iter().position(|&b| b == b'\n');
                    match pos {
                        Some(p) => {
                            self.buf.drain(..=p);
                            self.state = State::Line;
                            self.scanned = 0;
                        }
                        None => {
                            self.buf.clear();
                            return None;
                        }
                    }
                }
                _ => {
                    if let Some(p) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                        let end = self.scanned + p + 1;
                        let mut line: Vec<u8> = self.buf.drain(..end).collect();
                        self.scanned = 0;
                        trim_eol(&mut line);
                        return Some(Ok(line));
                    }
                    self.scanned = self.buf.len();
                    if self.buf.len() > self.max_line {
                        self.buf.clear();
                        self.scanned = 0;
                        self.state = State::Discard;
                        return Some(Err(()));
                    }
                    return None;
                }
            }
        }
    }

    /// The next framing event, or None when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let frame = self.next_inner();
        // An idle session keeps no large buffer from an earlier APPEND (many thousand IDLE
        // connections must stay small).
        if self.buf.is_empty() && self.buf.capacity() > RETAIN_CAPACITY {
            self.buf = Vec::new();
        }
        if self.msg.is_empty() && self.msg.capacity() > RETAIN_CAPACITY {
            self.msg = Vec::new();
        }
        frame
    }

    fn next_inner(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Discard => {
                    let p = match self.buf.iter().position(|&b| b == b'\n') {
                        Some(p) => p,
                        None => {
                            self.buf.clear();
                            return None;
                        }
                    };
                    self.buf.drain(..=p);
                    self.scanned = 0;
                    self.state = State::Line;
                }
                State::Literal { remaining } => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let take = (remaining.min(self.buf.len() as u64)) as usize;
                    self.msg.extend(self.buf.drain(..take));
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::Line
                    } else {
                        State::Literal { remaining: left }
                    };
                    self.scanned = 0;
                }
                State::Line => {
                    let found = self.buf[self.scanned..].iter().position(|&b| b == b'\n');
                    let Some(p) = found else {
                        self.scanned = self.buf.len();
                        if self.buf.len() > self.max_line {
                            let tag = tag_of(if self.msg.is_empty() {
                                &self.buf
                            } else {
                                &self.msg
                            });
                            self.buf.clear();
                            self.msg.clear();
                            self.scanned = 0;
                            self.state = State::Discard;
                            return Some(Frame::LineTooLong { tag });
                        }
                        return None;
                    };
                    let end = self.scanned + p + 1;
                    self.scanned = 0;
                    if end > self.max_line + 2 {
                        let tag = tag_of(if self.msg.is_empty() {
                            &self.buf
                        } else {
                            &self.msg
                        });
                        self.buf.drain(..end);
                        self.msg.clear();
                        return Some(Frame::LineTooLong { tag });
                    }
                    let line: Vec<u8> = self.buf.drain(..end).collect();
                    let announced = literal_at_end(&line);
                    self.msg.extend_from_slice(&line);
                    match announced {
                        None => return Some(Frame::Command(std::mem::take(&mut self.msg))),
                        Some((size, sync)) => {
                            // The whole command is bounded too, not just each literal.
                            let total = self.msg.len() as u64 + size;
                            let too_big = size > self.max_literal
                                || total > self.max_literal + 4 * self.max_line as u64
                                || (!sync && !self.literal_plus && size > LITERAL_MINUS_MAX);
                            if too_big {
                                let tag = tag_of(&self.msg);
                                self.msg.clear();
                                if sync {
                                    return Some(Frame::LiteralRefused { tag, size });
                                }
                                // The data is on its way and is not a command: stop here.
                                self.buf.clear();
                                self.state = State::Discard;
                                return Some(Frame::LiteralFatal { tag, size });
                            }
                            self.state = if size == 0 {
                                State::Line
                            } else {
                                State::Literal { remaining: size }
                            };
                            if sync {
                                return Some(Frame::Continue);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn trim_eol(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
}

/// A literal announcement at the end of a line: (size, synchronizing).
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let mut l = line;
    if l.last() == Some(&b'\n') {
        l = &l[..l.len() - 1];
    }
    if l.last() == Some(&b'\r') {
        l = &l[..l.len() - 1];
    }
    let rest = l.strip_suffix(b"}")?;
    let (rest, sync) = match rest.strip_suffix(b"+") {
        Some(r) => (r, false),
        None => match rest.strip_suffix(b"-") {
            Some(r) => (r, false),
            None => (rest, true),
        },
    };
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let digits = &rest[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((size, sync))
}

/// The tag of a (possibly malformed) command: its first word, if that is a valid tag.
pub fn tag_of(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    let word = bytes.get(..end)?;
    if word.is_empty() || word.len() > 64 || !word.iter().all(|&b| is_tag_char(b)) {
        return None;
    }
    String::from_utf8(word.to_vec()).ok()
}

/// ASTRING-CHAR except "+" (RFC 9051 tag).
pub fn is_tag_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| f.next_frame()).collect()
    }

    #[test]
    fn simple_lines_and_partial_input() {
        let mut f = Framer::new(1000, 1000);
        f.push(b"a NOOP\r\nb CAPA");
        assert_eq!(frames(&mut f), vec![Frame::Command(b"a NOOP\r\n".to_vec())]);
        f.push(b"BILITY\n");
        assert_eq!(
            frames(&mut f),
            vec![Frame::Command(b"b CAPABILITY\n".to_vec())]
        );
        assert!(f.is_idle());
    }

    #[test]
    fn sync_literal_asks_for_continuation_and_is_assembled() {
        let mut f = Framer::new(1000, 1000);
        f.push(b"a LOGIN {4}\r\n");
        assert_eq!(frames(&mut f), vec![Frame::Continue]);
        f.push(b"de");
        assert_eq!(frames(&mut f), vec![]);
        f.push(b"mo {4}\r\n");
        assert_eq!(frames(&mut f), vec![Frame::Continue]);
        f.push(b"a\r\nb \"x\"\r\n");
        assert_eq!(
            frames(&mut f),
            vec![Frame::Command(
                b"a LOGIN {4}\r\ndemo {4}\r\na\r\nb \"x\"\r\n".to_vec()
            )]
        );
    }

    #[test]
    fn literal_data_is_never_a_command() {
        let mut f = Framer::new(1000, 1000);
        f.push(b"a APPEND INBOX {+}\r\n");
        // Not a valid announcement: the line is a command of its own.
        assert_eq!(
            frames(&mut f),
            vec![Frame::Command(b"a APPEND INBOX {+}\r\n".to_vec())]
        );
        f.push(b"a APPEND INBOX {12+}\r\nb LOGOUT\r\n\r\n\r\n");
        assert_eq!(
            frames(&mut f),
            vec![Frame::Command(
                b"a APPEND INBOX {12+}\r\nb LOGOUT\r\n\r\n\r\n".to_vec()
            )]
        );
    }

    #[test]
    fn literal8_and_zero_length() {
        let mut f = Framer::new(1000, 1000);
        f.push(b"a APPEND INBOX ~{0}\r\n\r\n");
        assert_eq!(
            frames(&mut f),
            vec![
                Frame::Continue,
                Frame::Command(b"a APPEND INBOX ~{0}\r\n\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn oversized_sync_literal_is_refused_and_framing_continues() {
        let mut f = Framer::new(1000, 10);
        f.push(b"t1 APPEND INBOX {11}\r\nt2 NOOP\r\n");
        assert_eq!(
            frames(&mut f),
            vec![
                Frame::LiteralRefused {
                    tag: Some("t1".into()),
                    size: 11
                },
                Frame::Command(b"t2 NOOP\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn oversized_nonsync_literal_is_fatal() {
        let mut f = Framer::new(1000, 10);
        f.push(b"t1 APPEND INBOX {11+}\r\nAAAAAAAAAAA\r\n");
        assert_eq!(
            frames(&mut f),
            vec![Frame::LiteralFatal {
                tag: Some("t1".into()),
                size: 11
            }]
        );
    }

    #[test]
    fn literal_minus_limit() {
        let mut f = Framer::new(1000, 100_000);
        f.set_literal_plus(false);
        f.push(b"t1 APPEND INBOX {5000+}\r\n");
        assert!(matches!(frames(&mut f)[..], [Frame::LiteralFatal { .. }]));
    }

    #[test]
    fn long_line_is_refused_with_its_tag_then_recovers() {
        let mut f = Framer::new(100, 10);
        let mut long = b"tag7 NOOP ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 500));
        f.push(&long);
        assert_eq!(
            frames(&mut f),
            vec![Frame::LineTooLong {
                tag: Some("tag7".into())
            }]
        );
        f.push(b"xxxx\r\nb NOOP\r\n");
        assert_eq!(frames(&mut f), vec![Frame::Command(b"b NOOP\r\n".to_vec())]);
    }

    #[test]
    fn raw_lines() {
        let mut f = Framer::new(100, 10);
        f.push(b"DONE\r\nZGVtbw==\n");
        assert_eq!(f.next_raw_line(), Some(Ok(b"DONE".to_vec())));
        assert_eq!(f.next_raw_line(), Some(Ok(b"ZGVtbw==".to_vec())));
        assert_eq!(f.next_raw_line(), None);
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP"), Some("a1".into()));
        assert_eq!(tag_of(b"+ NOOP"), None);
        assert_eq!(tag_of(b"* NOOP"), None);
        assert_eq!(tag_of(b""), None);
        assert_eq!(literal_at_end(b"x {12}\r\n"), Some((12, true)));
        assert_eq!(literal_at_end(b"x {12+}\r\n"), Some((12, false)));
        assert_eq!(literal_at_end(b"x ~{3}\r\n"), Some((3, true)));
        assert_eq!(literal_at_end(b"x {}\r\n"), None);
        assert_eq!(literal_at_end(b"x {99999999999999999999}\r\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..20)) {
            let mut f = Framer::new(256, 1024);
            for c in chunks {
                f.push(&c);
                while let Some(fr) = f.next_frame() {
                    if let Frame::Command(m) = fr { proptest::prop_assert!(m.len() <= 256 * 20 + 1024 * 20 + 20); }
                }
                proptest::prop_assert!(f.buffered() <= 256 + 200 + 2);
            }
        }
    }
}
