//! Delivering one received message to one accepted recipient: trace headers, the exactly-once
//! delivery key, the detail mailbox, the store call, the reply and the Dovecot-style log line.

use super::LmtpContext;
use crate::mail::{UserMail, WriteError};
use std::time::Instant;
use storage::{NewMessage, StoreError};

/// A recipient accepted at RCPT TO.
#[derive(Clone, Debug)]
pub(crate) struct Accepted {
    /// The address as the client gave it (replies and Delivered-To).
    pub address: String,
    /// The canonical user name the userdb returned.
    pub user: String,
    pub detail: Option<String>,
    /// `lmtp_proxy`: the message goes to this backend over LMTP instead of the local store.
    pub proxy: Option<Box<crate::proxy::ProxyTarget>>,
}

/// The message body as received, shared by every recipient of the transaction.
pub(crate) struct Received {
    pub sender: String,
    /// CRLF-normalised, unstuffed body as the client sent it (no trace headers yet).
    pub body: Vec<u8>,
    pub body_hash: blake3::Hash,
    pub message_id: Option<String>,
}

impl Received {
    pub fn new(sender: String, body: Vec<u8>) -> Received {
        Received {
            body_hash: blake3::hash(&body),
            message_id: message_id(&body),
            sender,
            body,
        }
    }
}

/// The Message-ID header's value (unfolded, trimmed), looked for in the header section only.
pub(crate) fn message_id(msg: &[u8]) -> Option<String> {
    let mut lines = msg.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some(name) = line.get(..11) else { continue };
        if !name.eq_ignore_ascii_case(b"message-id:") {
            continue;
        }
        let mut value = line[11..].to_vec();
        // Folded continuation lines start with white space.
        while let Some(next) = lines.peek() {
            if matches!(next.first(), Some(b' ' | b'\t')) {
                value.push(b' ');
                let next = next.strip_suffix(b"\r").unwrap_or(next);
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        let value = String::from_utf8_lossy(&value).trim().to_string();
        return (!value.is_empty()).then_some(value);
    }
    None
}

/// blake3 over (Message-ID, sender, recipient, body hash), each length-prefixed so no two
/// different tuples hash alike. A retry of the same delivery yields the same key.
pub(crate) fn delivery_key(
    message_id: Option<&str>,
    sender: &str,
    recipient: &str,
    body_hash: &blake3::Hash,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("mailstore lmtp delivery key v1");
    for field in [
        message_id.unwrap_or("").as_bytes(),
        sender.as_bytes(),
        recipient.to_ascii_lowercase().as_bytes(),
        body_hash.as_bytes(),
    ] {
        h.update(&(field.len() as u64).to_le_bytes());
        h.update(field);
    }
    *h.finalize().as_bytes()
}

/// Header values never carry a line break from the envelope (header injection).
fn header_safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The stored message: Return-Path and Delivered-To, then the body as received.
pub(crate) fn with_trace_headers(sender: &str, recipient: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        header_safe(sender),
        header_safe(recipient)
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// How one recipient's delivery ended, as the `node_deliveries_total` counter labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// A retry recognised by its delivery key: acknowledged, not stored again.
    Duplicate,
    /// 4xx: the client keeps the message and retries.
    TempFail,
    /// 552 5.2.2: the user's quota.
    Quota,
    /// 552 5.3.4: larger than the store accepts.
    TooLarge,
    /// 550 5.1.1 at RCPT TO.
    UnknownUser,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Duplicate => "duplicate",
            Outcome::TempFail => "tempfail",
            Outcome::Quota => "quota",
            Outcome::TooLarge => "too_large",
            Outcome::UnknownUser => "unknown_user",
        }
    }

    /// Counts it in `node_deliveries_total{result}` (the recorder the node installs; a no-op
    /// without one, as in most tests).
    pub fn count(self) {
        metrics::counter!("node_deliveries_total", "result" => self.label()).increment(1);
    }
}

/// The facts of one delivery attempt, for its log line.
pub(crate) struct DeliveryLog<'a> {
    pub user: &'a str,
    pub session: &'a str,
    pub msgid: &'a str,
    pub from: &'a str,
    pub size: u64,
    pub delivery_ms: u128,
}

impl DeliveryLog<'_> {
    /// Dovecot's line: `lmtp(user)<session>: msgid=..., from=<...>, size=..., vsize=...,
    /// session=<...>, delivery_time=...: saved mail to INBOX` (its deliver_log_format with the
    /// mail_log fields). Stored messages are CRLF, so vsize equals size.
    pub fn line(&self, result: &str) -> String {
        let DeliveryLog {
            user,
            session,
            msgid,
            from,
            size,
            delivery_ms,
        } = self;
        format!(
            "lmtp({user})<{session}>: msgid={msgid}, from=<{from}>, size={size}, vsize={size}, \
             session=<{session}>, delivery_time={delivery_ms}: {result}"
        )
    }
}

/// One recipient's delivery, counted in `node_deliveries_total`: the reply line (without CRLF).
pub(crate) async fn deliver(
    ctx: &LmtpContext,
    session: &str,
    msg: &Received,
    rcpt: &Accepted,
) -> String {
    let (outcome, reply) = deliver_one(ctx, session, msg, rcpt).await;
    outcome.count();
    reply
}

async fn deliver_one(
    ctx: &LmtpContext,
    session: &str,
    msg: &Received,
    rcpt: &Accepted,
) -> (Outcome, String) {
    let started = Instant::now();
    let addr = &rcpt.address;
    let user = rcpt.user.as_str();
    let raw = with_trace_headers(&msg.sender, addr, &msg.body);
    let size = raw.len() as u64;
    let log = |result: &str| {
        DeliveryLog {
            user,
            session,
            msgid: msg.message_id.as_deref().unwrap_or(""),
            from: &msg.sender,
            size,
            delivery_ms: started.elapsed().as_millis(),
        }
        .line(result)
    };
    let temp_fail = |mailbox: &str, why: &str| {
        tracing::error!(user, "{}", log(&format!("save failed to {mailbox}: {why}")));
        (
            Outcome::TempFail,
            format!("451 4.3.0 <{addr}> Temporary internal error"),
        )
    };

    // Said to the client (Postfix logs it and retries): which node takes the writes.
    let refused_reply = |refused: &crate::backend::WriteRefused| {
        tracing::warn!(user, "{}", log(&format!("writes refused: {refused}")));
        (Outcome::TempFail, format!("451 4.3.0 <{addr}> {refused}"))
    };
    // Checked before opening too: a node that may not write has no reason to open the user.
    if let Err(refused) = ctx.backend.may_write(user) {
        return refused_reply(&refused);
    }
    let store = match UserMail::open(&ctx.backend, user).await {
        Ok(s) => s,
        Err(e) => return temp_fail("INBOX", &format!("cannot open user: {e}")),
    };

    let key = (!ctx.config.dedupe_window.is_zero())
        .then(|| delivery_key(msg.message_id.as_deref(), &msg.sender, addr, &msg.body_hash));
    if ctx.config.sieve.enabled() {
        return super::sieve::deliver(ctx, msg, rcpt, &store, raw, key, session, &log).await;
    }
    let detail = ctx
        .config
        .save_to_detail_mailbox
        .then(|| rcpt.detail.clone())
        .flatten();

    // The reply below is made only once the write may be acknowledged: in `replicated`
    // durability, once a peer has the message (duplicates too: the first delivery's client may
    // never have had its reply).
    let result = store
        .write(move |store| save(store, detail, &raw, key))
        .await;

    let (mailbox, outcome) = match result {
        Ok(r) => r,
        Err(WriteError::Refused(refused)) => return refused_reply(&refused),
        Err(WriteError::Internal(e)) => return temp_fail("INBOX", &e),
    };
    answer(outcome, &mailbox, addr, session, user, &log)
        .unwrap_or_else(|e| temp_fail(&mailbox, &e.to_string()))
}

/// Appends to the detail mailbox if it exists, else INBOX (Dovecot's
/// lmtp_save_to_detail_mailbox without autocreate); returns the mailbox used.
fn save(
    store: &storage::UserStore,
    detail: Option<String>,
    raw: &[u8],
    key: Option<[u8; 32]>,
) -> (String, Result<storage::AppendOutcome, StoreError>) {
    let mailbox = match detail {
        Some(d) => match store.mailbox(&d) {
            Ok(info) => info.name,
            Err(StoreError::NoSuchMailbox(_) | StoreError::InvalidMailboxName { .. }) => {
                "INBOX".to_string()
            }
            Err(e) => return (String::from("INBOX"), Err(e)),
        },
        None => "INBOX".to_string(),
    };
    let outcome = store.append(
        &mailbox,
        NewMessage {
            raw,
            flags: Default::default(),
            internal_date: None,
            delivery_key: key,
        },
    );
    (mailbox, outcome)
}

/// The LMTP reply to a save (logged as Dovecot logs deliveries); a store error without an
/// answer of its own is handed back for the caller's temporary failure.
pub(crate) fn answer(
    outcome: Result<storage::AppendOutcome, StoreError>,
    mailbox: &str,
    addr: &str,
    session: &str,
    user: &str,
    log: &dyn Fn(&str) -> String,
) -> Result<(Outcome, String), StoreError> {
    Ok(match outcome {
        Ok(appended) => {
            let (outcome, result) = if appended.duplicate {
                (
                    Outcome::Duplicate,
                    format!(
                        "duplicate delivery, already saved to {mailbox} as uid {}",
                        appended.uid
                    ),
                )
            } else {
                (Outcome::Ok, format!("saved mail to {mailbox}"))
            };
            tracing::info!(user, uid = appended.uid, guid = %appended.guid, "{}", log(&result));
            (outcome, format!("250 2.0.0 <{addr}> {session} Saved"))
        }
        Err(StoreError::OverQuota(why)) => {
            let why = format!("save failed to {mailbox}: Quota exceeded ({why})");
            tracing::info!(user, "{}", log(&why));
            (
                Outcome::Quota,
                format!("552 5.2.2 <{addr}> Quota exceeded (mailbox for user is full)"),
            )
        }
        Err(StoreError::DiskFull(why)) => {
            tracing::warn!(user, "{}", log(&format!("save failed to {mailbox}: {why}")));
            // RFC 3463 4.3.1: the system is out of storage; Postfix keeps the mail and retries.
            (
                Outcome::TempFail,
                format!("452 4.3.1 <{addr}> Insufficient system storage"),
            )
        }
        Err(StoreError::TooLarge { limit, .. }) => {
            let why = format!("save failed to {mailbox}: message larger than {limit} bytes");
            tracing::info!(user, "{}", log(&why));
            (
                Outcome::TooLarge,
                format!("552 5.3.4 <{addr}> Message size exceeds fixed maximum message size"),
            )
        }
        Err(e) => return Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_folded_message_id_in_headers_only() {
        let m = b"From: a\r\nMessage-Id:\r\n <x@y>\r\nSubject: s\r\n\r\nMessage-ID: <no@no>\r\n";
        assert_eq!(message_id(m).as_deref(), Some("<x@y>"));
        assert_eq!(message_id(b"From: a\r\n\r\nMessage-ID: <no>\r\n"), None);
        assert_eq!(message_id(b"MESSAGE-ID: <a>\n"), Some("<a>".into()));
        assert_eq!(message_id(b""), None);
    }

    #[test]
    fn delivery_key_depends_on_every_field() {
        let h = blake3::hash(b"body");
        let k = delivery_key(Some("<m>"), "s@x", "r@x", &h);
        assert_eq!(k, delivery_key(Some("<m>"), "s@x", "R@X", &h));
        assert_ne!(k, delivery_key(Some("<n>"), "s@x", "r@x", &h));
        assert_ne!(k, delivery_key(Some("<m>"), "t@x", "r@x", &h));
        assert_ne!(k, delivery_key(Some("<m>"), "s@x", "q@x", &h));
        assert_ne!(
            k,
            delivery_key(Some("<m>"), "s@x", "r@x", &blake3::hash(b"other"))
        );
        // Length prefixes: moving a byte between fields changes the key.
        assert_ne!(
            delivery_key(Some("ab"), "c", "r", &h),
            delivery_key(Some("a"), "bc", "r", &h)
        );
    }

    #[test]
    fn log_line_has_dovecots_fields() {
        let line = DeliveryLog {
            user: "demo",
            session: "s1",
            msgid: "<m@x>",
            from: "a@x",
            size: 42,
            delivery_ms: 7,
        }
        .line("saved mail to INBOX");
        assert_eq!(
            line,
            "lmtp(demo)<s1>: msgid=<m@x>, from=<a@x>, size=42, vsize=42, session=<s1>, \
             delivery_time=7: saved mail to INBOX"
        );
    }

    #[test]
    fn trace_headers_cannot_inject_lines() {
        let raw = with_trace_headers("a@b\r\nX-Evil: 1", "r@x", b"Subject: s\r\n\r\nbody");
        assert_eq!(
            raw,
            b"Return-Path: <a@bX-Evil: 1>\r\nDelivered-To: r@x\r\nSubject: s\r\n\r\nbody"
        );
    }
}
