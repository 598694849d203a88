//! From a framed command to a request: imap-codec for the grammar it knows, hand-written parsers
//! (over [`super::lexer`]) for LIST-EXTENDED, SEARCH RETURN and CREATE ... (USE ...).

use super::framing::tag_of;
use super::lexer::{tokenize, Tok, Token};
use super::parse_ext::{catenate, fetch_ext, parse_notify, status_mailboxid};
pub use super::parse_ext::{
    partial_range, CatMessage, CatPart, ExtraItem, NotifyFilter, NotifyGroup, NotifySpec,
};
pub use super::parse_meta::{
    AclCommand, Depth, GetMetadata, SetMetadata, UrlAuthCommand, UrlFetchArg, UrlFetchItems,
};
use super::response::{Code, RespText};
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;
use storage::SpecialUse;

/// A parsed client command.
#[derive(Debug)]
pub struct Request {
    pub tag: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// Anything imap-codec parsed.
    Codec(CommandBody<'static>),
    /// LIST and LSUB, always hand-parsed (LIST-EXTENDED options, several patterns).
    List(ListArgs),
    /// SEARCH or SORT with `RETURN (...)` (ESEARCH, ESORT); the command itself is a
    /// codec-parsed Search or Sort body.
    SearchReturn {
        options: Vec<String>,
        /// `PARTIAL first:last` (RFC 9394): positions in the result, 1-based; negative ones
        /// count from the end. Both have the same sign; `first` is the nearer to that end.
        partial: Option<(i64, i64)>,
        body: CommandBody<'static>,
    },
    /// CANCELUPDATE (RFC 5267): the tags of the searches whose updates end.
    CancelUpdate(Vec<String>),
    /// UNAUTHENTICATE (RFC 8437).
    Unauthenticate,
    /// NOTIFY (RFC 5465): None is NOTIFY NONE.
    Notify(Option<NotifySpec>),
    /// REPLACE / UID REPLACE (RFC 8508): the message number and the APPEND it amounts to
    /// (parsed by imap-codec as one).
    Replace {
        uid: bool,
        num: u32,
        append: CommandBody<'static>,
    },
    /// FETCH with items imap-codec does not know (OBJECTID's EMAILID and THREADID, PREVIEW):
    /// they are cut out and the rest parsed by imap-codec. `hide_uid`: nothing else was
    /// asked, so UID stood in for the list and is not to be answered (unless UID FETCH).
    FetchExt {
        body: CommandBody<'static>,
        extra: Vec<ExtraItem>,
        hide_uid: bool,
    },
    /// STATUS asking MAILBOXID (RFC 8474), cut out and the rest parsed by imap-codec;
    /// `only`: it was the only item (MESSAGES stood in and is not to be answered).
    StatusMailboxId {
        body: CommandBody<'static>,
        only: bool,
    },
    /// APPEND with more than one message (RFC 3502 MULTIAPPEND); each message's part was
    /// parsed by imap-codec as a one-message APPEND.
    MultiAppend {
        mailbox: Mailbox<'static>,
        messages: Vec<AppendMessage>,
    },
    /// APPEND with CATENATE (RFC 4469) in any of its messages (MULTIAPPEND included).
    Catenate {
        mailbox: Mailbox<'static>,
        messages: Vec<CatMessage>,
    },
    /// CREATE with a USE list (RFC 6154 CREATE-SPECIAL-USE).
    CreateUse {
        mailbox: Vec<u8>,
        special_use: Vec<SpecialUse>,
    },
    /// GETMETADATA (RFC 5464).
    GetMetadata(GetMetadata),
    /// SETMETADATA (RFC 5464).
    SetMetadata(SetMetadata),
    /// SETACL, DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS (RFC 4314).
    Acl(AclCommand),
    /// GENURLAUTH, URLFETCH, RESETKEY (RFC 4467).
    UrlAuth(UrlAuthCommand),
}

/// One message of a MULTIAPPEND.
#[derive(Debug)]
pub struct AppendMessage {
    pub flags: Vec<Flag<'static>>,
    pub date: Option<DateTime>,
    pub message: LiteralOrLiteral8<'static>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub lsub: bool,
    /// Selection options, upper-cased (SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE).
    pub selection: Vec<String>,
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    /// Return options, upper-cased (SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS).
    pub returns: Vec<String>,
    /// STATUS items of `RETURN (STATUS (...))`, upper-cased.
    pub status_items: Vec<String>,
    /// Whether the LIST-EXTENDED syntax was used (changes what is reported).
    pub extended: bool,
}

/// Why a command could not be parsed: answer `tag BAD text` (or untagged when no tag).
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub text: RespText,
}

pub(super) fn bad(msg: &[u8], text: &str) -> ParseError {
    ParseError {
        tag: tag_of(msg),
        text: RespText::new(text.to_string()),
    }
}

/// Parses one framed command (line(s) with CRLF, literals included).
pub fn parse(msg: &[u8]) -> Result<Request, ParseError> {
    let tag = tag_of(msg).ok_or_else(|| bad(msg, "Error in IMAP command received by server."))?;
    // SAVEDATE's search keys (RFC 8514) as keys imap-codec knows; tokenized only when the
    // word can be there.
    let rewritten = if msg.windows(5).any(|w| w.eq_ignore_ascii_case(b"SAVED")) {
        super::savedate::rewrite(msg).map_err(|_| {
            bad(
                msg,
                "Error in IMAP command SEARCH: Invalid SAVEDATE search key.",
            )
        })?
    } else {
        None
    };
    let msg = rewritten.as_deref().unwrap_or(msg);
    let toks = tokenize(msg);
    if let Some(toks) = &toks {
        if let Some(kind) = hand_parse(msg, toks)? {
            return Ok(Request { tag, kind });
        }
    }
    let body = codec_parse(msg)?;
    Ok(Request {
        tag,
        kind: Kind::Codec(body),
    })
}

pub(super) fn codec_parse(msg: &[u8]) -> Result<CommandBody<'static>, ParseError> {
    match CommandCodec::default().decode(msg) {
        Ok((&[], cmd)) => Ok(cmd.body.into_static()),
        Ok(_) => Err(bad(
            msg,
            "Error in IMAP command: unexpected data after the command.",
        )),
        Err(CommandDecodeError::Incomplete) | Err(CommandDecodeError::LiteralFound { .. }) => {
            Err(bad(msg, "Error in IMAP command: incomplete command."))
        }
        Err(CommandDecodeError::Failed) => Err(bad(msg, &error_text(msg))),
    }
}

/// Dovecot-like texts: unknown command vs. bad arguments.
fn error_text(msg: &[u8]) -> String {
    let words: Vec<&[u8]> = msg
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .filter(|w| !w.is_empty())
        .take(3)
        .collect();
    let mut name = words
        .get(1)
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    if name == b"UID" {
        name = words
            .get(2)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
    }
    const KNOWN: &[&str] = &[
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "AUTHENTICATE",
        "LOGIN",
        "ENABLE",
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "NAMESPACE",
        "STATUS",
        "APPEND",
        "IDLE",
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "SEARCH",
        "FETCH",
        "STORE",
        "COPY",
        "MOVE",
        "ID",
    ];
    let name = String::from_utf8_lossy(&name).to_string();
    if name.is_empty() {
        "Error in IMAP command received by server.".to_string()
    } else if KNOWN.contains(&name.as_str()) {
        format!("Error in IMAP command {name}: Invalid arguments.")
    } else {
        "Error in IMAP command received by server.".to_string()
    }
}

/// The commands parsed by hand; Ok(None) hands the command to imap-codec.
fn hand_parse(msg: &[u8], toks: &[Token]) -> Result<Option<Kind>, ParseError> {
    let Some(cmd) = toks.get(1) else {
        return Ok(None);
    };
    if cmd.atom_eq("LIST") || cmd.atom_eq("LSUB") {
        let args = parse_list(toks.get(2..).unwrap_or_default(), cmd.atom_eq("LSUB"))
            .ok_or_else(|| bad(msg, "Error in IMAP command LIST: Invalid arguments."))?;
        return Ok(Some(Kind::List(args)));
    }
    let search_at = if cmd.atom_eq("UID") { 2 } else { 1 };
    // SORT RETURN is ESORT (RFC 5267): the same options, the same cut.
    let is_sort = toks.get(search_at).is_some_and(|t| t.atom_eq("SORT"));
    if (is_sort || toks.get(search_at).is_some_and(|t| t.atom_eq("SEARCH")))
        && toks.get(search_at + 1).is_some_and(|t| t.atom_eq("RETURN"))
    {
        return search_return(
            msg,
            toks,
            search_at,
            if is_sort { "SORT" } else { "SEARCH" },
        );
    }
    if toks.get(search_at).is_some_and(|t| t.atom_eq("REPLACE")) {
        let invalid = || bad(msg, "Error in IMAP command REPLACE: Invalid arguments.");
        let num = match toks.get(search_at + 1).map(|t| &t.tok) {
            Some(Tok::Atom(n)) if n.bytes().all(|c| c.is_ascii_digit()) => n
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
        let rest = toks.get(search_at + 2).ok_or_else(invalid)?;
        let mut one = b"x APPEND ".to_vec();
        one.extend_from_slice(msg.get(rest.start..).unwrap_or_default());
        return match codec_parse(&one) {
            Ok(append @ CommandBody::Append { .. }) => Ok(Some(Kind::Replace {
                uid: search_at == 2,
                num,
                append,
            })),
            _ => Err(invalid()),
        };
    }
    if cmd.atom_eq("GETMETADATA") {
        return super::parse_meta::getmetadata(toks)
            .map(|g| Some(Kind::GetMetadata(g)))
            .ok_or_else(|| bad(msg, "Error in IMAP command GETMETADATA: Invalid arguments."));
    }
    if cmd.atom_eq("SETMETADATA") {
        return super::parse_meta::setmetadata(toks)
            .map(|s| Some(Kind::SetMetadata(s)))
            .ok_or_else(|| bad(msg, "Error in IMAP command SETMETADATA: Invalid arguments."));
    }
    for word in ["GENURLAUTH", "URLFETCH", "RESETKEY"] {
        if cmd.atom_eq(word) {
            return super::parse_meta::urlauth(word, toks)
                .map(|u| Some(Kind::UrlAuth(u)))
                .ok_or_else(|| {
                    bad(
                        msg,
                        &format!("Error in IMAP command {word}: Invalid arguments."),
                    )
                });
        }
    }
    for word in ["SETACL", "DELETEACL", "GETACL", "LISTRIGHTS", "MYRIGHTS"] {
        if cmd.atom_eq(word) {
            return super::parse_meta::acl(word, toks)
                .map(|a| Some(Kind::Acl(a)))
                .ok_or_else(|| {
                    bad(
                        msg,
                        &format!("Error in IMAP command {word}: Invalid arguments."),
                    )
                });
        }
    }
    if cmd.atom_eq("NOTIFY") {
        return parse_notify(toks)
            .map(|spec| Some(Kind::Notify(spec)))
            .ok_or_else(|| bad(msg, "Error in IMAP command NOTIFY: Invalid arguments."));
    }
    if cmd.atom_eq("UNAUTHENTICATE") {
        if toks.len() != 2 {
            return Err(bad(
                msg,
                "Error in IMAP command UNAUTHENTICATE: Invalid arguments.",
            ));
        }
        return Ok(Some(Kind::Unauthenticate));
    }
    if cmd.atom_eq("CANCELUPDATE") {
        let invalid = || {
            bad(
                msg,
                "Error in IMAP command CANCELUPDATE: Invalid arguments.",
            )
        };
        let tags = toks
            .get(2..)
            .unwrap_or_default()
            .iter()
            .map(|t| match &t.tok {
                Tok::Str(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(invalid)?;
        return Ok(Some(Kind::CancelUpdate(tags)));
    }
    if toks.get(search_at).is_some_and(|t| t.atom_eq("FETCH")) {
        if let Some(kind) = fetch_ext(msg, toks, search_at)? {
            return Ok(Some(kind));
        }
    }
    if cmd.atom_eq("STATUS") {
        if let Some(kind) = status_mailboxid(msg, toks)? {
            return Ok(Some(kind));
        }
    }
    if cmd.atom_eq("APPEND") && toks.iter().any(|t| t.atom_eq("CATENATE")) {
        return catenate(msg, toks).map(Some);
    }
    if cmd.atom_eq("APPEND") {
        if let Some(kind) = multi_append(msg, toks)? {
            return Ok(Some(kind));
        }
    }
    if cmd.atom_eq("CREATE") && toks.len() > 3 {
        return create_use(msg, toks).map(Some);
    }
    Ok(None)
}

/// `SEARCH RETURN (...)` / `SORT RETURN (...)` (`name`), the command word at `search_at`:
/// the options are checked and cut out, and imap-codec parses the rest.
fn search_return(
    msg: &[u8],
    toks: &[Token],
    search_at: usize,
    name: &str,
) -> Result<Option<Kind>, ParseError> {
    let invalid = || {
        bad(
            msg,
            &format!("Error in IMAP command {name}: Invalid RETURN options."),
        )
    };
    let open = search_at + 2;
    if toks.get(open).map(|t| &t.tok) != Some(&Tok::Open) {
        return Err(invalid());
    }
    let mut options = Vec::new();
    let mut partial = None;
    let mut i = open + 1;
    loop {
        match toks.get(i).map(|t| &t.tok) {
            Some(Tok::Close) => break,
            Some(Tok::Atom(a)) if a.eq_ignore_ascii_case("PARTIAL") => {
                i += 1;
                let range = match toks.get(i).map(|t| &t.tok) {
                    Some(Tok::Atom(r)) => partial_range(r),
                    _ => None,
                };
                if partial.is_some() || range.is_none() {
                    return Err(bad(
                        msg,
                        &format!("Error in IMAP command {name}: Invalid PARTIAL range."),
                    ));
                }
                partial = range;
            }
            Some(Tok::Atom(a)) => options.push(a.to_ascii_uppercase()),
            _ => return Err(invalid()),
        }
        i += 1;
    }
    for o in &options {
        // SAVE (SEARCHRES, RFC 5182) is SEARCH's only.
        let save = o == "SAVE" && name == "SEARCH";
        if !save && !matches!(o.as_str(), "MIN" | "MAX" | "ALL" | "COUNT" | "UPDATE") {
            return Err(bad(
                msg,
                &format!("Error in IMAP command {name}: Unknown RETURN option {o}."),
            ));
        }
    }
    // Cut "RETURN (...)" out and let imap-codec parse the rest.
    let (Some(from), Some(to)) = (toks.get(search_at + 1), toks.get(i)) else {
        return Ok(None);
    };
    let mut rest = msg.get(..from.start).unwrap_or_default().to_vec();
    let tail = msg.get(to.end..).unwrap_or_default();
    let tail = tail.strip_prefix(b" ").unwrap_or(tail);
    rest.extend_from_slice(tail);
    let body = codec_parse(&rest)?;
    Ok(Some(Kind::SearchReturn {
        options,
        partial,
        body,
    }))
}

/// `CREATE name (USE (attrs))` (RFC 6154 CREATE-SPECIAL-USE).
fn create_use(msg: &[u8], toks: &[Token]) -> Result<Kind, ParseError> {
    let invalid = || bad(msg, "Error in IMAP command CREATE: Invalid arguments.");
    let mailbox = toks.get(2).and_then(Token::astring).ok_or_else(invalid)?;
    let t: Vec<&Tok> = toks
        .get(3..)
        .unwrap_or_default()
        .iter()
        .map(|t| &t.tok)
        .collect();
    let [Tok::Open, Tok::Atom(u), Tok::Open, inner @ .., Tok::Close, Tok::Close] = t.as_slice()
    else {
        return Err(invalid());
    };
    if !u.eq_ignore_ascii_case("USE") {
        return Err(invalid());
    }
    let mut special_use = Vec::new();
    for x in inner {
        let Tok::Atom(a) = x else {
            return Err(bad(msg, "Error in IMAP command CREATE: Invalid USE list."));
        };
        let Some(s) = special_use_of(a) else {
            return Err(ParseError {
                tag: tag_of(msg),
                text: RespText::coded(
                    Code::UseAttr,
                    format!("Unsupported special-use attribute {a}"),
                ),
            });
        };
        special_use.push(s);
    }
    Ok(Kind::CreateUse {
        mailbox,
        special_use,
    })
}

/// APPEND with two or more messages: Ok(None) for one message or a shape this does not
/// recognise (imap-codec then parses it, or answers BAD). Each message part (flags, date,
/// literal) is cut out and parsed by imap-codec as `tag APPEND mailbox part`.
fn multi_append(msg: &[u8], toks: &[Token]) -> Result<Option<Kind>, ParseError> {
    let Some(mailbox) = toks.get(2) else {
        return Ok(None);
    };
    let is_str_starting = |t: &Token, first: &[u8]| {
        matches!(t.tok, Tok::Str(_)) && msg.get(t.start).is_some_and(|b| first.contains(b))
    };
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let mut i = 3;
    while let Some(first) = toks.get(i) {
        if first.tok == Tok::Open {
            i += 1;
            while toks.get(i).is_some_and(|t| matches!(t.tok, Tok::Atom(_))) {
                i += 1;
            }
            if toks.get(i).map(|t| &t.tok) != Some(&Tok::Close) {
                return Ok(None);
            }
            i += 1;
        }
        if toks.get(i).is_some_and(|t| is_str_starting(t, b"\"")) {
            i += 1;
        }
        match toks.get(i) {
            Some(lit) if is_str_starting(lit, b"{~") => parts.push((first.start, lit.end)),
            _ => return Ok(None),
        }
        i += 1;
    }
    if parts.len() < 2 {
        return Ok(None);
    }
    let head = msg.get(..mailbox.end).unwrap_or_default();
    let mut name = None;
    let mut messages = Vec::with_capacity(parts.len());
    for (start, end) in parts {
        let mut one = head.to_vec();
        one.push(b' ');
        one.extend_from_slice(msg.get(start..end).unwrap_or_default());
        one.extend_from_slice(b"\r\n");
        match codec_parse(&one)? {
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                name.get_or_insert(mailbox);
                messages.push(AppendMessage {
                    flags,
                    date,
                    message,
                });
            }
            _ => return Ok(None),
        }
    }
    Ok(name.map(|mailbox| Kind::MultiAppend { mailbox, messages }))
}

pub fn special_use_of(a: &str) -> Option<SpecialUse> {
    Some(match a.to_ascii_lowercase().as_str() {
        "\\all" => SpecialUse::All,
        "\\archive" => SpecialUse::Archive,
        "\\drafts" => SpecialUse::Drafts,
        "\\flagged" => SpecialUse::Flagged,
        "\\junk" => SpecialUse::Junk,
        "\\sent" => SpecialUse::Sent,
        "\\trash" => SpecialUse::Trash,
        _ => return None,
    })
}

fn atoms_in_parens(toks: &[Token], i: &mut usize) -> Option<Vec<String>> {
    if toks.get(*i)?.tok != Tok::Open {
        return None;
    }
    *i += 1;
    let mut out = Vec::new();
    loop {
        match &toks.get(*i)?.tok {
            Tok::Close => {
                *i += 1;
                return Some(out);
            }
            Tok::Atom(a) => out.push(a.to_ascii_uppercase()),
            _ => return None,
        }
        *i += 1;
    }
}

fn parse_list(toks: &[Token], lsub: bool) -> Option<ListArgs> {
    let mut a = ListArgs {
        lsub,
        ..ListArgs::default()
    };
    let mut i = 0;
    if !lsub && toks.first()?.tok == Tok::Open {
        a.selection = atoms_in_parens(toks, &mut i)?;
        a.extended = true;
    }
    a.reference = toks.get(i)?.astring()?;
    i += 1;
    if toks.get(i)?.tok == Tok::Open && !lsub {
        i += 1;
        a.extended = true;
        loop {
            let t = toks.get(i)?;
            i += 1;
            if t.tok == Tok::Close {
                break;
            }
            a.patterns.push(t.astring()?);
        }
        if a.patterns.is_empty() {
            return None;
        }
    } else {
        a.patterns.push(toks.get(i)?.astring()?);
        i += 1;
    }
    if i < toks.len() {
        if lsub || !toks.get(i)?.atom_eq("RETURN") {
            return None;
        }
        i += 1;
        a.extended = true;
        if toks.get(i)?.tok != Tok::Open {
            return None;
        }
        i += 1;
        loop {
            let t = toks.get(i)?;
            i += 1;
            match &t.tok {
                Tok::Close => break,
                Tok::Atom(w) if w.eq_ignore_ascii_case("STATUS") => {
                    a.returns.push("STATUS".into());
                    a.status_items = atoms_in_parens(toks, &mut i)?;
                }
                Tok::Atom(w) => a.returns.push(w.to_ascii_uppercase()),
                _ => return None,
            }
        }
        if i != toks.len() {
            return None;
        }
    }
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_commands_parse() {
        let r = parse(b"a1 LOGIN \"demo\" \"demo\"\r\n").unwrap();
        assert_eq!(r.tag, "a1");
        assert!(matches!(r.kind, Kind::Codec(CommandBody::Login { .. })));
        let r = parse(b"b select inbox\r\n").unwrap();
        assert!(matches!(r.kind, Kind::Codec(CommandBody::Select { .. })));
        let r = parse(b"6 STORE 1 +FLAGS \\Deleted\r\n").unwrap();
        assert!(matches!(r.kind, Kind::Codec(CommandBody::Store { .. })));
        let r = parse(b"x UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n").unwrap();
        assert!(matches!(
            r.kind,
            Kind::Codec(CommandBody::Fetch { uid: true, .. })
        ));
        let r = parse(b"a APPEND INBOX (\\Seen) {5+}\r\nhello\r\n").unwrap();
        assert!(matches!(r.kind, Kind::Codec(CommandBody::Append { .. })));
    }

    #[test]
    fn multiappend_forms() {
        let r = parse(
            b"a APPEND INBOX (\\Seen) {3+}\r\nabc \"24-Mar-2007 23:00:00 +0200\" {2}\r\nde\r\n",
        )
        .unwrap();
        let Kind::MultiAppend { messages, .. } = r.kind else {
            panic!("{:?}", r.kind)
        };
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].flags.len(), 1);
        assert!(messages[0].date.is_none() && messages[1].date.is_some());
        // One message stays a plain APPEND; a broken second part is BAD, not a panic.
        let r = parse(b"a APPEND INBOX {3+}\r\nabc\r\n").unwrap();
        assert!(matches!(r.kind, Kind::Codec(CommandBody::Append { .. })));
        assert!(parse(b"a APPEND INBOX {3+}\r\nabc (\\Seen\r\n").is_err());
        assert!(parse(b"a APPEND INBOX {3+}\r\nabc \"bad date\" {1+}\r\nx\r\n").is_err());
    }

    #[test]
    fn list_forms() {
        let r = parse(b"c list \"\" *\r\n").unwrap();
        let Kind::List(l) = r.kind else { panic!() };
        assert_eq!(l.patterns, vec![b"*".to_vec()]);
        assert!(!l.extended);
        let r = parse(b"c LIST (SUBSCRIBED) \"\" (\"INBOX\" \"Tr%\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n").unwrap();
        let Kind::List(l) = r.kind else { panic!() };
        assert_eq!(l.selection, vec!["SUBSCRIBED"]);
        assert_eq!(l.patterns.len(), 2);
        assert_eq!(l.returns, vec!["CHILDREN", "STATUS"]);
        assert_eq!(l.status_items, vec!["MESSAGES", "UNSEEN"]);
        let r = parse(b"d lsub \"\" *\r\n").unwrap();
        assert!(matches!(r.kind, Kind::List(ListArgs { lsub: true, .. })));
        assert!(parse(b"d LIST \"\"\r\n").is_err());
    }

    #[test]
    fn search_return_and_create_use() {
        let r = parse(b"s UID SEARCH RETURN (MIN COUNT) UNSEEN\r\n").unwrap();
        let Kind::SearchReturn { options, body, .. } = r.kind else {
            panic!()
        };
        assert_eq!(options, vec!["MIN", "COUNT"]);
        assert!(matches!(body, CommandBody::Search { uid: true, .. }));
        let r = parse(b"s SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL\r\n").unwrap();
        let Kind::SearchReturn { options, body, .. } = r.kind else {
            panic!()
        };
        assert_eq!(options, vec!["ALL"]);
        assert!(matches!(body, CommandBody::Sort { uid: false, .. }));
        let e = parse(b"s SORT RETURN (SAVE) (DATE) UTF-8 ALL\r\n").unwrap_err();
        assert!(e.text.text.contains("IMAP command SORT: "), "{:?}", e.text);
        let r = parse(b"s SORT RETURN (PARTIAL 4:2 UPDATE) (DATE) UTF-8 ALL\r\n").unwrap();
        let Kind::SearchReturn {
            options, partial, ..
        } = r.kind
        else {
            panic!()
        };
        assert_eq!(
            (options, partial),
            (vec!["UPDATE".to_string()], Some((2, 4)))
        );
        for bad_range in ["1", "1:*", "*:1", "0:3", "-1:2", "1:4294967296"] {
            let cmd = format!("s SEARCH RETURN (PARTIAL {bad_range}) ALL\r\n");
            assert!(parse(cmd.as_bytes()).is_err(), "{bad_range}");
        }
        assert_eq!(partial_range("-5:-1"), Some((-1, -5)));
        let r = parse(b"c CANCELUPDATE \"a1\" \"b2\"\r\n").unwrap();
        assert!(matches!(r.kind, Kind::CancelUpdate(t) if t == ["a1", "b2"]));
        assert!(parse(b"c CANCELUPDATE a1\r\n").is_err());
        assert!(matches!(
            parse(b"u unauthenticate\r\n").unwrap().kind,
            Kind::Unauthenticate
        ));
        assert!(parse(b"u UNAUTHENTICATE x\r\n").is_err());
        assert!(matches!(
            parse(b"n NOTIFY NONE\r\n").unwrap().kind,
            Kind::Notify(None)
        ));
        let r = parse(b"n NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) (SUBTREE (Lists \"a b\") (MailboxName)) (mailboxes x NONE)\r\n").unwrap();
        let Kind::Notify(Some(spec)) = r.kind else {
            panic!()
        };
        assert!(spec.status);
        assert_eq!(spec.groups.len(), 3);
        assert_eq!(spec.groups[0].events, ["MESSAGENEW", "MESSAGEEXPUNGE"]);
        assert_eq!(
            spec.groups[1].filter,
            NotifyFilter::Subtree(vec![b"Lists".to_vec(), b"a b".to_vec()])
        );
        assert!(spec.groups[2].events.is_empty());
        for bad_cmd in [
            &b"n NOTIFY\r\n"[..],
            b"n NOTIFY SET\r\n",
            b"n NOTIFY SET (PERSONAL (Bogus))\r\n",
            b"n NOTIFY SET (ELSEWHERE (MessageNew))\r\n",
            b"n NOTIFY SET (PERSONAL ())\r\n",
            b"n NOTIFY SET (MAILBOXES () (MessageNew))\r\n",
            b"n NOTIFY NONE extra\r\n",
        ] {
            assert!(
                parse(bad_cmd).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad_cmd)
            );
        }
        let r = parse(b"r UID REPLACE 7 Drafts (\\Draft) {2}\r\nhi\r\n").unwrap();
        assert!(matches!(
            r.kind,
            Kind::Replace {
                uid: true,
                num: 7,
                ..
            }
        ));
        assert!(parse(b"r REPLACE 1:2 Drafts {2}\r\nhi\r\n").is_err());
        assert!(parse(b"r REPLACE 0 Drafts {2}\r\nhi\r\n").is_err());
        assert!(parse(b"r REPLACE 1 Drafts\r\n").is_err());
        let r = parse(
            b"a APPEND Box (\\Seen) CATENATE (URL \"/INBOX/;uid=1/;section=header\" TEXT {3}\r\nabc) {2}\r\nhi\r\n",
        )
        .unwrap();
        let Kind::Catenate { messages, .. } = r.kind else {
            panic!()
        };
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].flags.len(), 1);
        assert_eq!(
            messages[0].parts,
            [
                CatPart::Url("/INBOX/;uid=1/;section=header".into()),
                CatPart::Text(b"abc".to_vec())
            ]
        );
        assert_eq!(messages[1].parts, [CatPart::Text(b"hi".to_vec())]);
        for bad_cmd in [
            &b"a APPEND Box CATENATE ()\r\n"[..],
            b"a APPEND Box CATENATE (TEXT \"quoted\")\r\n",
            b"a APPEND Box CATENATE (URL)\r\n",
            b"a APPEND Box CATENATE TEXT {1}\r\nx\r\n",
        ] {
            assert!(
                parse(bad_cmd).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad_cmd)
            );
        }
        let r = parse(b"f FETCH 1:* (FLAGS EMAILID PREVIEW (LAZY) THREADID BODY[HEADER.FIELDS (PREVIEW)])\r\n").unwrap();
        let Kind::FetchExt {
            extra,
            hide_uid,
            body,
        } = r.kind
        else {
            panic!()
        };
        assert_eq!(
            extra,
            [ExtraItem::EmailId, ExtraItem::Preview, ExtraItem::ThreadId]
        );
        assert!(!hide_uid);
        assert!(matches!(body, CommandBody::Fetch { .. }));
        let r = parse(b"f UID FETCH 1 EMAILID\r\n").unwrap();
        assert!(matches!(r.kind, Kind::FetchExt { hide_uid: true, .. }));
        let r = parse(b"f FETCH 1 (PREVIEW) (CHANGEDSINCE 4)\r\n").unwrap();
        assert!(matches!(r.kind, Kind::FetchExt { hide_uid: true, .. }));
        assert!(matches!(
            parse(b"f FETCH 1 (FLAGS)\r\n").unwrap().kind,
            Kind::Codec(_)
        ));
        let r = parse(b"s STATUS INBOX (MESSAGES MAILBOXID)\r\n").unwrap();
        assert!(matches!(r.kind, Kind::StatusMailboxId { only: false, .. }));
        let r = parse(b"s STATUS INBOX (MAILBOXID)\r\n").unwrap();
        assert!(matches!(r.kind, Kind::StatusMailboxId { only: true, .. }));
        let r = parse(b"c CREATE Spam (USE (\\Junk))\r\n").unwrap();
        assert!(matches!(r.kind, Kind::CreateUse { .. }));
        let e = parse(b"c CREATE Spam (USE (\\Bogus))\r\n").unwrap_err();
        assert_eq!(e.text.code, Some(Code::UseAttr));
    }

    #[test]
    fn malformed_keeps_tag() {
        let e = parse(b"t9 FETCH\r\n").unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("t9"));
        let e = parse(b"t9 FOO bar\r\n").unwrap_err();
        assert_eq!(e.text.text, "Error in IMAP command received by server.");
        let e = parse(b"*\r\n").unwrap_err();
        assert_eq!(e.tag, None);
    }
}

#[cfg(test)]
mod deep_nesting {
    use super::*;

    /// A full-length line of nested criteria must give BAD (or parse), never a stack overflow.
    #[test]
    fn deeply_nested_search_is_refused_not_crashing() {
        for unit in ["(", "NOT ", "OR ALL "] {
            let mut line = b"t SEARCH ".to_vec();
            while line.len() < 60_000 {
                line.extend_from_slice(unit.as_bytes());
            }
            line.extend_from_slice(b"ALL\r\n");
            let _ = parse(&line);
        }
        let mut line = b"t LIST ".to_vec();
        line.extend(std::iter::repeat_n(b'(', 60_000));
        line.extend_from_slice(b"\r\n");
        assert!(parse(&line).is_err());
    }
}
