//! The doveadm mail commands (mailbox create/delete/rename/subscribe, fetch, search, expunge,
//! copy, move, flags, quota recalc). They open the user through the same `protocols::Backend`
//! the IMAP sessions use and write through [`UserMail::write`], so an admin's change passes
//! the same write gate, waits for the same commit (a peer's ack in `replicated` durability)
//! and is shipped to the peers like a client's.

use super::query::{self, Key};
use super::Request;
use crate::auth::Authenticator;
use protocols::mail::{Reader, UserMail};
use protocols::Backend;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::{Flag, FlagMode, Flags, MailboxInfo, MessageMeta};

/// What the mail commands act through.
pub struct MailCtx {
    pub backend: Arc<dyn Backend>,
    pub auth: Arc<Authenticator>,
}

/// One message a search query matched.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hit {
    pub mailbox: String,
    pub mailbox_guid: String,
    pub uid: u32,
    pub guid: String,
}

/// Which flag change `node flags` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The message's content, read once and only if a key or a field needs it.
struct Lazy<'a> {
    reader: &'a Reader,
    object: storage::ObjectId,
    raw: Option<Option<Vec<u8>>>,
}

impl Lazy<'_> {
    fn load(&mut self) -> Option<&[u8]> {
        if self.raw.is_none() {
            self.raw = Some(self.reader.read_message(&self.object).ok());
        }
        self.raw.as_ref().and_then(|r| r.as_deref())
    }
}

fn header_len(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len())
}

impl query::Content for Lazy<'_> {
    fn header(&mut self) -> Option<&[u8]> {
        let raw = self.load()?;
        raw.get(..header_len(raw))
    }
    fn raw(&mut self) -> Option<&[u8]> {
        self.load()
    }
}

/// Every (mailbox, message, sequence number) the query matches. Blocking (index, reads).
fn select(reader: &Reader, key: &Key) -> Result<Vec<(MailboxInfo, MessageMeta, u32)>, String> {
    let mut out = Vec::new();
    for mb in reader.list_mailboxes().map_err(|e| e.to_string())? {
        if !query::may_match_mailbox(key, &mb) {
            continue;
        }
        let msgs = reader.messages(&mb.name).map_err(|e| e.to_string())?;
        for (i, m) in msgs.into_iter().enumerate() {
            let mut content = Lazy {
                reader,
                object: m.object,
                raw: None,
            };
            if query::matches(key, &mb, &m, &mut content) {
                out.push((mb.clone(), m, i as u32 + 1));
            }
        }
    }
    Ok(out)
}

pub const FETCH_FIELDS: &[&str] = &[
    "user",
    "mailbox",
    "mailbox-guid",
    "uid",
    "seq",
    "guid",
    "flags",
    "modseq",
    "size.physical",
    "size.virtual",
    "date.received",
    "date.saved",
    "hdr",
    "body",
    "text",
];

fn check_fields(fields: &[String]) -> Result<(), String> {
    for f in fields {
        let known = FETCH_FIELDS.contains(&f.as_str())
            || f.strip_prefix("hdr.").is_some_and(|n| !n.is_empty());
        if !known {
            return Err(format!(
                "unknown fetch field {f:?} (known: {} hdr.NAME)",
                FETCH_FIELDS.join(" ")
            ));
        }
    }
    Ok(())
}

fn flags_text(flags: &Flags) -> String {
    flags
        .iter()
        .map(Flag::to_imap)
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 3339 UTC of a Unix time (doveadm prints dates as `2024-02-01 10:00:00`; so do we).
fn date_text(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn fetch_one(
    user: &str,
    fields: &[String],
    reader: &Reader,
    mb: &MailboxInfo,
    m: &MessageMeta,
    seq: u32,
) -> BTreeMap<String, String> {
    let mut lazy = Lazy {
        reader,
        object: m.object,
        raw: None,
    };
    let mut out = BTreeMap::new();
    for f in fields {
        let v = match f.as_str() {
            "user" => user.to_string(),
            "mailbox" => mb.name.clone(),
            "mailbox-guid" => mb.id.to_hex(),
            "uid" => m.uid.to_string(),
            "seq" => seq.to_string(),
            "guid" => m.guid.to_hex(),
            "flags" => flags_text(&m.flags),
            "modseq" => m.modseq.to_string(),
            "size.physical" | "size.virtual" => m.size.to_string(),
            "date.received" | "date.saved" => date_text(m.internal_date),
            "hdr" => lazy
                .load()
                .map(|r| String::from_utf8_lossy(&r[..header_len(r)]).into_owned())
                .unwrap_or_default(),
            "body" => lazy
                .load()
                .map(|r| String::from_utf8_lossy(&r[header_len(r)..]).into_owned())
                .unwrap_or_default(),
            "text" => lazy
                .load()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .unwrap_or_default(),
            other => {
                let name = other.strip_prefix("hdr.").unwrap_or(other);
                lazy.load()
                    .map(|r| query::header_values(&r[..header_len(r)], name).join("\n"))
                    .unwrap_or_default()
            }
        };
        out.insert(f.clone(), v);
    }
    out
}

fn parse_flags(s: &[String]) -> Result<Flags, String> {
    let mut out = Flags::new();
    for f in s.iter().flat_map(|x| x.split_whitespace()) {
        if f.starts_with('\\')
            && !["\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"]
                .contains(&f.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "{f}: not a system flag (\\Seen \\Answered \\Flagged \\Deleted \\Draft); keywords have no backslash"
            ));
        }
        if f.is_empty()
            || f.bytes()
                .any(|b| !(0x21..=0x7e).contains(&b) || b"(){%*\"]".contains(&b))
        {
            return Err(format!("{f:?} is not a valid flag or keyword"));
        }
        out.insert(Flag::from_imap(f));
    }
    if out.is_empty() {
        return Err("no flags given (e.g. '\\Seen \\Flagged')".into());
    }
    Ok(out)
}

impl MailCtx {
    /// The user's canonical name, or the userdb's "doesn't exist" (nothing is created).
    async fn canonical(&self, user: &str) -> Result<String, String> {
        let auth = self.auth.clone();
        let name = user.to_string();
        let rec = protocols::blocking::run(move || auth.lookup_blocking(&name)).await??;
        rec.map(|r| r.user)
            .ok_or_else(|| format!("User {user} doesn't exist in the userdb"))
    }

    pub(super) async fn open(&self, user: &str) -> Result<UserMail, String> {
        let name = self.canonical(user).await?;
        UserMail::open(&self.backend, &name).await
    }

    async fn read<T: Send + 'static>(
        mail: &UserMail,
        f: impl FnOnce(&Reader) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let r = mail.reader().clone();
        protocols::blocking::run(move || f(&r)).await?
    }

    async fn write<T: Send + 'static>(
        mail: &UserMail,
        f: impl FnOnce(&storage::UserStore) -> storage::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        mail.write(f)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn hits(
        &self,
        mail: &UserMail,
        q: &[String],
    ) -> Result<Vec<(MailboxInfo, MessageMeta, u32)>, String> {
        let key = query::parse(q, now())?;
        let user = mail.user().to_string();
        Self::read(mail, move |r| {
            for name in query::required_mailboxes(&key) {
                if r.mailbox(&name).is_err() {
                    return Err(format!(
                        "Mailbox {name} doesn't exist (`node mailbox list -u {user}` lists them)"
                    ));
                }
            }
            select(r, &key)
        })
        .await
    }

    /// Runs one mail request.
    pub async fn execute(&self, req: &Request) -> Result<serde_json::Value, String> {
        let json = |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| e.to_string());
        match req {
            Request::MailboxCreate {
                user,
                mailboxes,
                subscribe,
            } => {
                let mail = self.open(user).await?;
                for name in mailboxes.clone() {
                    let sub = *subscribe;
                    Self::write(&mail, move |st| {
                        st.create_mailbox(&name, None)?;
                        if sub {
                            st.subscribe(&name)?;
                        }
                        Ok(())
                    })
                    .await?;
                }
                Ok(serde_json::Value::Null)
            }
            Request::MailboxDelete { user, mailboxes } => {
                let mail = self.open(user).await?;
                for name in mailboxes.clone() {
                    Self::write(&mail, move |st| st.delete_mailbox(&name)).await?;
                }
                Ok(serde_json::Value::Null)
            }
            Request::MailboxRename { user, from, to } => {
                let mail = self.open(user).await?;
                let (from, to) = (from.clone(), to.clone());
                Self::write(&mail, move |st| st.rename_mailbox(&from, &to)).await?;
                Ok(serde_json::Value::Null)
            }
            Request::MailboxSubscribe {
                user,
                mailboxes,
                on,
            } => {
                let mail = self.open(user).await?;
                for name in mailboxes.clone() {
                    let on = *on;
                    // Subscribing a mailbox that does not exist is allowed (IMAP allows it),
                    // but a typo deserves a word: the CLI checks existence first.
                    Self::write(&mail, move |st| {
                        if on {
                            st.subscribe(&name)
                        } else {
                            st.unsubscribe(&name)
                        }
                    })
                    .await?;
                }
                Ok(serde_json::Value::Null)
            }
            Request::Search { user, query } => {
                let mail = self.open(user).await?;
                let hits: Vec<Hit> = self
                    .hits(&mail, query)
                    .await?
                    .into_iter()
                    .map(|(mb, m, _)| Hit {
                        mailbox: mb.name,
                        mailbox_guid: mb.id.to_hex(),
                        uid: m.uid,
                        guid: m.guid.to_hex(),
                    })
                    .collect();
                json(serde_json::to_value(hits))
            }
            Request::Fetch {
                user,
                fields,
                query,
            } => {
                check_fields(fields)?;
                let mail = self.open(user).await?;
                let hits = self.hits(&mail, query).await?;
                let (fields, name) = (fields.clone(), mail.user().to_string());
                let rows = Self::read(&mail, move |r| {
                    Ok(hits
                        .iter()
                        .map(|(mb, m, seq)| fetch_one(&name, &fields, r, mb, m, *seq))
                        .collect::<Vec<_>>())
                })
                .await?;
                json(serde_json::to_value(rows))
            }
            Request::Expunge { user, query } => {
                let mail = self.open(user).await?;
                let groups = group(self.hits(&mail, query).await?);
                let mut n = 0usize;
                for (mailbox, uids) in groups {
                    n += Self::write(&mail, move |st| st.expunge(&mailbox, &uids))
                        .await?
                        .len();
                }
                Ok(serde_json::json!({ "expunged": n }))
            }
            Request::Copy {
                user,
                destination,
                query,
                remove,
            } => {
                let mail = self.open(user).await?;
                let dest = destination.clone();
                let exists = {
                    let d = dest.clone();
                    Self::read(&mail, move |r| Ok(r.mailbox(&d).is_ok())).await?
                };
                if !exists {
                    return Err(format!(
                        "Mailbox {dest} doesn't exist (create it first: node mailbox create -u {} {dest})",
                        mail.user()
                    ));
                }
                let mut n = 0usize;
                for (mailbox, uids) in group(self.hits(&mail, query).await?) {
                    let same = mailbox == dest
                        || (mailbox.eq_ignore_ascii_case("INBOX")
                            && dest.eq_ignore_ascii_case("INBOX"));
                    if *remove && same {
                        continue; // a move into the mailbox it is in: nothing to do
                    }
                    let (d, mv) = (dest.clone(), *remove);
                    let out = Self::write(&mail, move |st| {
                        if mv {
                            st.move_messages(&mailbox, &uids, &d)
                        } else {
                            st.copy(&mailbox, &uids, &d)
                        }
                    })
                    .await?;
                    n += out.pairs.len();
                }
                Ok(serde_json::json!({ "messages": n }))
            }
            Request::Flags {
                user,
                op,
                flags,
                query,
            } => {
                let flags = parse_flags(flags)?;
                let mail = self.open(user).await?;
                let mode = match op {
                    FlagOp::Add => FlagMode::Add,
                    FlagOp::Remove => FlagMode::Remove,
                    FlagOp::Replace => FlagMode::Replace,
                };
                let mut n = 0usize;
                for (mailbox, uids) in group(self.hits(&mail, query).await?) {
                    let f = flags.clone();
                    let out = Self::write(&mail, move |st| {
                        st.store_flags(&mailbox, &uids, mode, &f, None)
                    })
                    .await?;
                    n += out.updated.len();
                }
                Ok(serde_json::json!({ "changed": n }))
            }
            Request::QuotaRecalc { user } => {
                let name = self.canonical(user).await?;
                // The usage counters live in the index: rebuilding it from the log recounts
                // them (no log record is written, so there is nothing to replicate).
                let st = self.backend.open_user(&name).await?;
                let usage = protocols::blocking::run(move || {
                    st.rebuild_index()?;
                    st.quota()
                })
                .await?
                .map_err(|e| e.to_string())?;
                json(serde_json::to_value(usage))
            }
            Request::Import {
                user,
                mailbox,
                uidvalidity,
                messages,
            } => self.import(user, mailbox, *uidvalidity, messages).await,
            Request::Export {
                user,
                mailbox,
                after,
                max_bytes,
            } => self.export(user, mailbox, *after, *max_bytes).await,
            Request::Acl { user, mailbox, op } => self.acl(user, mailbox, op).await,
            _ => Err("not a mail request".into()),
        }
    }
}

/// Hits grouped per mailbox, UIDs ascending.
fn group(hits: Vec<(MailboxInfo, MessageMeta, u32)>) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (mb, m, _) in hits {
        out.entry(mb.name).or_default().push(m.uid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_flags() {
        assert_eq!(date_text(0), "1970-01-01 00:00:00");
        assert_eq!(date_text(1_700_000_000), "2023-11-14 22:13:20");
        let f = parse_flags(&["\\Seen $Label1".into()]).unwrap();
        assert!(f.contains(&Flag::Seen));
        assert!(f.contains(&Flag::Keyword("$Label1".into())));
        assert!(parse_flags(&["\\Bogus".into()]).is_err());
        assert!(parse_flags(&["".into()]).is_err());
        assert!(parse_flags(&["a(b".into()]).is_err());
        assert!(check_fields(&["uid".into(), "hdr.subject".into()]).is_ok());
        assert!(check_fields(&["hdr.".into()]).is_err());
        assert!(check_fields(&["nope".into()])
            .unwrap_err()
            .contains("known"));
    }
}
