//! The commands, one file per command or small group, and the dispatcher that checks the
//! session state before running one.

mod acl;
mod any;
mod append;
mod auth;
mod catenate;
mod compress;
mod context;
mod copy;
mod enable;
mod expunge;
mod fetch;
mod idle;
mod list;
mod mailbox;
mod matching;
mod metadata;
mod notify;
mod proxy;
mod quota;
mod replace;
mod search;
mod select;
mod sort;
mod status;
mod status_data;
mod store;
pub(crate) mod thread;
mod urlauth;

use super::parse::Kind;
use super::reply::{Done, Reply};
use super::session::{Session, State};
use imap_codec::imap_types::command::CommandBody;

/// Whether EXPUNGE responses may follow the command: not after FETCH, STORE, SEARCH or SORT,
/// whose answers carry sequence numbers the client must be able to trust (RFC 9051 7.5.1).
pub(crate) fn allows_expunge(kind: &Kind) -> bool {
    use CommandBody as C;
    !matches!(
        kind,
        Kind::SearchReturn { .. }
            | Kind::FetchExt { .. }
            | Kind::Codec(
                C::Search { .. }
                    | C::Sort { .. }
                    | C::Thread { .. }
                    | C::Fetch { .. }
                    | C::Store { .. }
            )
    )
}

pub(crate) use acl::SharedView;
pub(crate) use context::update as update_contexts;
#[cfg(test)]
pub(crate) use metadata::MAX_VALUE as MAX_METADATA_VALUE;
pub(crate) use notify::{check as notify_check, NotifyState};

fn not_authenticated() -> Reply {
    Err(Done::Bad("Please log in first.".into()))
}

fn not_selected() -> Reply {
    Err(Done::Bad("No mailbox selected.".into()))
}

/// Whether a command is about the selected mailbox (or no mailbox at all): while another
/// user's mailbox is selected it runs on the owner's store; every other command runs with the
/// user's own store put back (see [`acl`]).
fn about_selected(kind: &Kind) -> bool {
    use CommandBody as C;
    match kind {
        Kind::SearchReturn { .. }
        | Kind::FetchExt { .. }
        | Kind::CancelUpdate(_)
        | Kind::Replace { .. }
        | Kind::Unauthenticate => true,
        Kind::Codec(body) => matches!(
            body,
            C::Capability
                | C::Noop
                | C::Logout
                | C::Id { .. }
                | C::Idle
                | C::Check
                | C::Close
                | C::Unselect
                | C::Expunge
                | C::ExpungeUid { .. }
                | C::Search { .. }
                | C::Sort { .. }
                | C::Thread { .. }
                | C::Fetch { .. }
                | C::Store { .. }
                | C::Copy { .. }
                | C::Move { .. }
        ),
        _ => false,
    }
}

/// Runs one command, once the session's state allows it.
pub(crate) async fn dispatch(s: &mut Session, tag: &str, kind: Kind) -> Reply {
    if s.shared.is_none() {
        return run(s, tag, kind).await;
    }
    use CommandBody as C;
    if matches!(kind, Kind::Replace { .. }) {
        // The new message goes to the user's namespace, the old one is in another user's store.
        return Err(Done::no(
            super::response::Code::Cannot,
            "REPLACE in another user's mailbox is not supported.",
        ));
    }
    let home = !about_selected(&kind);
    if home {
        s.swap_home();
    } else if !matches!(
        kind,
        Kind::Unauthenticate
            | Kind::Codec(C::Logout | C::Capability | C::Id { .. } | C::Close | C::Unselect)
    ) {
        // Rights are read again for every command on the selected mailbox.
        acl::refresh(s).await?;
    }
    let r = run(s, tag, kind).await;
    // The command may have left the shared view (SELECT, CLOSE), or entered a new one.
    if home && s.shared.as_ref().is_some_and(|v| v.is_swapped()) {
        s.swap_home();
    }
    r
}

async fn run(s: &mut Session, tag: &str, kind: Kind) -> Reply {
    let authed = matches!(s.state, State::Authenticated | State::Selected);
    match kind {
        Kind::Codec(body) => codec(s, tag, body).await,
        Kind::SearchReturn { .. } if s.state != State::Selected => not_selected(),
        _ if !authed => not_authenticated(),
        Kind::List(args) => list::list(s, args).await,
        Kind::SearchReturn {
            options,
            partial,
            body,
        } => {
            let returns = matching::Returns::new(options, partial);
            if matches!(body, CommandBody::Sort { .. }) {
                sort::sort(s, body, Some(returns)).await
            } else {
                search::search(s, body, Some(returns)).await
            }
        }
        Kind::CancelUpdate(_) if s.state != State::Selected => not_selected(),
        Kind::CancelUpdate(tags) => context::cancel(s, &tags),
        Kind::Unauthenticate => auth::unauthenticate(s),
        Kind::Notify(spec) => notify::notify(s, spec).await,
        Kind::Replace { .. } if s.state != State::Selected => not_selected(),
        Kind::Replace { uid, num, append } => replace::replace(s, uid, num, append).await,
        Kind::StatusMailboxId { body, only } => match body {
            CommandBody::Status {
                mailbox,
                item_names,
            } => status::status_with(s, mailbox, &item_names, true, only).await,
            _ => Err(Done::Bad(
                "Error in IMAP command STATUS: Invalid arguments.".into(),
            )),
        },
        Kind::FetchExt { .. } if s.state != State::Selected => not_selected(),
        Kind::FetchExt {
            body,
            extra,
            hide_uid,
        } => match body {
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                fetch::fetch_with(
                    s,
                    sequence_set,
                    macro_or_item_names,
                    uid,
                    modifiers,
                    &extra,
                    hide_uid,
                )
                .await
            }
            _ => Err(Done::Bad(
                "Error in IMAP command FETCH: Invalid arguments.".into(),
            )),
        },
        Kind::MultiAppend { mailbox, messages } => append::multi_append(s, mailbox, messages).await,
        Kind::Catenate { mailbox, messages } => catenate::catenate(s, mailbox, messages).await,
        Kind::CreateUse {
            mailbox,
            special_use,
        } => mailbox::create(s, &mailbox, special_use.first().copied()).await,
        Kind::GetMetadata(g) => metadata::getmetadata(s, g).await,
        Kind::SetMetadata(set) => metadata::setmetadata(s, set).await,
        Kind::UrlAuth(u) => {
            use super::parse::UrlAuthCommand as U;
            match u {
                U::Gen(items) => urlauth::genurlauth(s, items).await,
                U::Fetch(urls) => urlauth::urlfetch(s, urls).await,
                U::ResetKey(mailbox) => urlauth::resetkey(s, mailbox).await,
            }
        }
        Kind::Acl(a) => {
            use super::parse::AclCommand as A;
            match a {
                A::GetAcl { mailbox } => acl::getacl(s, mailbox).await,
                A::SetAcl {
                    mailbox,
                    identifier,
                    rights,
                } => acl::setacl(s, mailbox, identifier, Some(rights)).await,
                A::DeleteAcl {
                    mailbox,
                    identifier,
                } => acl::setacl(s, mailbox, identifier, None).await,
                A::ListRights {
                    mailbox,
                    identifier,
                } => acl::listrights(s, mailbox, identifier).await,
                A::MyRights { mailbox } => acl::myrights(s, mailbox).await,
            }
        }
    }
}

/// The commands imap-codec parsed: those of any state and of the not-authenticated state here,
/// the rest by state below.
async fn codec(s: &mut Session, tag: &str, body: CommandBody<'static>) -> Reply {
    use CommandBody as C;
    let fresh = s.state == State::NotAuthenticated;
    let authed = matches!(s.state, State::Authenticated | State::Selected);
    match body {
        C::Capability => any::capability(s),
        C::Noop => Ok(Done::Ok("NOOP completed.".into())),
        C::Logout => any::logout(s),
        C::Id { parameters } => any::id(s, parameters),
        C::StartTLS if fresh => auth::starttls(s, tag).await,
        C::Login { username, password } if fresh => auth::login(s, username, password).await,
        C::Authenticate {
            mechanism,
            initial_response,
        } if fresh => auth::authenticate(s, mechanism, initial_response).await,
        C::StartTLS | C::Login { .. } | C::Authenticate { .. } => {
            Err(Done::Bad("Already logged in.".into()))
        }
        _ if !authed => not_authenticated(),
        body => authenticated(s, tag, body).await,
    }
}

/// Commands of the authenticated state (also allowed when a mailbox is selected).
async fn authenticated(s: &mut Session, tag: &str, body: CommandBody<'static>) -> Reply {
    use CommandBody as C;
    match body {
        C::Enable { capabilities } => enable::enable(s, capabilities),
        C::Namespace => any::namespace(s),
        C::Select {
            mailbox,
            parameters,
        } => select::select(s, mailbox, parameters, false).await,
        C::Examine {
            mailbox,
            parameters,
        } => select::select(s, mailbox, parameters, true).await,
        C::Create { mailbox } => {
            let raw = super::args::raw_name(&mailbox);
            mailbox::create(s, &raw, None).await
        }
        C::Delete { mailbox } => mailbox::delete(s, mailbox).await,
        C::Rename { from, to } => mailbox::rename(s, from, to).await,
        C::Subscribe { mailbox } => mailbox::subscribe(s, mailbox, true).await,
        C::Unsubscribe { mailbox } => mailbox::subscribe(s, mailbox, false).await,
        C::Status {
            mailbox,
            item_names,
        } => status::status(s, mailbox, &item_names).await,
        C::Append {
            mailbox,
            flags,
            date,
            message,
        } => append::append(s, mailbox, flags, date, message).await,
        C::Idle => idle::idle(s, tag).await,
        C::Compress { algorithm } => compress::compress(s, tag, algorithm).await,
        C::GetQuotaRoot { mailbox } => quota::getquotaroot(s, mailbox).await,
        C::GetQuota { root } => quota::getquota(s, root).await,
        C::SetQuota { .. } => quota::setquota(),
        _ if s.state != State::Selected => not_selected(),
        body => selected(s, body).await,
    }
}

/// Commands of the selected state.
async fn selected(s: &mut Session, body: CommandBody<'static>) -> Reply {
    use CommandBody as C;
    match body {
        C::Check => Ok(Done::Ok("Check completed.".into())),
        C::Close => select::close(s, true).await,
        C::Unselect => select::close(s, false).await,
        C::Expunge => expunge::expunge(s, None).await,
        C::ExpungeUid { sequence_set } => expunge::expunge(s, Some(sequence_set)).await,
        C::Search { .. } => search::search(s, body, None).await,
        C::Sort { .. } => sort::sort(s, body, None).await,
        C::Thread { .. } => thread::thread(s, body).await,
        C::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            modifiers,
        } => fetch::fetch(s, sequence_set, macro_or_item_names, uid, modifiers).await,
        C::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            modifiers,
        } => store::store(s, sequence_set, kind, response, flags, uid, modifiers).await,
        C::Copy {
            sequence_set,
            mailbox,
            uid,
        } => copy::copy(s, sequence_set, mailbox, uid, false).await,
        C::Move {
            sequence_set,
            mailbox,
            uid,
        } => copy::copy(s, sequence_set, mailbox, uid, true).await,
        _ => Err(Done::Bad(
            "Error in IMAP command received by server: Unsupported command.".into(),
        )),
    }
}
