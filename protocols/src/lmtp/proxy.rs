//! `lmtp_proxy`: recipients the passdb routes to another backend get the message over LMTP
//! from here, one connection per backend per transaction; each gets the backend's own reply.

use super::deliver::{Accepted, Received};
use super::LmtpContext;
use std::collections::HashMap;

/// Forwards to every backend the proxied recipients of `rcpts` name; the replies by the
/// recipient's index in `rcpts`.
pub(super) async fn forward(
    ctx: &LmtpContext,
    received: &Received,
    rcpts: &[Accepted],
) -> HashMap<usize, String> {
    // One group per backend, recipients in RCPT order.
    let mut groups: Vec<(&crate::proxy::ProxyTarget, u16, Vec<usize>)> = Vec::new();
    for (i, r) in rcpts.iter().enumerate() {
        let Some(t) = r.proxy.as_deref() else {
            continue;
        };
        let port = t.port_or(24, 24);
        match groups
            .iter_mut()
            .find(|(g, p, _)| g.host == t.host && g.hostip == t.hostip && *p == port)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((t, port, vec![i])),
        }
    }
    let runs = groups
        .into_iter()
        .map(|(target, port, members)| async move {
            let addrs: Vec<String> = members
                .iter()
                .filter_map(|&i| rcpts.get(i).map(|r| r.address.clone()))
                .collect();
            let replies = crate::proxy::drive::lmtp_forward(
                &*ctx.backend,
                target,
                port,
                &ctx.config.hostname,
                &received.sender,
                addrs.clone(),
                &received.body,
            )
            .await;
            for (addr, reply) in addrs.iter().zip(&replies) {
                tracing::info!(
                    "lmtp: proxy({addr}): {} -> {}",
                    target.display(port),
                    crate::proxy::imap_login::shorten(reply)
                );
            }
            crate::proxy::count_session("lmtp");
            members.into_iter().zip(replies).collect::<Vec<_>>()
        });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}
