//! Content-Type / Content-Disposition values: `value *(";" attribute "=" value)`, RFC 2045 tokens
//! and quoted strings, comments skipped, RFC 2231 continuations (`name*0`, `name*1*`) joined.

/// A parsed `type/subtype; params` or `disposition; params` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParamValue {
    /// The main value as written (for Content-Type, "type/subtype").
    pub value: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

fn is_tspecial(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')'
            | b'<'
            | b'>'
            | b'@'
            | b','
            | b';'
            | b':'
            | b'\\'
            | b'"'
            | b'/'
            | b'['
            | b']'
            | b'?'
            | b'='
    )
}

struct Cursor<'a> {
    v: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.v.get(self.i).copied()
    }

    fn skip_cfws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'(' => {
                    let mut depth = 0usize;
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        match c {
                            b'(' => depth += 1,
                            b')' => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            b'\\' => self.i += 1,
                            _ => {}
                        }
                    }
                }
                _ => break,
            }
        }
    }

    /// A token, or with `slash` a token that may contain '/' (the media type).
    fn token(&mut self, allow: &[u8]) -> Vec<u8> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b <= b' ' || b == 0x7f || (is_tspecial(b) && !allow.contains(&b)) {
                break;
            }
            self.i += 1;
        }
        self.v.get(start..self.i).unwrap_or(&[]).to_vec()
    }

    fn quoted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                b'\r' | b'\n' => {}
                _ => out.push(b),
            }
        }
        out
    }

    /// Skips to just past the next ';' (used to resynchronise after junk).
    fn skip_past_semicolon(&mut self) {
        while let Some(b) = self.peek() {
            self.i += 1;
            if b == b'"' {
                self.i -= 1;
                let _ = self.quoted();
            } else if b == b';' {
                break;
            }
        }
    }
}

/// Parses a Content-Type or Content-Disposition value (already unfolded or not: folds are blanks).
/// For Content-Type `value` is "type/subtype" as written (possibly invalid: the caller checks).
pub fn parse_param_value(v: &[u8]) -> ParamValue {
    let mut c = Cursor { v, i: 0 };
    c.skip_cfws();
    let mut value = c.token(b"/");
    if c.peek() == Some(b'"') {
        // Some mailers quote the whole type; take its content.
        value = c.quoted();
    }
    let mut raw_params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        c.skip_cfws();
        match c.peek() {
            None => break,
            Some(b';') => c.i += 1,
            Some(_) => {
                // Junk after the value or a parameter: resynchronise at the next ';'.
                c.skip_past_semicolon();
            }
        }
        c.skip_cfws();
        let name = c.token(b"");
        if name.is_empty() {
            continue;
        }
        c.skip_cfws();
        if c.peek() != Some(b'=') {
            continue;
        }
        c.i += 1;
        c.skip_cfws();
        let val = if c.peek() == Some(b'"') {
            c.quoted()
        } else {
            // Lenient: accept tspecials other than ';' in unquoted values (common in the wild).
            let start = c.i;
            while let Some(b) = c.peek() {
                if b == b';' || b <= b' ' {
                    break;
                }
                c.i += 1;
            }
            v.get(start..c.i).unwrap_or(&[]).to_vec()
        };
        raw_params.push((name, val));
    }
    ParamValue {
        value,
        params: join_rfc2231(raw_params),
    }
}

/// Joins RFC 2231 continuations: `name*0="a"; name*1="b"` -> `name="ab"`, and
/// `name*0*=utf-8''%41; name*1*=%42` -> `name*="utf-8''%41%42"` (kept encoded, as IMAP sends it).
fn join_rfc2231(params: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // (base name, extended, index in out)
    let mut joined: Vec<(Vec<u8>, usize)> = Vec::new();
    for (name, val) in params {
        let Some(star) = name.iter().position(|b| *b == b'*') else {
            out.push((name, val));
            continue;
        };
        let base = name.get(..star).unwrap_or(&[]).to_vec();
        let rest = name.get(star + 1..).unwrap_or(&[]);
        let extended = rest.last() == Some(&b'*') || rest.is_empty();
        let is_section = rest.first().is_some_and(|b| b.is_ascii_digit());
        if !is_section {
            // `name*=charset'lang'value`: a single extended value.
            out.push((name, val));
            continue;
        }
        let lower = base.to_ascii_lowercase();
        if let Some((_, idx)) = joined.iter().find(|(n, _)| *n == lower) {
            if let Some(entry) = out.get_mut(*idx) {
                entry.1.extend_from_slice(&val);
                if extended && entry.0.last() != Some(&b'*') {
                    entry.0.push(b'*');
                }
            }
        } else {
            let mut key = base.clone();
            if extended {
                key.push(b'*');
            }
            joined.push((lower, out.len()));
            out.push((key, val));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (n.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn content_type_with_params() {
        let pv = parse_param_value(b" multipart/mixed; boundary=\"foo\r\n bar\"");
        assert_eq!(pv.value, b"multipart/mixed");
        assert_eq!(pv.params, vec![p("boundary", "foo bar")]);
        let pv = parse_param_value(b"text/plain;charset=UTF-8 (comment); format=flowed");
        assert_eq!(pv.value, b"text/plain");
        assert_eq!(
            pv.params,
            vec![p("charset", "UTF-8"), p("format", "flowed")]
        );
    }

    #[test]
    fn rfc2231_continuations() {
        let pv = parse_param_value(
            b"attachment; filename*0=\"long\"; filename*1=\"name.txt\"; x*0*=utf-8''%41; x*1*=%42",
        );
        assert_eq!(pv.value, b"attachment");
        assert_eq!(
            pv.params,
            vec![p("filename", "longname.txt"), p("x*", "utf-8''%41%42")]
        );
    }

    #[test]
    fn junk_is_tolerated() {
        for junk in [
            &b";;;=\"\\"[..],
            b"text/plain; =x; a",
            b"(((",
            b"\"",
            b"a/b; c=\"unterminated",
        ] {
            let _ = parse_param_value(junk);
        }
        let pv = parse_param_value(b"text/plain garbage; charset=us-ascii");
        assert_eq!(pv.params, vec![p("charset", "us-ascii")]);
    }
}
