//! The session loop: reads from the stream, frames commands, dispatches, writes responses.

use super::ImapContext;
use crate::backend::ConnInfo;
use crate::stream::BoxStream;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Serves one IMAP connection until the client logs out, times out, or the server shuts down.
pub async fn serve(mut stream: BoxStream, conn: ConnInfo, ctx: Arc<ImapContext>) {
    let _ = (&conn, &ctx);
    let _ = stream.write_all(b"* BYE Server not ready yet\r\n").await;
}
