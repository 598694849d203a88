//! `node import`, `node export` and `node acl` on the server's side: import writes through
//! the same write gate and commit wait as IMAP (so imported mail replicates like delivered
//! mail); export reads a page of a mailbox at a time; acl reads and writes the `acl:ID`
//! entries IMAP's SETACL writes.

use super::mail::MailCtx;
use base64::Engine as _;
use protocols::imap::acl::{self, Rights, KEY_PREFIX};
use protocols::mail::UserMail;
use serde::{Deserialize, Serialize};
use storage::{Flag, Flags};

/// A message on the admin socket: its UID, flags (IMAP spelling), internal date and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub uid: u32,
    pub flags: Vec<String>,
    /// Seconds since the epoch.
    pub date: i64,
    /// UTC offset of the internal date, minutes.
    #[serde(default)]
    pub tz: i32,
    /// The raw message, base64 (standard alphabet).
    pub raw: String,
}

impl WireMessage {
    pub fn new(uid: u32, flags: Vec<String>, date: i64, tz: i32, raw: &[u8]) -> WireMessage {
        WireMessage {
            uid,
            flags,
            date,
            tz,
            raw: base64::engine::general_purpose::STANDARD.encode(raw),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.raw)
            .map_err(|e| format!("UID {}: bad base64: {e}", self.uid))
    }
}

/// One page of `node export`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPage {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// The mailbox's GUID (hex).
    pub guid: String,
    pub subscribed: bool,
    pub messages: Vec<WireMessage>,
    /// Whether more messages follow (ask again with `after` = the last UID).
    pub more: bool,
}

/// doveadm acl's operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AclOp {
    /// Every entry (the owner's full rights first).
    Get,
    /// `+rights` adds, `-rights` removes, else replaces (an empty result removes the entry).
    Set {
        id: String,
        rights: String,
    },
    Delete {
        id: String,
    },
    /// The rights `id` has on the mailbox (doveadm acl rights / my-rights for the owner).
    Rights {
        id: String,
    },
}

fn flags_of(names: &[String]) -> Flags {
    names.iter().map(|f| Flag::from_imap(f)).collect()
}

impl MailCtx {
    pub(super) async fn import(
        &self,
        user: &str,
        mailbox: &str,
        uidvalidity: u32,
        messages: &[WireMessage],
    ) -> Result<serde_json::Value, String> {
        let mail: UserMail = self.open(user).await?;
        let mut decoded = Vec::with_capacity(messages.len());
        for m in messages {
            decoded.push((m.uid, m.bytes()?, flags_of(&m.flags), (m.date, m.tz)));
        }
        let mailbox = mailbox.to_string();
        let out = mail
            .write(move |st| {
                let msgs: Vec<storage::ImportMessage<'_>> = decoded
                    .iter()
                    .map(|(uid, raw, flags, date)| storage::ImportMessage {
                        uid: *uid,
                        raw,
                        flags: flags.clone(),
                        internal_date: *date,
                    })
                    .collect();
                st.import(&mailbox, uidvalidity, &msgs)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        serde_json::to_value(out).map_err(|e| e.to_string())
    }

    pub(super) async fn export(
        &self,
        user: &str,
        mailbox: &str,
        after: u32,
        max_bytes: u64,
    ) -> Result<serde_json::Value, String> {
        let mail = self.open(user).await?;
        let r = mail.reader().clone();
        let mailbox = mailbox.to_string();
        let page = protocols::blocking::run(move || -> Result<ExportPage, String> {
            let info = r.mailbox(&mailbox).map_err(|e| e.to_string())?;
            let all = r.messages(&mailbox).map_err(|e| e.to_string())?;
            let mut messages = Vec::new();
            let mut bytes = 0u64;
            let mut more = false;
            for m in all.into_iter().filter(|m| m.uid > after) {
                if !messages.is_empty() && bytes + m.size > max_bytes {
                    more = true;
                    break;
                }
                let raw = r.read_message(&m.object).map_err(|e| e.to_string())?;
                bytes += raw.len() as u64;
                let flags = m.flags.iter().map(|f| f.to_imap().to_string()).collect();
                messages.push(WireMessage::new(
                    m.uid,
                    flags,
                    m.internal_date,
                    m.internal_date_tz_min,
                    &raw,
                ));
            }
            Ok(ExportPage {
                uidvalidity: info.uidvalidity,
                uidnext: info.uidnext,
                guid: info.id.to_hex(),
                subscribed: info.subscribed,
                messages,
                more,
            })
        })
        .await??;
        serde_json::to_value(page).map_err(|e| e.to_string())
    }

    pub(super) async fn acl(
        &self,
        user: &str,
        mailbox: &str,
        op: &AclOp,
    ) -> Result<serde_json::Value, String> {
        let mail = self.open(user).await?;
        let owner = mail.user().to_string();
        let r = mail.reader().clone();
        let name = mailbox.to_string();
        let entries = protocols::blocking::run(move || {
            r.mailbox(&name).map_err(|e| e.to_string())?;
            r.attributes(Some(&name), KEY_PREFIX)
                .map_err(|e| e.to_string())
        })
        .await??;
        let entries = acl::entries_of(&entries);
        let shown = |entries: &[(String, Rights)]| {
            let mut v =
                vec![serde_json::json!({ "id": format!("owner={owner}"), "rights": acl::ALL })];
            v.extend(
                entries
                    .iter()
                    .map(|(id, r)| serde_json::json!({ "id": id, "rights": r.to_string() })),
            );
            serde_json::Value::Array(v)
        };
        match op {
            AclOp::Get => Ok(shown(&entries)),
            AclOp::Rights { id } => {
                let rights = acl::effective(&owner, id, &entries);
                Ok(serde_json::json!({ "id": id, "rights": rights.to_string() }))
            }
            AclOp::Set { id, rights } => {
                self.acl_write(&mail, mailbox, id, &entries, Some(rights))
                    .await
            }
            AclOp::Delete { id } => self.acl_write(&mail, mailbox, id, &entries, None).await,
        }
    }

    async fn acl_write(
        &self,
        mail: &UserMail,
        mailbox: &str,
        id: &str,
        entries: &[(String, Rights)],
        change: Option<&String>,
    ) -> Result<serde_json::Value, String> {
        let id = acl_identifier(id)?;
        if id == mail.user() {
            return Err(format!(
                "{id} owns {mailbox} and has every right; the owner's rights cannot be changed"
            ));
        }
        let current = entries
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| *r)
            .unwrap_or_default();
        let new = match change {
            None => Rights::NONE,
            Some(c) => current.modified(c).ok_or_else(|| {
                format!(
                    "invalid rights {c:?}: letters of {} (RFC 4314), optionally after + or -",
                    acl::ALL
                )
            })?,
        };
        let value = (!new.is_empty()).then(|| new.to_string().into_bytes());
        let (name, key) = (mailbox.to_string(), format!("{KEY_PREFIX}{id}"));
        mail.write(move |st| st.set_attributes(Some(&name), vec![(key, value)]))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(serde_json::json!({ "id": id, "rights": new.to_string() }))
    }
}

/// doveadm's identifiers (`user=alice`, `group=x`, `anyone`, `authenticated`, `-user=bob`)
/// to IMAP's (`alice`, `anyone`, `-bob`); groups are not supported here.
pub fn acl_identifier(id: &str) -> Result<String, String> {
    let (neg, bare) = match id.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", id),
    };
    let bare = if let Some(u) = bare.strip_prefix("user=") {
        u
    } else if bare.starts_with("group=") || bare.starts_with("group-override=") {
        return Err(format!(
            "{id}: group identifiers are not supported (ACL groups have no source here); \
             use user=NAME, anyone or authenticated"
        ));
    } else if bare.starts_with("owner") {
        return Err(format!(
            "{id}: the owner has every right; it cannot be changed"
        ));
    } else {
        bare
    };
    let out = format!("{neg}{bare}");
    if !acl::valid_identifier(&out) {
        return Err(format!("{id}: not a valid identifier"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_wire_messages() {
        assert_eq!(acl_identifier("user=alice").unwrap(), "alice");
        assert_eq!(acl_identifier("-user=bob").unwrap(), "-bob");
        assert_eq!(acl_identifier("anyone").unwrap(), "anyone");
        assert!(acl_identifier("group=staff").is_err());
        assert!(acl_identifier("owner").is_err());
        assert!(acl_identifier("-").is_err());
        let m = WireMessage::new(3, vec!["\\Seen".into()], 5, 60, b"a\r\n");
        assert_eq!(m.bytes().unwrap(), b"a\r\n");
        let bad = WireMessage {
            raw: "!!".into(),
            ..m
        };
        assert!(bad.bytes().is_err());
    }
}
