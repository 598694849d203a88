//! The commands, one file per command or small group, and the dispatcher that checks the
//! session state before running one.

mod any;
mod append;
mod auth;
mod copy;
mod enable;
mod expunge;
mod fetch;
mod idle;
mod list;
mod mailbox;
mod search;
mod select;
mod sort;
mod status;
mod store;

use super::parse::Kind;
use super::session::{Done, Reply, Session, State};
use imap_codec::imap_types::command::CommandBody;

/// Runs one command. Returns its reply and whether EXPUNGE responses may follow it.
pub(crate) async fn dispatch(s: &mut Session, tag: &str, kind: Kind) -> (Reply, bool) {
    use CommandBody as C;
    let state = s.state;
    let authed = matches!(state, State::Authenticated | State::Selected);
    let selected = state == State::Selected;
    let not_authed = Err(Done::Bad("Please log in first.".into()));
    let not_selected = Err(Done::Bad("No mailbox selected.".into()));
    let already = Err(Done::Bad("Already logged in.".into()));
    match kind {
        Kind::List(args) => {
            if !authed {
                return (not_authed, true);
            }
            (list::list(s, args).await, true)
        }
        Kind::SearchReturn { options, body } => {
            if !selected {
                return (not_selected, false);
            }
            if matches!(body, CommandBody::Sort { .. }) {
                return (sort::sort(s, body, Some(options)).await, false);
            }
            (search::search(s, body, Some(options)).await, false)
        }
        Kind::MultiAppend { mailbox, messages } => {
            if !authed {
                return (not_authed, true);
            }
            (append::multi_append(s, mailbox, messages).await, true)
        }
        Kind::CreateUse {
            mailbox,
            special_use,
        } => {
            if !authed {
                return (not_authed, true);
            }
            (
                mailbox::create(s, &mailbox, special_use.first().copied()).await,
                true,
            )
        }
        Kind::Codec(body) => match body {
            C::Capability => (any::capability(s), true),
            C::Noop => (Ok(Done::Ok("NOOP completed.".into())), true),
            C::Logout => (any::logout(s), true),
            C::Id { parameters } => (any::id(s, parameters), true),
            C::StartTLS if state == State::NotAuthenticated => (auth::starttls(s, tag).await, true),
            C::Login { username, password } if state == State::NotAuthenticated => {
                (auth::login(s, username, password).await, true)
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } if state == State::NotAuthenticated => (
                auth::authenticate(s, mechanism, initial_response).await,
                true,
            ),
            C::StartTLS | C::Login { .. } | C::Authenticate { .. } => (already, true),
            _ if !authed => (not_authed, true),
            C::Enable { capabilities } => (enable::enable(s, capabilities), true),
            C::Namespace => (any::namespace(s), true),
            C::Select {
                mailbox,
                parameters,
            } => (select::select(s, mailbox, parameters, false).await, true),
            C::Examine {
                mailbox,
                parameters,
            } => (select::select(s, mailbox, parameters, true).await, true),
            C::Create { mailbox } => {
                let raw = super::commands::mailbox::raw_name(&mailbox);
                (mailbox::create(s, &raw, None).await, true)
            }
            C::Delete { mailbox } => (mailbox::delete(s, mailbox).await, true),
            C::Rename { from, to } => (mailbox::rename(s, from, to).await, true),
            C::Subscribe { mailbox } => (mailbox::subscribe(s, mailbox, true).await, true),
            C::Unsubscribe { mailbox } => (mailbox::subscribe(s, mailbox, false).await, true),
            C::Status {
                mailbox,
                item_names,
            } => (status::status(s, mailbox, &item_names).await, true),
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => (append::append(s, mailbox, flags, date, message).await, true),
            C::Idle => (idle::idle(s, tag).await, true),
            _ if !selected => (not_selected, true),
            C::Check => (Ok(Done::Ok("Check completed.".into())), true),
            C::Close => (select::close(s, true).await, true),
            C::Unselect => (select::close(s, false).await, true),
            C::Expunge => (expunge::expunge(s, None).await, true),
            C::ExpungeUid { sequence_set } => (expunge::expunge(s, Some(sequence_set)).await, true),
            C::Search { .. } => (search::search(s, body, None).await, false),
            C::Sort { .. } => (sort::sort(s, body, None).await, false),
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => (
                fetch::fetch(s, sequence_set, macro_or_item_names, uid, modifiers).await,
                false,
            ),
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => (
                store::store(s, sequence_set, kind, response, flags, uid, modifiers).await,
                false,
            ),
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => (copy::copy(s, sequence_set, mailbox, uid, false).await, true),
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => (copy::copy(s, sequence_set, mailbox, uid, true).await, true),
            _ => (
                Err(Done::Bad(
                    "Error in IMAP command received by server: Unsupported command.".into(),
                )),
                true,
            ),
        },
    }
}
