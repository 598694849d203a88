//! APPEND with CATENATE (RFC 4469): each message is put together from text parts and IMAP
//! URLs naming (parts of) messages in the user's own mailboxes, then all messages are
//! appended together, all or none (as MULTIAPPEND). A URL that names nothing is
//! `NO [BADURL url]` and nothing is appended; a target mailbox that does not exist is
//! `NO [TRYCREATE]` before any URL is looked at.

use super::append::{append_all, Prepared};
use crate::imap::args;
use crate::imap::message::{self, Partial, SectionSpec, SectionText};
use crate::imap::parse::{CatMessage, CatPart};
use crate::imap::reply::{trycreate, Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use crate::imap::url::{self, ImapUrl};
use imap_codec::imap_types::mailbox::Mailbox;

pub(crate) async fn catenate(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    messages: Vec<CatMessage>,
) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let n = name.clone();
    s.store_call(move |st| st.mailbox(&n))
        .await
        .map_err(trycreate(&name))?;
    let user = s.user.clone().unwrap_or_default();
    // Every URL checked before anything is read.
    let mut plan: Vec<Vec<Piece>> = Vec::new();
    let mut heads = Vec::new();
    for m in messages {
        let flags = args::store_flags(m.flags.iter()).map_err(|e| Done::Bad(e.into()))?;
        let date = m.date.map(|d| {
            let d = d.as_ref();
            (d.timestamp(), d.offset().local_minus_utc() / 60)
        });
        let mut pieces = Vec::with_capacity(m.parts.len());
        for p in m.parts {
            pieces.push(match p {
                // Bare LF line ends become CRLF, as for APPEND.
                CatPart::Text(t) => Piece::Text(crate::lmtp::normalize_crlf(&t)),
                CatPart::Url(u) => {
                    let parsed = url::parse(&u)
                        .filter(|p| p.user.as_deref().is_none_or(|x| x == user))
                        .and_then(|p| Some((spec_of(&p)?, p)));
                    match parsed {
                        Some((spec, p)) => Piece::Url {
                            url: u,
                            parsed: p,
                            spec,
                        },
                        None => return Err(bad_url(&u)),
                    }
                }
            });
        }
        heads.push((flags, date));
        plan.push(pieces);
    }
    let max = s.ctx.config.max_literal_size;
    let mailbox_in: Vec<Option<String>> = plan
        .iter()
        .flat_map(|pieces| pieces.iter())
        .map(|p| match p {
            Piece::Url { parsed, .. } => s.mailbox_in(parsed.mailbox.as_bytes()).ok(),
            Piece::Text(_) => None,
        })
        .collect();
    let built = s
        .store_call(move |st| {
            let mut names = mailbox_in.into_iter();
            let mut out = Vec::with_capacity(plan.len());
            for pieces in plan {
                let mut raw = Vec::new();
                for p in pieces {
                    let mb = names.next().flatten();
                    match p {
                        Piece::Text(t) => raw.extend_from_slice(&t),
                        Piece::Url { url, parsed, spec } => {
                            match mb.and_then(|mb| fetch_url(st, &mb, &parsed, &spec)) {
                                Some(bytes) => raw.extend_from_slice(&bytes),
                                None => return Ok(Err(url)),
                            }
                        }
                    }
                    if raw.len() as u64 > max {
                        return Ok(Err(String::new()));
                    }
                }
                out.push(raw);
            }
            Ok(Ok(out))
        })
        .await?;
    let raws = match built {
        Ok(r) => r,
        Err(u) if u.is_empty() => {
            return Err(Done::no(
                Code::TooBig,
                format!("Message too large: limit {max} bytes"),
            ))
        }
        Err(u) => return Err(bad_url(&u)),
    };
    let mut prepared = Vec::with_capacity(raws.len());
    for ((flags, internal_date), raw) in heads.into_iter().zip(raws) {
        if raw.is_empty() {
            return Err(Done::No("Can't save a zero byte message.".into()));
        }
        prepared.push(Prepared {
            flags,
            internal_date,
            raw,
        });
    }
    append_all(s, name, prepared).await
}

/// A part of a message to put together.
enum Piece {
    Text(Vec<u8>),
    Url {
        url: String,
        parsed: ImapUrl,
        spec: SectionSpec,
    },
}

fn bad_url(u: &str) -> Done {
    Done::no(Code::BadUrl(u.to_string()), "Bad IMAP URL.")
}

/// The bytes a URL names: the message of that UID (in that UIDVALIDITY when given), its
/// section and range. None when there is no such message.
pub(super) fn fetch_url(
    st: &crate::mail::Reader,
    mailbox: &str,
    u: &ImapUrl,
    spec: &SectionSpec,
) -> Option<Vec<u8>> {
    let info = st.mailbox(mailbox).ok()?;
    if u.uidvalidity.is_some_and(|v| v != info.uidvalidity) {
        return None;
    }
    let metas = st.messages(mailbox).ok()?;
    let meta = metas.iter().find(|m| m.uid == u.uid)?;
    let raw = st.read_message(&meta.object).ok()?;
    let facts = st.facts(&meta.object).ok()?;
    Some(message::extract(&raw, &facts, spec))
}

/// SECTION and PARTIAL of a URL as a BODY[section]<partial>; None for a section that is not
/// well-formed.
pub(super) fn spec_of(u: &ImapUrl) -> Option<SectionSpec> {
    let mut spec = SectionSpec::default();
    if let Some(sec) = &u.section {
        let (path, rest) = match sec.split_once(' ') {
            Some((p, r)) => (p, Some(r)),
            None => (sec.as_str(), None),
        };
        let mut words = path.split('.').peekable();
        while let Some(n) = words.peek().and_then(|w| w.parse::<u32>().ok()) {
            if n == 0 {
                return None;
            }
            spec.part.push(n);
            words.next();
        }
        let text: Vec<String> = words.map(str::to_ascii_uppercase).collect();
        let names = || -> Option<Vec<Vec<u8>>> {
            let list = rest?.trim().strip_prefix('(')?.strip_suffix(')')?;
            let v: Vec<Vec<u8>> = list
                .split_whitespace()
                .map(|n| n.as_bytes().to_vec())
                .collect();
            (!v.is_empty()).then_some(v)
        };
        spec.text = match text.join(".").as_str() {
            "" if rest.is_none() && !spec.part.is_empty() => None,
            "HEADER" if rest.is_none() => Some(SectionText::Header),
            "TEXT" if rest.is_none() => Some(SectionText::Text),
            "MIME" if rest.is_none() && !spec.part.is_empty() => Some(SectionText::Mime),
            "HEADER.FIELDS" => Some(SectionText::HeaderFields(names()?)),
            "HEADER.FIELDS.NOT" => Some(SectionText::HeaderFieldsNot(names()?)),
            _ => return None,
        };
    }
    spec.partial = u.partial.map(|(origin, len)| Partial {
        origin,
        count: len.unwrap_or(u64::MAX),
    });
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> Option<SectionSpec> {
        spec_of(&url::parse(url).unwrap())
    }

    #[test]
    fn url_sections_become_body_sections() {
        assert_eq!(spec("/a/;uid=1"), Some(SectionSpec::default()));
        let s = spec("/a/;uid=1/;section=1.2.mime").unwrap();
        assert_eq!((s.part, s.text), (vec![1, 2], Some(SectionText::Mime)));
        let s = spec("/a/;uid=1/;section=header.fields%20(From%20To)").unwrap();
        assert_eq!(
            s.text,
            Some(SectionText::HeaderFields(vec![
                b"From".to_vec(),
                b"To".to_vec()
            ]))
        );
        let s = spec("/a/;uid=1/;partial=5").unwrap();
        assert_eq!(
            s.partial,
            Some(Partial {
                origin: 5,
                count: u64::MAX
            })
        );
        for bad in [
            "/a/;uid=1/;section=mime",
            "/a/;uid=1/;section=0",
            "/a/;uid=1/;section=foo",
            "/a/;uid=1/;section=header.fields",
        ] {
            assert_eq!(spec(bad), None, "{bad}");
        }
    }
}
