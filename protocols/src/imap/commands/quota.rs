//! QUOTA (RFC 9208) over the store's per-user quota (the userdb's quota_rule): one root,
//! "User quota", for every mailbox, with the STORAGE (KiB) and MESSAGE resources that have a
//! limit. Users may read their quota, not set it: SETQUOTA is refused.

use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, Untagged};
use crate::imap::session::Session;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::mailbox::Mailbox;
use storage::QuotaUsage;

/// The one quota root, named as Dovecot names its default.
pub(crate) const ROOT: &str = "User quota";

/// The resources that have a limit, as (name, usage, limit); STORAGE in units of 1024
/// octets (RFC 9208 5.1).
pub(crate) fn resources(q: &QuotaUsage) -> Vec<(&'static str, u64, u64)> {
    let mut out = Vec::new();
    if let Some(max) = q.limits.max_bytes {
        out.push(("STORAGE", q.bytes / 1024, max / 1024));
    }
    if let Some(max) = q.limits.max_messages {
        out.push(("MESSAGE", q.messages, max));
    }
    out
}

fn send_quota(s: &mut Session, q: &QuotaUsage) {
    s.send(&Untagged::Quota {
        root: ROOT,
        resources: resources(q),
    });
}

pub(crate) async fn getquotaroot(s: &mut Session, mailbox: Mailbox<'static>) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let n = name.clone();
    let (info, q) = s
        .store_call(move |st| Ok((st.mailbox(&n)?, st.quota()?)))
        .await?;
    s.send(&Untagged::QuotaRoot {
        mailbox: &info.name,
        roots: vec![ROOT],
    });
    send_quota(s, &q);
    Ok(Done::Ok("Getquotaroot completed.".into()))
}

pub(crate) async fn getquota(s: &mut Session, root: AString<'static>) -> Reply {
    let root = String::from_utf8_lossy(root.as_ref()).into_owned();
    if root != ROOT {
        return Err(Done::no(Code::NonExistent, "Quota root does not exist."));
    }
    let q = s.store_call(|st| st.quota()).await?;
    send_quota(s, &q);
    Ok(Done::Ok("Getquota completed.".into()))
}

pub(crate) fn setquota() -> Reply {
    Err(Done::no(
        Code::NoPerm,
        "Quota can be changed only by the administrator.",
    ))
}

#[cfg(test)]
mod tests {
    use super::resources;
    use storage::{QuotaLimits, QuotaUsage};

    #[test]
    fn only_limited_resources_are_listed_storage_in_kib() {
        let mut q = QuotaUsage {
            bytes: 10 * 1024 + 5,
            messages: 3,
            limits: QuotaLimits::default(),
        };
        assert!(resources(&q).is_empty());
        q.limits.max_bytes = Some(1024 * 1024);
        assert_eq!(resources(&q), [("STORAGE", 10, 1024)]);
        q.limits.max_messages = Some(100);
        assert_eq!(resources(&q), [("STORAGE", 10, 1024), ("MESSAGE", 3, 100)]);
    }
}
