//! APPEND (flags, internal date, literal or literal8), answering APPENDUID (UIDPLUS).

use crate::imap::args;
use crate::imap::parse::AppendMessage;
use crate::imap::reply::{trycreate, Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use storage::NewMessage;

/// A message checked and ready for the store: flags, internal date, CRLF body.
pub(super) struct Prepared {
    pub flags: std::collections::BTreeSet<storage::Flag>,
    pub internal_date: Option<(i64, i32)>,
    pub raw: Vec<u8>,
}

impl Prepared {
    /// Appends the message to `mailbox`; returns once it is durable (the store's group commit).
    pub(super) fn append_to(
        self,
        st: &storage::UserStore,
        mailbox: &str,
    ) -> storage::Result<storage::AppendOutcome> {
        st.append(
            mailbox,
            NewMessage {
                raw: &self.raw,
                flags: self.flags,
                internal_date: self.internal_date,
                delivery_key: None,
            },
        )
    }
}

pub(super) fn prepare(
    flags: &[Flag<'static>],
    date: Option<DateTime>,
    message: &LiteralOrLiteral8<'static>,
) -> Result<Prepared, Done> {
    let flags = args::store_flags(flags.iter()).map_err(|e| Done::Bad(e.into()))?;
    // A literal8 (BINARY, RFC 3516) carries content that must arrive unchanged (a binary
    // part's LFs are data), so only a text literal gets its line ends repaired.
    let raw = match message {
        // Bare LF line ends become CRLF: the store keeps messages as RFC 5322 wants them.
        LiteralOrLiteral8::Literal(l) => crate::lmtp::normalize_crlf(l.as_ref()),
        LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
    };
    if raw.is_empty() {
        return Err(Done::No("Can't save a zero byte message.".into()));
    }
    let internal_date = date.map(|d| {
        let d = d.as_ref();
        (d.timestamp(), d.offset().local_minus_utc() / 60)
    });
    Ok(Prepared {
        flags,
        internal_date,
        raw,
    })
}

/// The keyword limit: against the keywords this session knows when `mailbox` is the one
/// selected; another mailbox's keywords are not loaded for this, so there only the
/// message's own keywords count.
pub(super) fn keyword_limit(
    s: &Session,
    mailbox: &str,
    flags: &storage::Flags,
) -> Result<(), Done> {
    if s.sel.as_ref().is_some_and(|sel| sel.name == mailbox) {
        return s.check_keyword_limit(flags);
    }
    let max = s.ctx.config.max_keywords;
    if crate::imap::selected::keywords_of(flags).count() > max {
        return Err(Done::no(
            Code::Limit,
            format!("Too many keywords in mailbox (limit {max})."),
        ));
    }
    Ok(())
}

pub(crate) async fn append(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    flags: Vec<Flag<'static>>,
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let mut p = prepare(&flags, date, &message)?;
    keyword_limit(s, &name, &p.flags)?;
    let outcome = if crate::imap::acl::split_shared(&name).is_some() {
        // Another user's mailbox: `i` to append, and only the flags the rights allow.
        let t = super::acl::resolve_with(s, name, 'i').await?;
        p.flags = super::acl::allowed_flags(t.rights, &p.flags);
        let target = t.name.clone();
        super::acl::write(s, &t, move |st| p.append_to(st, &target)).await?
    } else {
        let target = name.clone();
        s.store_write(move |st| p.append_to(st, &target))
            .await
            .map_err(trycreate(&name))?
    };
    Ok(Done::ok_coded(
        Code::AppendUid {
            uidvalidity: outcome.uidvalidity,
            uids: vec![outcome.uid],
        },
        "Append completed.",
    ))
}

/// MULTIAPPEND (RFC 3502): every message is checked before any is stored; if the store fails
/// part way, the messages already appended are expunged again before the NO, so the command
/// leaves all or none. (The store has no multi-message transaction: another session may
/// briefly see the rolled-back messages, and they use up UIDs.)
pub(crate) async fn multi_append(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    messages: Vec<AppendMessage>,
) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let prepared = messages
        .iter()
        .map(|m| prepare(&m.flags, m.date.clone(), &m.message))
        .collect::<Result<Vec<_>, Done>>()?;
    drop(messages);
    append_all(s, name, prepared).await
}

/// Appends every message of `prepared` to `name`, all or none (see [`multi_append`]).
pub(super) async fn append_all(s: &mut Session, name: String, prepared: Vec<Prepared>) -> Reply {
    let mut all_flags = storage::Flags::new();
    for p in &prepared {
        all_flags.extend(p.flags.iter().cloned());
    }
    keyword_limit(s, &name, &all_flags)?;
    let target = name.clone();
    let (uidvalidity, uids) = s
        .store_write(move |st| {
            let mut uids = Vec::with_capacity(prepared.len());
            let mut uidvalidity = 0;
            for p in prepared {
                match p.append_to(st, &target) {
                    Ok(o) => {
                        uidvalidity = o.uidvalidity;
                        uids.push(o.uid);
                    }
                    Err(e) => {
                        if !uids.is_empty() {
                            if let Err(undo) = st.expunge(&target, &uids) {
                                tracing::error!(
                                    "MULTIAPPEND rollback of uids {uids:?} in {target} failed: {undo}"
                                );
                            }
                        }
                        return Err(e);
                    }
                }
            }
            Ok((uidvalidity, uids))
        })
        .await
        .map_err(trycreate(&name))?;
    Ok(Done::ok_coded(
        Code::AppendUid { uidvalidity, uids },
        "Append completed.",
    ))
}
