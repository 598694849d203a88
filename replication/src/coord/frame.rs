//! Raft frames on a peer link: the same length-delimited framing and mutual-TLS Hello as the
//! replication protocol ([`crate::conn::Conn`]), each frame `RAFT` + one bincode value, decoded
//! with a size limit and refused if any byte is left over.
//!
//! The magic prefix can never start a replication [`crate::wire::Message`] (its first byte, the
//! variant index, would be 82), so one listener can tell raft frames from replication frames by
//! their first four bytes ([`is_raft_frame`]) and hand the connection to the coordinator.

use super::error::{CoordError, CoordResult};
use super::types::{NodeId, TypeConfig};
use bytes::Bytes;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const RAFT_MAGIC: &[u8; 4] = b"RAFT";
/// Largest raft frame accepted or sent (snapshot chunks are kept well below it).
pub const MAX_RAFT_FRAME: usize = 4 << 20;
/// Snapshot chunk size asked of openraft.
pub const SNAPSHOT_CHUNK: u64 = 1 << 20;

/// A request from a peer's Raft (or, `TimeoutNow`, from the active node handing over).
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    Vote(VoteRequest<NodeId>),
    Append(AppendEntriesRequest<TypeConfig>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// Planned hand-over: the sender committed `Handover { to: receiver }` and stopped its
    /// heartbeats; the receiver should campaign now.
    TimeoutNow {
        from: NodeId,
    },
    /// `node cluster transfer-active TO` run on a node that is not the leader, forwarded to
    /// the leader, which runs the hand-over and answers with the new epoch.
    TransferActive {
        to: NodeId,
    },
}

/// The answer to one [`RaftRequest`], in order.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    TimeoutNow,
    /// The forwarded hand-over's outcome: the new epoch, or why it failed.
    TransferActive(Result<u64, String>),
    /// The request was refused (the connection is closed after it).
    Refused(String),
}

impl RaftRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::Vote(_) => "Vote",
            RaftRequest::Append(_) => "Append",
            RaftRequest::Snapshot(_) => "Snapshot",
            RaftRequest::TimeoutNow { .. } => "TimeoutNow",
            RaftRequest::TransferActive { .. } => "TransferActive",
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RAFT_FRAME>()
}

/// Whether a frame is a raft frame (by its magic prefix).
pub fn is_raft_frame(frame: &[u8]) -> bool {
    frame.starts_with(RAFT_MAGIC)
}

pub fn encode<T: Serialize>(v: &T) -> CoordResult<Bytes> {
    let mut out = RAFT_MAGIC.to_vec();
    bincode::serde::encode_into_std_write(v, &mut out, config())
        .map_err(|e| CoordError::Raft(format!("encoding a raft frame: {e}")))?;
    if out.len() > MAX_RAFT_FRAME {
        return Err(CoordError::Raft(format!(
            "raft frame of {} bytes exceeds {MAX_RAFT_FRAME}",
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

/// Decodes one frame from a peer: too big, without the magic, undecodable or with trailing bytes
/// is a protocol error.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> CoordResult<T> {
    if frame.len() > MAX_RAFT_FRAME {
        return Err(CoordError::Protocol(format!(
            "raft frame of {} bytes exceeds {MAX_RAFT_FRAME}",
            frame.len()
        )));
    }
    let body = frame
        .strip_prefix(RAFT_MAGIC.as_slice())
        .ok_or_else(|| CoordError::Protocol("frame without the RAFT prefix".into()))?;
    let (v, used): (T, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CoordError::Protocol(format!("undecodable raft frame: {e}")))?;
    if used != body.len() {
        return Err(CoordError::Protocol(format!(
            "{} trailing bytes after a raft frame",
            body.len() - used
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    fn request_round_trips_and_garbage_is_refused() {
        let req = RaftRequest::Vote(VoteRequest::new(
            Vote::new(3, 1),
            Some(LogId::new(CommittedLeaderId::new(2, 1), 7)),
        ));
        let b = encode(&req).unwrap();
        assert!(is_raft_frame(&b));
        match decode::<RaftRequest>(&b).unwrap() {
            RaftRequest::Vote(v) => assert_eq!(v.vote, Vote::new(3, 1)),
            other => panic!("{other:?}"),
        }
        let mut trailing = b.to_vec();
        trailing.push(0);
        assert!(decode::<RaftRequest>(&trailing).is_err());
        assert!(decode::<RaftRequest>(b"RAFT\xff\xff\xff\xff\xff").is_err());
        assert!(decode::<RaftRequest>(b"RAF").is_err());
        assert!(decode::<RaftRequest>(&b[4..]).is_err());
        // an absurd vector length inside a frame is refused without allocating it
        let mut huge = RAFT_MAGIC.to_vec();
        huge.extend_from_slice(&[1, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(decode::<RaftRequest>(&huge).is_err());
        let big = vec![0u8; MAX_RAFT_FRAME + 1];
        assert!(matches!(
            decode::<RaftRequest>(&big),
            Err(CoordError::Protocol(_))
        ));
    }
}
