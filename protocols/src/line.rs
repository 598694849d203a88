//! The line reader shared by the text protocols (POP3, LMTP): a sans-I/O [`LineBuffer`] that
//! takes complete lines from the input in order (so pipelined commands are never lost) and
//! reports an over-long line as soon as the buffered bytes pass the limit without a line end,
//! and [`LineConn`], the I/O edge that feeds it from the socket and queues replies.
//!
//! An over-long line ends the session (Dovecot's POP3 and LMTP do the same): the reader never
//! waits for the line end of a client that may never send one, and never buffers more than
//! the limit and one read.

use crate::stream::BoxStream;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much to ask the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Replies queued beyond this are written before the next pipelined command is taken.
const MAX_QUEUED_OUTPUT: usize = 64 * 1024;

/// How long the last words (and a flush before a TLS upgrade) may take to be written.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long input is read and dropped after closing on a client that was still sending: closing
/// a socket with unread input makes the kernel send a reset, which may destroy our last reply
/// before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("connection closed")]
    Closed,
    /// A line longer than the limit, complete or not: the session answers and closes.
    #[error("line too long")]
    TooLong,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Over-long line: more than `max` bytes before the line end.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line too long")]
pub(crate) struct TooLong;

/// The input side as a state machine over bytes: push what the socket delivered, take lines.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    input: BytesMut,
}

impl LineBuffer {
    pub(crate) fn new() -> LineBuffer {
        LineBuffer {
            input: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Adds bytes read from the client (tests; [`LineConn`] reads straight into the buffer).
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Takes the next complete line, without its CRLF (or bare LF); `None` when more input is
    /// needed. `Err(TooLong)` as soon as a line, complete or not, is longer than `max`; the
    /// buffer is emptied then, since nothing after it can be framed reliably.
    pub(crate) fn take_line(&mut self, max: usize) -> Option<Result<Vec<u8>, TooLong>> {
        match self.input.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let cr = i > 0 && self.input.get(i - 1) == Some(&b'\r');
                let content = if cr { i - 1 } else { i };
                if content > max {
                    self.input.clear();
                    return Some(Err(TooLong));
                }
                let line = self.input.split_to(i + 1);
                Some(Ok(line.get(..content).unwrap_or_default().to_vec()))
            }
            // No line end yet: once more than the limit (and a CR that may start the CRLF) is
            // buffered, the line is too long whatever follows.
            None if self.input.len() > max.saturating_add(1) => {
                self.input.clear();
                Some(Err(TooLong))
            }
            None => None,
        }
    }

    /// Buffered input not yet consumed (DATA and BDAT read message bytes from here).
    pub(crate) fn input(&mut self) -> &mut BytesMut {
        &mut self.input
    }
}

/// A buffered line connection: a [`LineBuffer`] fed from the stream, and queued replies written
/// in one go before the session waits for more input.
pub(crate) struct LineConn {
    stream: BoxStream,
    lines: LineBuffer,
    output: Vec<u8>,
}

impl LineConn {
    pub(crate) fn new(stream: BoxStream) -> LineConn {
        LineConn {
            stream,
            lines: LineBuffer::new(),
            output: Vec::new(),
        }
    }

    /// The next line: from the buffer, else after flushing queued replies and reading more.
    /// Cancel-safe while waiting for input (the buffer keeps what was read).
    pub(crate) async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        // A client that pipelines without reading must not make replies pile up in memory.
        if self.output.len() > MAX_QUEUED_OUTPUT {
            self.flush().await?;
        }
        loop {
            if let Some(line) = self.lines.take_line(max) {
                return line.map_err(|TooLong| ReadError::TooLong);
            }
            self.flush().await?;
            self.fill().await?;
        }
    }

    /// Reads more input into the buffer; `Closed` at end of stream.
    pub(crate) async fn fill(&mut self) -> Result<usize, ReadError> {
        let input = self.lines.input();
        input.reserve(READ_CHUNK);
        let n = self.stream.read_buf(input).await?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        Ok(n)
    }

    /// Buffered input not yet consumed (DATA and BDAT read message bytes from here).
    pub(crate) fn input(&mut self) -> &mut BytesMut {
        self.lines.input()
    }

    /// Queues a reply; it is written at the next `flush` (before waiting for input).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    pub(crate) fn send_line(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.output.is_empty() {
            let out = std::mem::take(&mut self.output);
            self.stream.write_all(&out).await?;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Flushes and hands the stream over (for a TLS upgrade). Buffered input is discarded: bytes
    /// sent in plaintext after STLS/STARTTLS must never be read as if they came over TLS.
    pub(crate) async fn into_stream(mut self) -> std::io::Result<BoxStream> {
        self.flush().await?;
        Ok(self.stream)
    }

    /// Flushes and hands the stream over with the input read but not yet taken (a proxied
    /// login passes commands the client pipelined after it on to the backend).
    pub(crate) async fn into_parts(mut self) -> std::io::Result<(BoxStream, Vec<u8>)> {
        self.flush().await?;
        let rest = self.lines.input().split().to_vec();
        Ok((self.stream, rest))
    }

    /// Flushes and closes the write side, giving up after [`CLOSE_TIMEOUT`]: a client that
    /// stopped reading must not keep its session alive.
    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// [`shutdown`](Self::shutdown), then drops whatever the client still sends for up to
    /// [`LINGER`], so that our last reply reaches a client that was in the middle of sending.
    pub(crate) async fn shutdown_lingering(&mut self) {
        self.shutdown().await;
        self.lines.input().clear();
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; READ_CHUNK];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> LineBuffer {
        let mut b = LineBuffer::new();
        b.push(input);
        b
    }

    #[test]
    fn lines_in_order_with_crlf_and_lf() {
        let mut b = lines(b"A\r\nB\nC\r\nrest");
        assert_eq!(b.take_line(10), Some(Ok(b"A".to_vec())));
        assert_eq!(b.take_line(10), Some(Ok(b"B".to_vec())));
        assert_eq!(b.take_line(10), Some(Ok(b"C".to_vec())));
        assert_eq!(b.take_line(10), None);
        assert_eq!(&b.input()[..], b"rest");
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_taken_even_when_its_crlf_comes_late() {
        let mut b = lines(b"0123456789\r");
        assert_eq!(b.take_line(10), None, "the CR may start the line end");
        b.push(b"\nNEXT\n");
        assert_eq!(b.take_line(10), Some(Ok(b"0123456789".to_vec())));
        assert_eq!(b.take_line(10), Some(Ok(b"NEXT".to_vec())));
    }

    #[test]
    fn too_long_without_line_end_is_reported_as_soon_as_it_passes_the_limit() {
        let mut b = LineBuffer::new();
        b.push(&[b'x'; 11]);
        assert_eq!(b.take_line(10), None, "11 bytes may still be 10 and a CR");
        b.push(b"x");
        assert_eq!(b.take_line(10), Some(Err(TooLong)));
        assert!(b.input().is_empty(), "nothing of the line stays buffered");
    }

    #[test]
    fn a_megabyte_without_line_end_is_too_long_in_one_step() {
        let mut b = lines(&vec![b'y'; 1 << 20]);
        assert_eq!(b.take_line(8192), Some(Err(TooLong)));
    }

    #[test]
    fn complete_too_long_line_is_too_long() {
        let mut input = vec![b'x'; 11];
        input.extend_from_slice(b"\r\nOK\r\n");
        assert_eq!(lines(&input).take_line(10), Some(Err(TooLong)));
        // A CR inside the limit's count belongs to the line end, not to the line.
        let mut b = lines(b"0123456789\r\n");
        assert_eq!(b.take_line(10), Some(Ok(b"0123456789".to_vec())));
    }

    #[test]
    fn empty_lines_and_a_bare_lf() {
        let mut b = lines(b"\r\n\n");
        assert_eq!(b.take_line(0), Some(Ok(Vec::new())));
        assert_eq!(b.take_line(0), Some(Ok(Vec::new())));
        assert_eq!(b.take_line(0), None);
    }

    #[tokio::test]
    async fn replies_are_written_while_a_client_keeps_pipelining() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut client_r, mut client_w) = tokio::io::split(client);
        let mut c = LineConn::new(Box::new(server));
        let n = 10_000;
        client_w.write_all(&b"NOOP\r\n".repeat(n)).await.unwrap();
        for _ in 0..n {
            c.read_line(100).await.unwrap();
            c.send_line("250 2.0.0 OK");
            assert!(c.output.len() <= MAX_QUEUED_OUTPUT + 64);
        }
        drop(client_w);
        c.shutdown().await;
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client_r, &mut got)
            .await
            .unwrap();
        assert_eq!(got.len(), n * "250 2.0.0 OK\r\n".len());
    }

    #[tokio::test]
    async fn read_line_answers_a_line_without_end_before_the_client_stops_sending() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut c = LineConn::new(Box::new(server));
        client.write_all(b"FIRST\r\n").await.unwrap();
        client.write_all(&[b'y'; 50]).await.unwrap();
        // The client is still connected and sends no line end: no waiting for one.
        assert_eq!(c.read_line(10).await.unwrap(), b"FIRST");
        let r = tokio::time::timeout(Duration::from_secs(5), c.read_line(10)).await;
        assert!(matches!(r, Ok(Err(ReadError::TooLong))), "{r:?}");
        drop(client);
        assert!(matches!(c.read_line(10).await, Err(ReadError::Closed)));
    }
}
