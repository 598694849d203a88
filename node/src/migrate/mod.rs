//! Moving mail in and out (`node import`, `node export`): the Maildir and mbox formats
//! (pure parsers, fuzzed) and the reading of a source tree.

pub mod imap_resp;
pub mod imapc;
pub mod maildir_names;
pub mod mbox_parse;
pub mod source;

/// Lines end in CRLF in the store (what IMAP serves); Maildir and mbox files usually end
/// them in LF. Existing CRLFs stay as they are (LMTP's DATA does the same).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    protocols::lmtp::normalize_crlf(raw)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(super::to_crlf(b"a\nb\r\nc\n\n"), b"a\r\nb\r\nc\r\n\r\n");
        assert_eq!(super::to_crlf(b""), b"");
    }
}
