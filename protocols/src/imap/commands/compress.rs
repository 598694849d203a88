//! COMPRESS DEFLATE (RFC 4978): after the tagged OK, both directions are raw DEFLATE over
//! whatever the stream was (TLS included).

use crate::deflate::DeflateStream;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use imap_codec::imap_types::extensions::compress::CompressionAlgorithm;

pub(crate) async fn compress(s: &mut Session, tag: &str, algorithm: CompressionAlgorithm) -> Reply {
    if !matches!(algorithm, CompressionAlgorithm::Deflate) {
        return Err(Done::Bad("Unknown compression algorithm.".into()));
    }
    if s.compressed {
        return Err(Done::no(
            Code::CompressionActive,
            "Compression already active.",
        ));
    }
    // Bytes after the command were sent before the client saw the OK: they cannot be
    // compressed as they must be (RFC 4978 3), so the command is refused.
    if s.framer.buffered() > 0 {
        return Err(Done::Bad("Data pipelined after COMPRESS.".into()));
    }
    let stream = s.ok_then_take_stream(tag, "Begin compression.").await?;
    s.stream = Some(Box::new(DeflateStream::new(stream)));
    s.compressed = true;
    // The tagged reply went out uncompressed, as it must; nothing more for this command.
    Ok(Done::Silent)
}
