//! The messages a test appends, read from its mbox the way imaptest reads it: a message
//! is everything between two `From ` separator lines (the blank line before the next
//! separator included), with CRLF line endings; its INTERNALDATE comes from the separator.
//! Reading wraps around at the end of the file.

use std::path::Path;

#[derive(Debug, Clone)]
pub struct Message {
    pub body: Vec<u8>,
    /// IMAP date-time, e.g. `22-Feb-2008 17:06:23 +0000`.
    pub internal_date: String,
}

#[derive(Debug)]
pub struct Mbox {
    msgs: Vec<Message>,
    next: usize,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `From sender  Fri Feb 22 17:06:23 2008 [+0200]` -> IMAP date-time; `None` if the line
/// is not a separator (a body line starting with "From " stays in the message).
fn from_line_date(line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line.strip_prefix(b"From ")?).ok()?;
    let w: Vec<&str> = s.split_whitespace().collect();
    // sender, weekday, month, day, time, year, [zone]
    if w.len() < 6 {
        return None;
    }
    let month = MONTHS.iter().find(|m| m.eq_ignore_ascii_case(w[2]))?;
    let day: u32 = w[3].parse().ok().filter(|d| (1..=31).contains(d))?;
    let t: Vec<&str> = w[4].split(':').collect();
    if t.len() != 3
        || t.iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let year: u32 = w[5].parse().ok()?;
    let zone = match w.get(6) {
        Some(z)
            if z.len() == 5
                && (z.starts_with('+') || z.starts_with('-'))
                && z[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            z.to_string()
        }
        // no zone: the separator's time is taken as UTC
        _ => "+0000".to_string(),
    };
    Some(format!("{day:02}-{month}-{year} {} {zone}", w[4]))
}

impl Mbox {
    pub fn load(path: &Path) -> Result<Mbox, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m = Mbox::parse(&data)?;
        Ok(m)
    }

    pub fn parse(data: &[u8]) -> Result<Mbox, String> {
        let mut msgs: Vec<Message> = Vec::new();
        let mut cur: Option<Message> = None;
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(date) = from_line_date(line) {
                if let Some(m) = cur.take() {
                    msgs.push(m);
                }
                cur = Some(Message {
                    body: Vec::new(),
                    internal_date: date,
                });
                continue;
            }
            match cur.as_mut() {
                Some(m) => {
                    m.body.extend_from_slice(line);
                    m.body.extend_from_slice(b"\r\n");
                }
                None => return Err("Not a valid mbox file: no From line first".into()),
            }
        }
        msgs.extend(cur);
        if msgs.is_empty() {
            return Err("Empty mbox file".into());
        }
        Ok(Mbox { msgs, next: 0 })
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Whether every message has been handed out once (imaptest's "EOF").
    pub fn eof(&self) -> bool {
        self.next >= self.msgs.len()
    }

    /// The next message, wrapping to the first after the last.
    pub fn next_message(&mut self) -> Message {
        if self.next >= self.msgs.len() {
            self.next = 0;
        }
        let m = self.msgs[self.next].clone();
        self.next += 1;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_separators_and_keeps_trailing_blank_line() {
        let mut m = Mbox::parse(
            b"From user@domain  Fri Feb 22 17:06:23 2008\nSubject: s1\n\nbody1\n\n\
              From user@domain  Sat Mar 24 23:00:00 2007 +0200\nSubject: s2\n\nFrom me, hi\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        let a = m.next_message();
        assert_eq!(a.body, b"Subject: s1\r\n\r\nbody1\r\n\r\n");
        assert_eq!(a.internal_date, "22-Feb-2008 17:06:23 +0000");
        assert!(!m.eof());
        let b = m.next_message();
        assert_eq!(b.internal_date, "24-Mar-2007 23:00:00 +0200");
        assert_eq!(b.body, b"Subject: s2\r\n\r\nFrom me, hi\r\n");
        assert!(m.eof());
        assert_eq!(m.next_message().body, a.body, "wraps around");
    }

    #[test]
    fn rejects_non_mbox() {
        assert!(Mbox::parse(b"Subject: x\n\nbody\n").is_err());
        assert!(Mbox::parse(b"").is_err());
    }
}
