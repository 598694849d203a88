//! The byte stream a session runs over, and the TLS upgrade (STARTTLS/STLS) that `node` provides.

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncStream for T {}

pub type BoxStream = Box<dyn AsyncStream>;

/// Turns a plaintext stream into a TLS one (server side). `node` implements it with rustls.
#[async_trait]
pub trait TlsUpgrade: Send + Sync + 'static {
    async fn upgrade(&self, stream: BoxStream) -> std::io::Result<BoxStream>;

    /// As [`TlsUpgrade::upgrade`], with the user named by the client's certificate when the
    /// client presented one that verified against the configured CA (SASL EXTERNAL).
    async fn upgrade_identified(
        &self,
        stream: BoxStream,
    ) -> std::io::Result<(BoxStream, Option<String>)> {
        Ok((self.upgrade(stream).await?, None))
    }
}
