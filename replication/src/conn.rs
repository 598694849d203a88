//! One authenticated replication connection: TCP, mutual TLS, length-delimited frames, and the
//! Hello handshake that checks protocol version and node ids against the certificates.

use crate::error::{ReplError, Result};
use crate::tls::{check_peer_identity, server_name_for, TlsMaterial};
use crate::wire::{self, Message, PROTOCOL_VERSION};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use storage::{HlcTime, NodeId};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Bound on the TCP connect, TLS handshake and Hello exchange together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Conn {
    framed: Framed<TlsStream<TcpStream>, LengthDelimitedCodec>,
    /// The node at the other end, checked against its certificate.
    pub peer: NodeId,
    pub peer_addr: SocketAddr,
    /// The peer's clock at Hello, for the caller to merge into the local HLC.
    pub peer_time: HlcTime,
    /// A frame read ahead (to route the connection by it) and put back: the next `recv` or
    /// `recv_frame` returns it.
    unread: Option<bytes::BytesMut>,
}

impl Conn {
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        let frame = wire::encode(msg)?;
        self.framed.send(frame).await.map_err(ReplError::Io)
    }

    /// Queues a message without flushing (the next `send` flushes it along).
    pub async fn feed(&mut self, msg: &Message) -> Result<()> {
        let frame = wire::encode(msg)?;
        self.framed.feed(frame).await.map_err(ReplError::Io)
    }

    /// Sends an already-encoded frame as is (tests use it to play a hostile peer).
    pub async fn send_raw(&mut self, frame: Bytes) -> Result<()> {
        self.framed.send(frame).await.map_err(ReplError::Io)
    }

    /// The next message; `Closed` at a clean end of stream.
    pub async fn recv(&mut self) -> Result<Message> {
        if let Some(frame) = self.unread.take() {
            return wire::decode(&frame);
        }
        match self.framed.next().await {
            None => Err(ReplError::Closed),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(ReplError::protocol(format!("bad frame: {e}")))
            }
            Some(Err(e)) => Err(ReplError::Io(e)),
            Some(Ok(frame)) => wire::decode(&frame),
        }
    }

    /// The next frame as is, undecoded (the coordinator's raft frames travel on the same
    /// framing); `Closed` at a clean end of stream.
    pub async fn recv_frame(&mut self) -> Result<bytes::BytesMut> {
        if let Some(frame) = self.unread.take() {
            return Ok(frame);
        }
        match self.framed.next().await {
            None => Err(ReplError::Closed),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(ReplError::protocol(format!("bad frame: {e}")))
            }
            Some(Err(e)) => Err(ReplError::Io(e)),
            Some(Ok(frame)) => Ok(frame),
        }
    }

    /// Puts back a frame read with `recv_frame`, for whoever serves the connection next.
    pub fn unread(&mut self, frame: bytes::BytesMut) {
        self.unread = Some(frame);
    }

    /// `recv` bounded in time (monotonic timer).
    pub async fn recv_timeout(&mut self, t: Duration, what: &'static str) -> Result<Message> {
        tokio::time::timeout(t, self.recv())
            .await
            .map_err(|_| ReplError::Timeout(what))?
    }

    /// Dials node `peer` at `addr` as node `me`.
    pub async fn connect(
        tls: &TlsMaterial,
        me: NodeId,
        now: HlcTime,
        peer: NodeId,
        addr: &str,
    ) -> Result<Conn> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let peer_addr = tcp.peer_addr()?;
            // rustls checks that the server's certificate is node-<peer>.cluster from our CA.
            let tls_stream = TlsConnector::from(tls.client.clone())
                .connect(server_name_for(peer)?, tcp)
                .await?;
            let mut conn = Conn {
                framed: Framed::new(TlsStream::Client(tls_stream), wire::codec()),
                peer,
                peer_addr,
                peer_time: HlcTime::default(),
                unread: None,
            };
            conn.send(&hello(me, now)).await?;
            let (node, time) = expect_hello(conn.recv().await?)?;
            if node != peer {
                return Err(ReplError::NodeId {
                    claimed: node,
                    why: format!("we dialed node {peer}"),
                });
            }
            conn.peer_time = time;
            Ok(conn)
        })
        .await
        .map_err(|_| ReplError::Timeout("handshake"))?
    }

    /// Accepts a dialing node on `tcp` as node `me`; `allowed` says which node ids may connect.
    pub async fn accept(
        tls: &TlsMaterial,
        me: NodeId,
        now: HlcTime,
        tcp: TcpStream,
        allowed: impl Fn(NodeId) -> bool,
    ) -> Result<Conn> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            tcp.set_nodelay(true)?;
            let peer_addr = tcp.peer_addr()?;
            // The client verifier refuses a certificate that is not from our CA.
            let tls_stream = TlsAcceptor::from(tls.server.clone()).accept(tcp).await?;
            let cert = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .cloned()
                .ok_or_else(|| ReplError::Cert("peer sent no certificate".into()))?;
            let mut conn = Conn {
                framed: Framed::new(TlsStream::Server(tls_stream), wire::codec()),
                peer: 0,
                peer_addr,
                peer_time: HlcTime::default(),
                unread: None,
            };
            let (node, time) = expect_hello(conn.recv().await?)?;
            if node == me {
                return Err(ReplError::NodeId {
                    claimed: node,
                    why: "that is our own id".into(),
                });
            }
            if !allowed(node) {
                return Err(ReplError::NodeId {
                    claimed: node,
                    why: "it is not a configured peer".into(),
                });
            }
            check_peer_identity(&cert, node)?;
            conn.peer = node;
            conn.peer_time = time;
            conn.send(&hello(me, now)).await?;
            Ok(conn)
        })
        .await
        .map_err(|_| ReplError::Timeout("handshake"))?
    }
}

fn hello(node: NodeId, time: HlcTime) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        node,
        time,
    }
}

fn expect_hello(m: Message) -> Result<(NodeId, HlcTime)> {
    match m {
        Message::Hello {
            version,
            node,
            time,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(ReplError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                });
            }
            Ok((node, time))
        }
        other => Err(ReplError::protocol(format!(
            "expected Hello, got {}",
            other.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::TestCa;
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap().to_string();
        (l, a)
    }

    #[tokio::test]
    async fn handshake_succeeds_between_cluster_nodes() {
        let ca = TestCa::new();
        let (a, b) = (ca.node(1), ca.node(2));
        let (l, addr) = listener().await;
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            Conn::accept(&a, 1, HlcTime::default(), tcp, |n| n == 2).await
        });
        let c = Conn::connect(&b, 2, HlcTime::default(), 1, &addr)
            .await
            .unwrap();
        assert_eq!(c.peer, 1);
        assert_eq!(srv.await.unwrap().unwrap().peer, 2);
    }

    #[tokio::test]
    async fn cert_from_another_ca_is_refused_both_ways() {
        let ca = TestCa::new();
        let other = TestCa::new();
        let (a, intruder) = (ca.node(1), other.node(2));
        let (l, addr) = listener().await;
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            Conn::accept(&a, 1, HlcTime::default(), tcp, |_| true).await
        });
        let c = Conn::connect(&intruder, 2, HlcTime::default(), 1, &addr).await;
        assert!(c.is_err());
        assert!(srv.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn client_claiming_another_node_id_is_refused() {
        let ca = TestCa::new();
        let (a, b) = (ca.node(1), ca.node(2));
        let (l, addr) = listener().await;
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            Conn::accept(&a, 1, HlcTime::default(), tcp, |_| true).await
        });
        // node 2's certificate, claiming to be node 3
        let _ = Conn::connect(&b, 3, HlcTime::default(), 1, &addr).await;
        let err = srv.await.unwrap().err().expect("must refuse");
        assert!(matches!(err, ReplError::NodeId { claimed: 3, .. }), "{err}");
    }

    #[tokio::test]
    async fn server_with_wrong_node_cert_is_refused_by_client() {
        let ca = TestCa::new();
        let (imposter, b) = (ca.node(3), ca.node(2));
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let _ = Conn::accept(&imposter, 3, HlcTime::default(), tcp, |_| true).await;
        });
        // we dial "node 1" but get node 3's certificate
        assert!(Conn::connect(&b, 2, HlcTime::default(), 1, &addr)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn unconfigured_peer_and_wrong_version_are_refused() {
        let ca = TestCa::new();
        let (a, b) = (ca.node(1), ca.node(2));
        let (l, addr) = listener().await;
        let a2 = a.clone();
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let first = Conn::accept(&a2, 1, HlcTime::default(), tcp, |n| n == 5).await;
            let (tcp, _) = l.accept().await.unwrap();
            let second = Conn::accept(&a2, 1, HlcTime::default(), tcp, |_| true).await;
            (first, second)
        });
        let _ = Conn::connect(&b, 2, HlcTime::default(), 1, &addr).await;
        // second: speak a wrong protocol version by hand
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let s = TlsConnector::from(b.client.clone())
            .connect(server_name_for(1).unwrap(), tcp)
            .await
            .unwrap();
        let mut f = Framed::new(s, wire::codec());
        let m = Message::Hello {
            version: PROTOCOL_VERSION + 1,
            node: 2,
            time: HlcTime::default(),
        };
        f.send(wire::encode(&m).unwrap()).await.unwrap();
        let (first, second) = srv.await.unwrap();
        assert!(matches!(first, Err(ReplError::NodeId { claimed: 2, .. })));
        assert!(matches!(second, Err(ReplError::Version { .. })));
    }
}
