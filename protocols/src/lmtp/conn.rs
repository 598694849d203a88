//! A buffered, line-oriented connection for the text protocols (LMTP, POP3): complete lines are
//! taken from the input buffer in order, so pipelined commands are never lost; replies are queued
//! and written in one go before the session waits for more input.

use crate::stream::BoxStream;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much to ask the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Replies queued beyond this are written before the next pipelined command is taken.
const MAX_QUEUED_OUTPUT: usize = 64 * 1024;

/// How long the last words (and a flush before a TLS upgrade) may take to be written.
pub(crate) const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("connection closed")]
    Closed,
    /// A line longer than the limit; it has been skipped up to and including its LF.
    #[error("line too long")]
    TooLong,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) struct LineConn {
    stream: BoxStream,
    input: BytesMut,
    output: Vec<u8>,
    /// Inside an over-long line: drop input until its LF.
    skipping: bool,
}

impl LineConn {
    pub(crate) fn new(stream: BoxStream) -> LineConn {
        LineConn {
            stream,
            input: BytesMut::with_capacity(READ_CHUNK),
            output: Vec::new(),
            skipping: false,
        }
    }

    /// Takes the next complete line from the buffer, without its CRLF (or bare LF).
    pub(crate) fn take_line(&mut self, max: usize) -> Option<Result<Vec<u8>, ReadError>> {
        let lf = self.input.iter().position(|&b| b == b'\n');
        match lf {
            Some(i) if self.skipping => {
                self.input.advance(i + 1);
                self.skipping = false;
                Some(Err(ReadError::TooLong))
            }
            Some(i) => {
                let mut line = self.input.split_to(i + 1);
                line.truncate(i);
                if line.last() == Some(&b'\r') {
                    line.truncate(i - 1);
                }
                if line.len() > max {
                    return Some(Err(ReadError::TooLong));
                }
                Some(Ok(line.to_vec()))
            }
            None => {
                if self.input.len() > max + 1 {
                    // No LF within the limit: stop buffering this line.
                    self.input.clear();
                    self.skipping = true;
                }
                None
            }
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
            if let Some(line) = self.take_line(max) {
                return line;
            }
            self.flush().await?;
            self.fill().await?;
        }
    }

    /// Reads more input into the buffer; `Closed` at end of stream.
    pub(crate) async fn fill(&mut self) -> Result<usize, ReadError> {
        self.input.reserve(READ_CHUNK);
        let n = self.stream.read_buf(&mut self.input).await?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        Ok(n)
    }

    /// Buffered input not yet consumed (DATA and BDAT read message bytes from here).
    pub(crate) fn input(&mut self) -> &mut BytesMut {
        &mut self.input
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

    /// Flushes and closes the write side, giving up after [`CLOSE_TIMEOUT`]: a client that
    /// stopped reading must not keep its session alive.
    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn conn_with(input: &[u8]) -> LineConn {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut client = client;
        client.write_all(input).await.unwrap();
        drop(client);
        let mut c = LineConn::new(Box::new(server));
        while c.fill().await.is_ok() {}
        c
    }

    #[tokio::test]
    async fn lines_in_order_with_crlf_and_lf() {
        let mut c = conn_with(b"A\r\nB\nC\r\nrest").await;
        assert_eq!(c.take_line(10).unwrap().unwrap(), b"A");
        assert_eq!(c.take_line(10).unwrap().unwrap(), b"B");
        assert_eq!(c.take_line(10).unwrap().unwrap(), b"C");
        assert!(c.take_line(10).is_none());
        assert_eq!(&c.input()[..], b"rest");
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
    async fn too_long_line_is_skipped_then_next_line_read() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\r\nOK\r\n");
        let mut c = conn_with(&input).await;
        assert!(matches!(c.take_line(10), Some(Err(ReadError::TooLong))));
        assert_eq!(c.take_line(10).unwrap().unwrap(), b"OK");
    }

    #[tokio::test]
    async fn too_long_line_without_lf_yet_is_dropped_from_buffer() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut c = LineConn::new(Box::new(server));
        client.write_all(&[b'y'; 50]).await.unwrap();
        c.fill().await.unwrap();
        assert!(c.take_line(10).is_none());
        assert!(c.input().is_empty());
        client.write_all(b"yyy\nNEXT\n").await.unwrap();
        assert!(matches!(c.read_line(10).await, Err(ReadError::TooLong)));
        assert_eq!(c.read_line(10).await.unwrap(), b"NEXT");
        drop(client);
        assert!(matches!(c.read_line(10).await, Err(ReadError::Closed)));
    }
}
