//! APPEND (flags, internal date, literal or literal8), answering APPENDUID (UIDPLUS).

use crate::imap::format;
use crate::imap::session::{Done, Reply, Session};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use storage::NewMessage;

/// Bare LF line ends become CRLF: the store keeps messages as RFC 5322 wants them.
pub(crate) fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

pub(crate) async fn append(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    flags: Vec<Flag<'static>>,
    date: Option<DateTime>,
    message: LiteralOrLiteral8<'static>,
) -> Reply {
    let name = s.mailbox_in(&super::mailbox::raw_name(&mailbox))?;
    let flags = format::store_flags(flags.iter()).map_err(Done::Bad)?;
    let raw = match &message {
        LiteralOrLiteral8::Literal(l) => to_crlf(l.as_ref()),
        LiteralOrLiteral8::Literal8(l) => to_crlf(&l.data),
    };
    if raw.is_empty() {
        return Err(Done::No("Can't save a zero byte message.".into()));
    }
    let internal_date = date.map(|d| {
        let d = d.as_ref();
        (d.timestamp(), d.offset().local_minus_utc() / 60)
    });
    s.check_writable()?;
    let target = name.clone();
    let outcome = s
        .store_call(move |st| {
            st.append(
                &target,
                NewMessage {
                    raw: &raw,
                    flags,
                    internal_date,
                    delivery_key: None,
                },
            )
        })
        .await
        .map_err(|d| match d {
            Done::No(t) if t.starts_with("[NONEXISTENT]") => {
                Done::No(format!("[TRYCREATE] Mailbox doesn't exist: {name}"))
            }
            other => other,
        })?;
    // Durable: the store's append returned after its group-commit fsync.
    s.committed().await;
    Ok(Done::Ok(format!(
        "[APPENDUID {} {}] Append completed.",
        outcome.uidvalidity, outcome.uid
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crlf() {
        assert_eq!(super::to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
