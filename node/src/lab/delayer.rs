//! Latency without netem (lab notes: no sch_netem in this kernel, no nft `queue`): an
//! iptables NFQUEUE rule in a node's namespace hands every outgoing packet to this small
//! user-space delayer, which accepts each one after a fixed delay. Raw nfnetlink_queue over a
//! netlink socket (no libnetfilter_queue). `--queue-bypass` on the rule lets packets through
//! unharmed whenever no delayer listens.

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
/// Packets held at once at most; beyond this the kernel drops (a delayer, not a buffer).
const QUEUE_MAXLEN: u32 = 20_000;
/// A delayer left behind by a crashed harness stops by itself after this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// One nfnetlink message: header, nfgenmsg (family, version 0, queue number), attributes.
fn message(msg: u16, queue: u16, attrs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + attrs.len());
    let len = (16 + 4 + attrs.len()) as u32;
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&queue.to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

struct Netlink(libc::c_int);

impl Drop for Netlink {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

impl Netlink {
    #[allow(unsafe_code)]
    fn open() -> Result<Netlink> {
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER) };
        if fd < 0 {
            bail!("netlink socket: {}", std::io::Error::last_os_error());
        }
        let s = Netlink(fd);
        // SAFETY: zeroed sockaddr_nl is valid; family set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let rc = unsafe {
            libc::bind(
                fd,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            bail!("netlink bind: {}", std::io::Error::last_os_error());
        }
        Ok(s)
    }

    #[allow(unsafe_code)]
    fn send(&self, m: &[u8]) -> Result<()> {
        // SAFETY: m is a valid buffer; the kernel is the default destination of a netlink
        // socket bound with pid 0... send to pid 0 explicitly.
        let mut dest: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        dest.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: valid buffer and address.
        let n = unsafe {
            libc::sendto(
                self.0,
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
                &dest as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            bail!("netlink send: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for a datagram; its bytes (empty on timeout).
    #[allow(unsafe_code)]
    fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        let mut pfd = libc::pollfd {
            fd: self.0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(1000) as libc::c_int;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            return Ok(0);
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // ENOBUFS: the kernel dropped notifications; the packets stay queued or dropped.
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                return Ok(0);
            }
            bail!("netlink recv: {e}");
        }
        Ok(n as usize)
    }
}

/// Packet ids in the netlink messages of one datagram.
pub fn packet_ids(buf: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut off = 0;
    while off + 20 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 20 || off + len > buf.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            let mut a = off + 20;
            while a + 4 <= off + len {
                let alen = u16::from_ne_bytes([buf[a], buf[a + 1]]) as usize;
                let akind = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]) & 0x7fff;
                if alen < 4 || a + alen > off + len {
                    break;
                }
                if akind == NFQA_PACKET_HDR && alen >= 8 {
                    ids.push(u32::from_be_bytes([
                        buf[a + 4],
                        buf[a + 5],
                        buf[a + 6],
                        buf[a + 7],
                    ]));
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    ids
}

/// Holds every packet of queue `queue` for `delay`, then accepts it. Runs until killed (or
/// MAX_LIFETIME).
pub fn run(queue: u16, delay: Duration) -> Result<()> {
    let nl = Netlink::open().context("the delayer needs root and nfnetlink_queue")?;
    let mut cfg = Vec::new();
    attr(&mut cfg, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
    nl.send(&message(NFQNL_MSG_CONFIG, queue, &cfg))?;
    let mut params = Vec::new();
    let mut p = 0u32.to_be_bytes().to_vec();
    p.push(NFQNL_COPY_META);
    attr(&mut params, NFQA_CFG_PARAMS, &p);
    attr(
        &mut params,
        NFQA_CFG_QUEUE_MAXLEN,
        &QUEUE_MAXLEN.to_be_bytes(),
    );
    nl.send(&message(NFQNL_MSG_CONFIG, queue, &params))?;
    tracing::info!("delayer: queue {queue}, {delay:?}");
    let start = Instant::now();
    let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < MAX_LIFETIME {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, id)) = held.pop_front() {
                let mut v = NF_ACCEPT.to_be_bytes().to_vec();
                v.extend_from_slice(&id.to_be_bytes());
                let mut a = Vec::new();
                attr(&mut a, NFQA_VERDICT_HDR, &v);
                nl.send(&message(NFQNL_MSG_VERDICT, queue, &a))?;
            }
        }
        let wait = held.front().map_or(Duration::from_millis(100), |(due, _)| {
            due.saturating_duration_since(now)
        });
        let n = nl.recv(&mut buf, wait.max(Duration::from_millis(1)))?;
        let due = Instant::now() + delay;
        for id in packet_ids(&buf[..n]) {
            held.push_back((due, id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_are_read_and_bad_lengths_stop_the_parse() {
        // One NFQNL_MSG_PACKET with a packet header (id 7), then a truncated message.
        let mut attrs = Vec::new();
        attr(&mut attrs, NFQA_PACKET_HDR, &[0, 0, 0, 7, 8, 0, 3]);
        let mut m = message(NFQNL_MSG_PACKET, 0, &attrs);
        assert_eq!(packet_ids(&m), vec![7]);
        m.extend_from_slice(&[200, 0, 0, 0, 0, 3]);
        assert_eq!(packet_ids(&m), vec![7]);
        assert!(packet_ids(&[1, 2, 3]).is_empty());
        // A verdict message is not a packet.
        let v = message(NFQNL_MSG_VERDICT, 0, &attrs);
        assert!(packet_ids(&v).is_empty());
    }
}
