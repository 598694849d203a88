//! REPLACE and UID REPLACE (RFC 8508): a new message goes into a mailbox (APPEND's rules)
//! and the one it replaces leaves the selected mailbox, as one command. The append comes
//! first: if it fails, the original stays.

use super::append::{keyword_limit, prepare};
use crate::imap::reply::{trycreate, Done, Reply};
use crate::imap::response::{Code, RespText, Untagged};
use crate::imap::session::Session;
use imap_codec::imap_types::command::CommandBody;

pub(crate) async fn replace(
    s: &mut Session,
    uid: bool,
    num: u32,
    append: CommandBody<'static>,
) -> Reply {
    let CommandBody::Append {
        mailbox,
        flags,
        date,
        message,
    } = append
    else {
        return Err(Done::Bad(
            "Error in IMAP command REPLACE: Invalid arguments.".into(),
        ));
    };
    let sel = s.selected()?;
    if sel.read_only {
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    let old = if uid {
        sel.index_of_uid(num).map(|_| num)
    } else {
        num.checked_sub(1)
            .and_then(|i| sel.msgs.get(i as usize))
            .map(|m| m.meta.uid)
    };
    let Some(old) = old else {
        return Err(Done::Bad(
            "Error in IMAP command REPLACE: Invalid messageset.".into(),
        ));
    };
    let current = sel.name.clone();
    let name = s.mailbox_arg(&mailbox)?;
    let p = prepare(&flags, date, &message)?;
    keyword_limit(s, &name, &p.flags)?;
    let target = name.clone();
    let (outcome, gone) = s
        .store_write(move |st| {
            let outcome = p.append_to(st, &target)?;
            let gone = st.expunge(&current, &[old])?;
            Ok((outcome, gone))
        })
        .await
        .map_err(trycreate(&name))?;
    s.send(&Untagged::Ok(RespText::coded(
        Code::AppendUid {
            uidvalidity: outcome.uidvalidity,
            uids: vec![outcome.uid],
        },
        "Replacement Message ID",
    )));
    s.announce_expunged(&gone);
    Ok(Done::Ok("Replace completed.".into()))
}
