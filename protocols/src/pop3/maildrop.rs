//! The POP3 maildrop: INBOX's snapshot at login, numbered from 1, with deletion marks that only
//! the UPDATE state (QUIT) applies; and the rendering of RETR/TOP responses.

use storage::{Flag, MessageMeta};

/// Why a message number cannot be used; `Display` is the `-ERR` text (Dovecot's).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    #[error("There's no message {0}.")]
    NoSuchMessage(u32),
    #[error("Message is deleted.")]
    Deleted,
}

pub struct Maildrop {
    messages: Vec<MessageMeta>,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
}

impl Maildrop {
    pub fn new(messages: Vec<MessageMeta>) -> Maildrop {
        let n = messages.len();
        Maildrop {
            messages,
            deleted: vec![false; n],
            retrieved: vec![false; n],
        }
    }

    fn index(&self, n: u32) -> Result<usize, MsgError> {
        let i = (n as usize)
            .checked_sub(1)
            .filter(|&i| i < self.messages.len())
            .ok_or(MsgError::NoSuchMessage(n))?;
        if self.deleted.get(i).copied().unwrap_or(true) {
            return Err(MsgError::Deleted);
        }
        Ok(i)
    }

    /// A message that exists and is not marked deleted.
    pub fn get(&self, n: u32) -> Result<&MessageMeta, MsgError> {
        let i = self.index(n)?;
        self.messages.get(i).ok_or(MsgError::NoSuchMessage(n))
    }

    /// (number, message) of every message not marked deleted.
    pub fn live(&self) -> impl Iterator<Item = (u32, &MessageMeta)> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .enumerate()
            .filter(|(_, (_, &del))| !del)
            .map(|(i, (m, _))| (i as u32 + 1, m))
    }

    /// STAT: count and octets of the messages not marked deleted.
    pub fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    /// The whole snapshot: (count, octets), deleted or not.
    pub fn total(&self) -> (usize, u64) {
        (
            self.messages.len(),
            self.messages.iter().map(|m| m.size).sum(),
        )
    }

    pub fn dele(&mut self, n: u32) -> Result<(), MsgError> {
        let i = self.index(n)?;
        if let Some(d) = self.deleted.get_mut(i) {
            *d = true;
        }
        Ok(())
    }

    pub fn mark_retrieved(&mut self, n: u32) {
        if let Some(r) = (n as usize)
            .checked_sub(1)
            .and_then(|i| self.retrieved.get_mut(i))
        {
            *r = true;
        }
    }

    /// RSET: unmark every deletion.
    pub fn rset(&mut self) {
        self.deleted.iter_mut().for_each(|d| *d = false);
    }

    /// UIDs to expunge at QUIT, ascending.
    pub fn deleted_uids(&self) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, &d)| d)
            .map(|(m, _)| m.uid)
            .collect();
        uids.sort_unstable();
        uids
    }

    /// UIDs retrieved with RETR, not deleted and not yet \Seen: flagged \Seen at QUIT.
    pub fn seen_uids(&self) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .messages
            .iter()
            .zip(self.deleted.iter().zip(&self.retrieved))
            .filter(|(m, (&d, &r))| r && !d && !m.flags.contains(&Flag::Seen))
            .map(|(m, _)| m.uid)
            .collect();
        uids.sort_unstable();
        uids
    }
}

/// The UIDL of a message: its GUID in hex. GUIDs are unique in the cluster and never reused, so
/// the UIDL is stable across sessions and across nodes (RFC 1939: 1-70 chars in 0x21-0x7E).
pub fn uidl(meta: &MessageMeta) -> String {
    meta.guid.to_hex()
}

/// A RETR or TOP response body: the message (or its header, blank line and `top_lines` body
/// lines), dot-stuffed, ending with CRLF and the terminating `.` line. `no_nuls` drops NUL
/// bytes (Dovecot's outlook-no-nuls workaround).
pub fn render(raw: &[u8], top_lines: Option<u32>, no_nuls: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64 + 8);
    let mut at_line_start = true;
    let mut in_body = false;
    let mut body_lines_left = top_lines.map(u64::from);
    // Lines end at LF; the header ends at the first empty line.
    let mut line_len = 0usize;
    for &b in raw {
        if in_body && body_lines_left == Some(0) {
            break;
        }
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        at_line_start = false;
        if !(no_nuls && b == 0) {
            out.push(b);
        }
        if b == b'\n' {
            at_line_start = true;
            let empty = line_len == 0 || (line_len == 1 && raw_line_was_cr(&out));
            if in_body {
                if let Some(left) = body_lines_left.as_mut() {
                    *left -= 1;
                }
            } else if empty {
                in_body = true;
            }
            line_len = 0;
        } else {
            line_len += 1;
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        if out.ends_with(b"\n") {
            out.pop();
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// True when the line just ended was a lone CR (CRLF empty line).
fn raw_line_was_cr(out: &[u8]) -> bool {
    out.len() >= 2 && out[out.len() - 2] == b'\r'
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::{Guid, ObjectId};

    fn meta(uid: u32, size: u64, seen: bool) -> MessageMeta {
        MessageMeta {
            uid,
            guid: Guid([uid as u8; 16]),
            object: ObjectId([0; 32]),
            flags: if seen {
                [Flag::Seen].into_iter().collect()
            } else {
                Default::default()
            },
            modseq: 1,
            internal_date: 0,
            internal_date_tz_min: 0,
            size,
            saved_ms: 0,
        }
    }

    #[test]
    fn numbering_deletion_and_rset() {
        let mut md = Maildrop::new(vec![
            meta(10, 100, false),
            meta(12, 50, true),
            meta(15, 7, false),
        ]);
        assert_eq!(md.stat(), (3, 157));
        assert_eq!(md.get(0), Err(MsgError::NoSuchMessage(0)));
        assert_eq!(md.get(4), Err(MsgError::NoSuchMessage(4)));
        assert_eq!(md.get(2).unwrap().uid, 12);
        md.dele(2).unwrap();
        assert_eq!(md.dele(2), Err(MsgError::Deleted));
        assert_eq!(md.get(2), Err(MsgError::Deleted));
        assert_eq!(md.stat(), (2, 107));
        assert_eq!(md.live().map(|(n, _)| n).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(md.deleted_uids(), vec![12]);
        assert_eq!(md.total(), (3, 157));
        md.rset();
        assert_eq!(md.stat(), (3, 157));
        assert!(md.deleted_uids().is_empty());
        assert_eq!(
            MsgError::NoSuchMessage(4).to_string(),
            "There's no message 4."
        );
    }

    #[test]
    fn seen_uids_skip_deleted_and_already_seen() {
        let mut md = Maildrop::new(vec![meta(1, 1, false), meta(2, 1, true), meta(3, 1, false)]);
        for n in 1..=3 {
            md.mark_retrieved(n);
        }
        md.mark_retrieved(99);
        md.dele(3).unwrap();
        assert_eq!(md.seen_uids(), vec![1]);
    }

    #[test]
    fn uidl_is_guid_hex() {
        let u = uidl(&meta(1, 1, false));
        assert_eq!(u, "01".repeat(16));
        assert!(u.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }

    #[test]
    fn retr_is_dot_stuffed() {
        let raw = b"Subject: x\r\n\r\n.hidden\r\n..\r\nend\r\n";
        assert_eq!(
            render(raw, None, false),
            b"Subject: x\r\n\r\n..hidden\r\n...\r\nend\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn missing_final_crlf_is_added() {
        assert_eq!(
            render(b"a\r\n\r\nb", None, false),
            b"a\r\n\r\nb\r\n.\r\n".to_vec()
        );
        assert_eq!(render(b"", None, false), b".\r\n".to_vec());
    }

    #[test]
    fn top_header_and_n_lines() {
        let raw = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
        assert_eq!(
            render(raw, Some(0), false),
            b"A: 1\r\nB: 2\r\n\r\n.\r\n".to_vec()
        );
        assert_eq!(
            render(raw, Some(2), false),
            b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n".to_vec()
        );
        assert_eq!(render(raw, Some(99), false), render(raw, None, false));
        // No body at all: the whole header.
        assert_eq!(
            render(b"A: 1\r\n", Some(0), false),
            b"A: 1\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn no_nuls_strips_nul_bytes() {
        assert_eq!(render(b"a\0b\r\n", None, true), b"ab\r\n.\r\n".to_vec());
        assert_eq!(render(b"a\0b\r\n", None, false), b"a\0b\r\n.\r\n".to_vec());
    }
}
