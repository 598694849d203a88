//! Header blocks: where a header ends, its fields, and unfolding. Works on raw bytes with CRLF or
//! bare LF line ends, and never assumes the input is well formed.

/// One header field as it appears in the raw message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// The field name as written (without the colon; trailing blanks before the colon removed).
    pub name: &'a [u8],
    /// Everything after the colon up to the field's final line end, folds included.
    pub value: &'a [u8],
    /// The whole field including its folded lines and final line end: what HEADER.FIELDS copies.
    pub raw: &'a [u8],
}

/// Returns the offset just past the blank line ending the header that starts at `start`, or `end`
/// when there is none (then the whole entity is header and the body is empty, as Dovecot does).
pub fn header_end(raw: &[u8], start: usize, end: usize) -> usize {
    let end = end.min(raw.len());
    let mut pos = start;
    while pos < end {
        match raw.get(pos) {
            Some(b'\n') => return pos + 1,
            Some(b'\r') if raw.get(pos + 1) == Some(&b'\n') && pos + 1 < end => return pos + 2,
            _ => {}
        }
        match memchr(b'\n', raw.get(pos..end).unwrap_or(&[])) {
            Some(i) => pos += i + 1,
            None => return end,
        }
    }
    end
}

/// The top-level header block of a message, blank line included: what `parse_facts` gives as
/// the top-level part's header range.
pub fn header_block(raw: &[u8]) -> &[u8] {
    raw.get(..header_end(raw, 0, raw.len())).unwrap_or(raw)
}

/// Iterates over the fields of a header block (the blank line that ends it may be included).
pub fn fields(header: &[u8]) -> Fields<'_> {
    Fields { rest: header }
}

pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<HeaderField<'a>> {
        loop {
            let rest = self.rest;
            if rest.is_empty() || rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
                self.rest = &[];
                return None;
            }
            // The field runs to the first line end not followed by a blank (a fold).
            let mut end = rest.len();
            let mut pos = 0;
            while let Some(i) = memchr(b'\n', rest.get(pos..).unwrap_or(&[])) {
                let nl = pos + i;
                match rest.get(nl + 1) {
                    Some(b' ') | Some(b'\t') => pos = nl + 1,
                    _ => {
                        end = nl + 1;
                        break;
                    }
                }
            }
            let (raw, tail) = rest.split_at(end);
            self.rest = tail;
            let first_line_len = memchr(b'\n', raw).unwrap_or(raw.len());
            let Some(colon) = memchr(b':', raw.get(..first_line_len).unwrap_or(&[])) else {
                // Not a field (an mbox "From " line, a stray continuation): skipped, as Dovecot does.
                continue;
            };
            let (name, after) = raw.split_at(colon);
            let name = trim_end(name);
            if name.is_empty() || name.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                continue;
            }
            let value = after.get(1..).unwrap_or(&[]);
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            let value = value.strip_suffix(b"\r").unwrap_or(value);
            return Some(HeaderField { name, value, raw });
        }
    }
}

/// The value of the first field called `name` (ASCII case-insensitive), raw.
pub fn first_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    fields(header)
        .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value)
}

/// Unfolds a raw value: line ends (CRLF or LF) are removed, the blanks after them kept; leading
/// and trailing blanks trimmed. Nothing is decoded.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        match b {
            b'\r' if value.get(i + 1) == Some(&b'\n') => i += 1,
            b'\n' => {}
            _ => out.push(b),
        }
        i += 1;
    }
    trim(&out).to_vec()
}

pub fn trim(v: &[u8]) -> &[u8] {
    trim_end(trim_start(v))
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|b| is_blank(**b)).count();
    v.get(n..).unwrap_or(&[])
}

pub fn trim_end(v: &[u8]) -> &[u8] {
    let n = v.iter().rev().take_while(|b| is_blank(**b)).count();
    v.get(..v.len() - n).unwrap_or(&[])
}

pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_crlf_lf_and_none() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody", 0, 12), 8);
        assert_eq!(header_end(b"A: b\n\nbody", 0, 10), 6);
        assert_eq!(header_end(b"\r\nbody", 0, 6), 2);
        assert_eq!(header_end(b"A: b\r\nno blank", 0, 14), 14);
        assert_eq!(header_end(b"", 0, 0), 0);
    }

    #[test]
    fn fields_with_folds_and_junk() {
        let h = b"From user Fri\r\nSubject: a\r\n  b\r\nX-Y :z\r\n\r\nbody";
        let f: Vec<_> = fields(h).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"Subject");
        assert_eq!(f[0].value, b" a\r\n  b");
        assert_eq!(f[0].raw, b"Subject: a\r\n  b\r\n");
        assert_eq!(f[1].name, b"X-Y");
        assert_eq!(f[1].value, b"z");
        assert_eq!(unfold(f[0].value), b"a  b");
    }

    #[test]
    fn field_without_final_newline() {
        let f: Vec<_> = fields(b"A: 1\r\nB: 2").collect();
        assert_eq!(f[1].raw, b"B: 2");
        assert_eq!(f[1].value, b" 2");
    }
}
