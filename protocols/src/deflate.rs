//! A stream that speaks raw DEFLATE both ways (RFC 4978 COMPRESS=DEFLATE: no zlib header,
//! RFC 1951 only). What is written is compressed into a buffer; each flush ends with a sync
//! flush, so the client can decode everything written so far. What is read is inflated as
//! it arrives, at most the caller's buffer at a time (a small compressed input that inflates
//! to a lot is handed out piece by piece, never held whole).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const READ_CHUNK: usize = 16 * 1024;

pub struct DeflateStream<S> {
    inner: S,
    comp: Compress,
    decomp: Decompress,
    /// Compressed bytes read from `inner`, from `in_pos` on not yet inflated.
    in_buf: Vec<u8>,
    in_pos: usize,
    /// Compressed bytes not yet written to `inner`.
    out_buf: Vec<u8>,
    /// Data was compressed since the last sync flush.
    unflushed: bool,
    read_eof: bool,
}

impl<S> DeflateStream<S> {
    pub fn new(inner: S) -> Self {
        DeflateStream {
            inner,
            comp: Compress::new(Compression::default(), false),
            decomp: Decompress::new(false),
            in_buf: Vec::new(),
            in_pos: 0,
            out_buf: Vec::new(),
            unflushed: false,
            read_eof: false,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("deflate: {e}"))
}

impl<S: AsyncRead + Unpin> AsyncRead for DeflateStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Inflate what is buffered (or drain what the inflater still holds).
            let input = this.in_buf.get(this.in_pos..).unwrap_or(&[]);
            let (in0, out0) = (this.decomp.total_in(), this.decomp.total_out());
            let status = this
                .decomp
                .decompress(input, buf.initialize_unfilled(), FlushDecompress::None)
                .map_err(invalid)?;
            let used = (this.decomp.total_in() - in0) as usize;
            let made = (this.decomp.total_out() - out0) as usize;
            this.in_pos += used;
            buf.advance(made);
            if made > 0 || status == Status::StreamEnd {
                return Poll::Ready(Ok(()));
            }
            if this.in_pos < this.in_buf.len() && used > 0 {
                continue;
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            // Need more compressed input.
            let mut chunk = vec![0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.read_eof = true;
                return Poll::Ready(Ok(()));
            }
            this.in_buf.drain(..this.in_pos.min(this.in_buf.len()));
            this.in_pos = 0;
            this.in_buf.extend_from_slice(rb.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> DeflateStream<S> {
    /// Writes `out_buf` to `inner` until it is empty or `inner` is not ready.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out_buf.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out_buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_buf.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn compress(&mut self, data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let start = self.comp.total_in();
        loop {
            let done = (self.comp.total_in() - start) as usize;
            let rest = data.get(done..).unwrap_or(&[]);
            self.out_buf.reserve(rest.len() / 2 + 1024);
            self.comp
                .compress_vec(rest, &mut self.out_buf, flush)
                .map_err(invalid)?;
            let all_in = (self.comp.total_in() - start) as usize >= data.len();
            // Output that stopped short of the buffer's end means the compressor is done.
            if all_in && self.out_buf.len() < self.out_buf.capacity() {
                return Ok(());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeflateStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Keep the backlog bounded: past 64 KiB of unsent output, wait for the peer.
        if this.out_buf.len() > 64 * 1024 {
            ready!(this.poll_drain(cx))?;
        }
        this.compress(data, FlushCompress::None)?;
        this.unflushed = true;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.compress(&[], FlushCompress::Sync)?;
            this.unflushed = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::DeflateStream;
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn round_trip_with_a_raw_deflate_peer() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut s = DeflateStream::new(a);
        // Server to peer: each flush is decodable on its own (sync flush).
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.write_all(b"* OK hello\r\n").await.unwrap();
        s.flush().await.unwrap();
        let mut peer_in = Decompress::new(false);
        let mut got = Vec::new();
        let mut raw = vec![0u8; 4096];
        while got.len() < 12 {
            let n = b.read(&mut raw).await.unwrap();
            got.reserve(1 << 16);
            peer_in
                .decompress_vec(&raw[..n], &mut got, FlushDecompress::None)
                .unwrap();
        }
        assert_eq!(got, b"* OK hello\r\n");
        let writer = tokio::spawn(async move {
            s.write_all(&big).await.unwrap();
            s.flush().await.unwrap();
            s
        });
        let mut got = Vec::new();
        while got.len() < 200_000 {
            let n = b.read(&mut raw).await.unwrap();
            assert!(n > 0);
            let mut input = &raw[..n];
            while !input.is_empty() {
                got.reserve(1 << 16);
                let before = peer_in.total_in();
                peer_in
                    .decompress_vec(input, &mut got, FlushDecompress::None)
                    .unwrap();
                input = &input[(peer_in.total_in() - before) as usize..];
            }
        }
        let mut s = writer.await.unwrap();
        assert_eq!(got.len(), 200_000);
        assert!(got.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
        // Peer to server, in tiny pieces.
        let mut peer_out = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(1 << 16);
        peer_out
            .compress_vec(b"a NOOP\r\nb LOGOUT\r\n", &mut wire, FlushCompress::Sync)
            .unwrap();
        for piece in wire.chunks(3) {
            b.write_all(piece).await.unwrap();
        }
        let mut text = vec![0u8; 18];
        s.read_exact(&mut text).await.unwrap();
        assert_eq!(text, b"a NOOP\r\nb LOGOUT\r\n");
        // Garbage is an error, not a panic.
        b.write_all(&[0xff; 64]).await.unwrap();
        let mut one = [0u8; 1];
        assert!(s.read(&mut one).await.is_err());
    }
}
