//! The backend's reply lines, sans I/O: push what the socket delivered, take complete lines
//! (without CRLF); what follows the last line taken stays for the splice.

/// A backend line longer than the limit: a broken or hostile backend.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("backend reply line too long")]
pub struct LineTooLong;

#[derive(Debug)]
pub struct ReplyLines {
    buf: Vec<u8>,
    max: usize,
}

impl ReplyLines {
    pub fn new(max: usize) -> ReplyLines {
        ReplyLines {
            buf: Vec::new(),
            max,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line without its line end; Ok(None) when more bytes are needed.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineTooLong> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(p) if p > self.max => Err(LineTooLong),
            Some(p) => {
                let mut line: Vec<u8> = self.buf.drain(..=p).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None if self.buf.len() > self.max => Err(LineTooLong),
            None => Ok(None),
        }
    }

    /// The bytes after the last line taken (the start of the spliced stream).
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_pieces_and_the_rest() {
        let mut r = ReplyLines::new(16);
        r.push(b"* OK hel");
        assert_eq!(r.next_line(), Ok(None));
        r.push(b"lo\r\nA1 OK\nrest");
        assert_eq!(r.next_line(), Ok(Some(b"* OK hello".to_vec())));
        assert_eq!(r.next_line(), Ok(Some(b"A1 OK".to_vec())));
        assert_eq!(r.next_line(), Ok(None));
        assert_eq!(r.take_rest(), b"rest".to_vec());
        r.push(&[b'x'; 17]);
        assert_eq!(r.next_line(), Err(LineTooLong));
    }
}
