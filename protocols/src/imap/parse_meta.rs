//! The grammars of METADATA (RFC 5464: GETMETADATA, SETMETADATA), ACL (RFC 4314: SETACL,
//! DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS) and URLAUTH (RFC 4467: GENURLAUTH, URLFETCH,
//! RESETKEY), which imap-codec does not parse, over
//! [`super::lexer`]'s tokens. Entry names are checked and lower-cased here (they are
//! case-insensitive, RFC 5464 3.2).

use super::lexer::{Tok, Token};

/// How deep GETMETADATA looks below each entry it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    Zero,
    One,
    Infinity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetMetadata {
    pub maxsize: Option<u64>,
    pub depth: Depth,
    /// The mailbox as sent (empty: the server).
    pub mailbox: Vec<u8>,
    /// Entry names, lower-cased; `/private` and `/shared` themselves allowed.
    pub entries: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMetadata {
    pub mailbox: Vec<u8>,
    /// Entry names (lower-cased) and values; None (NIL) removes the entry.
    pub entries: Vec<(String, Option<Vec<u8>>)>,
}

/// An ACL command; mailboxes as sent, identifiers and rights as strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclCommand {
    SetAcl {
        mailbox: Vec<u8>,
        identifier: String,
        /// The rights, with a leading `+` or `-` when they are added or removed.
        rights: String,
    },
    DeleteAcl {
        mailbox: Vec<u8>,
        identifier: String,
    },
    GetAcl {
        mailbox: Vec<u8>,
    },
    ListRights {
        mailbox: Vec<u8>,
        identifier: String,
    },
    MyRights {
        mailbox: Vec<u8>,
    },
}

/// Checks an entry name (RFC 5464 3.2.1) and lower-cases it. `root_ok`: `/private` and
/// `/shared` alone are accepted (GETMETADATA may ask for a whole tree).
pub fn entry_name(raw: &[u8], root_ok: bool) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?.to_ascii_lowercase();
    if s.bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b == b'*' || b == b'%')
        || s.contains("//")
        || s.ends_with('/')
    {
        return None;
    }
    let root = s == "/private" || s == "/shared";
    let under = s.starts_with("/private/") || s.starts_with("/shared/");
    (under || (root && root_ok)).then_some(s)
}

fn astring(t: Option<&Token>) -> Option<Vec<u8>> {
    t?.astring()
}

fn text(t: Option<&Token>) -> Option<String> {
    String::from_utf8(astring(t)?).ok()
}

/// `GETMETADATA [options] mailbox entries` (toks: the whole command, tag first).
pub fn getmetadata(toks: &[Token]) -> Option<GetMetadata> {
    let mut i = 2;
    let mut maxsize = None;
    let mut depth = None;
    if toks.get(i)?.tok == Tok::Open {
        i += 1;
        loop {
            let t = toks.get(i)?;
            i += 1;
            if t.tok == Tok::Close {
                break;
            }
            let Tok::Atom(value) = &toks.get(i)?.tok else {
                return None;
            };
            i += 1;
            if t.atom_eq("MAXSIZE") && maxsize.is_none() {
                maxsize = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))?,
                );
            } else if t.atom_eq("DEPTH") && depth.is_none() {
                depth = Some(match value.to_ascii_lowercase().as_str() {
                    "0" => Depth::Zero,
                    "1" => Depth::One,
                    "infinity" => Depth::Infinity,
                    _ => return None,
                });
            } else {
                return None;
            }
        }
    }
    let mailbox = astring(toks.get(i))?;
    i += 1;
    let mut entries = Vec::new();
    if toks.get(i)?.tok == Tok::Open {
        i += 1;
        loop {
            let t = toks.get(i)?;
            i += 1;
            if t.tok == Tok::Close {
                break;
            }
            entries.push(entry_name(&t.astring()?, true)?);
        }
    } else {
        entries.push(entry_name(&astring(toks.get(i))?, true)?);
        i += 1;
    }
    (i == toks.len() && !entries.is_empty()).then_some(GetMetadata {
        maxsize,
        depth: depth.unwrap_or(Depth::Zero),
        mailbox,
        entries,
    })
}

/// `SETMETADATA mailbox (entry value ...)`; values are strings, literals, literal8s or NIL.
pub fn setmetadata(toks: &[Token]) -> Option<SetMetadata> {
    let mailbox = astring(toks.get(2))?;
    if toks.get(3)?.tok != Tok::Open || toks.last()?.tok != Tok::Close {
        return None;
    }
    let inner = toks.get(4..toks.len() - 1)?;
    if inner.is_empty() || inner.len() % 2 != 0 {
        return None;
    }
    let mut entries = Vec::with_capacity(inner.len() / 2);
    for pair in inner.chunks(2) {
        let [name, value] = pair else { return None };
        let name = entry_name(&name.astring()?, false)?;
        let value = match &value.tok {
            Tok::Str(v) => Some(v.clone()),
            Tok::Atom(a) if a.eq_ignore_ascii_case("NIL") => None,
            _ => return None,
        };
        entries.push((name, value));
    }
    Some(SetMetadata { mailbox, entries })
}

/// The ACL commands, by their word (`cmd`, upper-cased); None when the arguments are wrong.
pub fn acl(cmd: &str, toks: &[Token]) -> Option<AclCommand> {
    let args = toks.get(2..)?;
    let mailbox = astring(args.first())?;
    let c = match (cmd, args.len()) {
        ("SETACL", 3) => AclCommand::SetAcl {
            mailbox,
            identifier: text(args.get(1))?,
            rights: text(args.get(2))?,
        },
        ("DELETEACL", 2) => AclCommand::DeleteAcl {
            mailbox,
            identifier: text(args.get(1))?,
        },
        ("GETACL", 1) => AclCommand::GetAcl { mailbox },
        ("LISTRIGHTS", 2) => AclCommand::ListRights {
            mailbox,
            identifier: text(args.get(1))?,
        },
        ("MYRIGHTS", 1) => AclCommand::MyRights { mailbox },
        _ => return None,
    };
    Some(c)
}

/// URLAUTH's commands (RFC 4467).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlAuthCommand {
    /// `GENURLAUTH (url mechanism)+`.
    Gen(Vec<(String, String)>),
    /// `URLFETCH url+`, each URL bare or (URLAUTH=BINARY, RFC 5524) with its items.
    Fetch(Vec<UrlFetchArg>),
    /// `RESETKEY [mailbox [mechanism...]]`.
    ResetKey(Option<Vec<u8>>),
}

/// One URL of URLFETCH: `url` alone, or `(url item+)` with the items RFC 5524 adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlFetchArg {
    pub url: String,
    /// None for the bare form (the URL's bytes as a string); Some for the list form.
    pub items: Option<UrlFetchItems>,
}

/// What the list form of a URLFETCH argument asks for (RFC 5524 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlFetchItems {
    pub body: bool,
    pub binary: bool,
    pub bodypartstructure: bool,
}

/// The URLFETCH arguments: `url` or `"(" url 1*(SP ("BODY" / "BINARY" /
/// "BODYPARTSTRUCTURE")) ")"`, no item twice, BODY and BINARY not together.
fn urlfetch_args(args: &[Token]) -> Option<Vec<UrlFetchArg>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(t) = args.get(i) {
        if t.tok != Tok::Open {
            out.push(UrlFetchArg {
                url: text(Some(t))?,
                items: None,
            });
            i += 1;
            continue;
        }
        let url = text(args.get(i + 1))?;
        let mut items = UrlFetchItems::default();
        i += 2;
        loop {
            let word = match &args.get(i)?.tok {
                Tok::Close => break,
                Tok::Atom(a) => a.to_ascii_uppercase(),
                _ => return None,
            };
            let flag = match word.as_str() {
                "BODY" => &mut items.body,
                "BINARY" => &mut items.binary,
                "BODYPARTSTRUCTURE" => &mut items.bodypartstructure,
                _ => return None,
            };
            if std::mem::replace(flag, true) {
                return None;
            }
            i += 1;
        }
        if items == UrlFetchItems::default() || (items.body && items.binary) {
            return None;
        }
        i += 1;
        out.push(UrlFetchArg {
            url,
            items: Some(items),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// The URLAUTH commands, by their word (`cmd`, upper-cased); None when the arguments are
/// wrong.
pub fn urlauth(cmd: &str, toks: &[Token]) -> Option<UrlAuthCommand> {
    let args = toks.get(2..)?;
    match cmd {
        "GENURLAUTH" if !args.is_empty() && args.len() % 2 == 0 => {
            let mut out = Vec::new();
            for pair in args.chunks(2) {
                let [url, mech] = pair else { return None };
                let Tok::Atom(m) = &mech.tok else { return None };
                out.push((text(Some(url))?, m.clone()));
            }
            Some(UrlAuthCommand::Gen(out))
        }
        "URLFETCH" => urlfetch_args(args).map(UrlAuthCommand::Fetch),
        "RESETKEY" => {
            if args.iter().skip(1).any(|t| !matches!(t.tok, Tok::Atom(_))) {
                return None;
            }
            Some(UrlAuthCommand::ResetKey(match args.first() {
                Some(t) => Some(t.astring()?),
                None => None,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::lexer::tokenize;

    fn toks(s: &str) -> Vec<Token> {
        tokenize(s.as_bytes()).unwrap()
    }

    #[test]
    fn getmetadata_forms() {
        let g = getmetadata(&toks(
            "a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/Private/Comment /shared)\r\n",
        ))
        .unwrap();
        assert_eq!(g.maxsize, Some(1024));
        assert_eq!(g.depth, Depth::Infinity);
        assert_eq!(g.mailbox, b"INBOX");
        assert_eq!(g.entries, ["/private/comment", "/shared"]);
        let g = getmetadata(&toks("a GETMETADATA \"\" /shared/comment\r\n")).unwrap();
        assert_eq!((g.depth, g.maxsize), (Depth::Zero, None));
        assert!(g.mailbox.is_empty());
        for bad in [
            "a GETMETADATA INBOX\r\n",
            "a GETMETADATA INBOX ()\r\n",
            "a GETMETADATA (DEPTH 2) INBOX /shared\r\n",
            "a GETMETADATA (MAXSIZE -1) INBOX /shared\r\n",
            "a GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /shared\r\n",
            "a GETMETADATA (BOGUS 1) INBOX /shared\r\n",
            "a GETMETADATA INBOX /shared/a* \r\n",
            "a GETMETADATA INBOX /other\r\n",
            "a GETMETADATA INBOX /shared//x\r\n",
            "a GETMETADATA INBOX /shared/x/\r\n",
            "a GETMETADATA INBOX /shared/x extra\r\n",
        ] {
            assert_eq!(getmetadata(&toks(bad)), None, "{bad}");
        }
    }

    #[test]
    fn setmetadata_forms() {
        let s = setmetadata(&toks(
            "a SETMETADATA INBOX (/private/comment \"hi\" /shared/x NIL /shared/y {3}\r\nabc)\r\n",
        ))
        .unwrap();
        assert_eq!(
            s.entries,
            [
                ("/private/comment".to_string(), Some(b"hi".to_vec())),
                ("/shared/x".to_string(), None),
                ("/shared/y".to_string(), Some(b"abc".to_vec())),
            ]
        );
        for bad in [
            "a SETMETADATA INBOX ()\r\n",
            "a SETMETADATA INBOX (/shared/x)\r\n",
            "a SETMETADATA INBOX (/shared \"v\")\r\n",
            "a SETMETADATA INBOX (/shared/x atom)\r\n",
            "a SETMETADATA INBOX /shared/x \"v\"\r\n",
            "a SETMETADATA\r\n",
        ] {
            assert_eq!(setmetadata(&toks(bad)), None, "{bad}");
        }
    }

    #[test]
    fn urlauth_forms() {
        assert_eq!(
            urlauth(
                "GENURLAUTH",
                &toks("a GENURLAUTH \"imap://a@b/INBOX/;uid=1;urlauth=anonymous\" INTERNAL\r\n")
            ),
            Some(UrlAuthCommand::Gen(vec![(
                "imap://a@b/INBOX/;uid=1;urlauth=anonymous".into(),
                "INTERNAL".into()
            )]))
        );
        let bare = |u: &str| UrlFetchArg {
            url: u.into(),
            items: None,
        };
        assert_eq!(
            urlauth("URLFETCH", &toks("a URLFETCH x y\r\n")),
            Some(UrlAuthCommand::Fetch(vec![bare("x"), bare("y")]))
        );
        assert_eq!(
            urlauth(
                "URLFETCH",
                &toks("a URLFETCH (x binary BODYPARTSTRUCTURE) y (\"z\" BODY)\r\n")
            ),
            Some(UrlAuthCommand::Fetch(vec![
                UrlFetchArg {
                    url: "x".into(),
                    items: Some(UrlFetchItems {
                        binary: true,
                        bodypartstructure: true,
                        body: false
                    })
                },
                bare("y"),
                UrlFetchArg {
                    url: "z".into(),
                    items: Some(UrlFetchItems {
                        body: true,
                        ..Default::default()
                    })
                },
            ]))
        );
        for bad in [
            "a URLFETCH (x)\r\n",
            "a URLFETCH (x BINARY BINARY)\r\n",
            "a URLFETCH (x BODY BINARY)\r\n",
            "a URLFETCH (x BOGUS)\r\n",
            "a URLFETCH (x BINARY\r\n",
            "a URLFETCH (x (BINARY))\r\n",
            "a URLFETCH ((x) BINARY)\r\n",
            "a URLFETCH x )\r\n",
        ] {
            let refused =
                tokenize(bad.as_bytes()).is_none_or(|t| urlauth("URLFETCH", &t).is_none());
            assert!(refused, "{bad}");
        }
        assert_eq!(
            urlauth("RESETKEY", &toks("a RESETKEY\r\n")),
            Some(UrlAuthCommand::ResetKey(None))
        );
        assert_eq!(
            urlauth("RESETKEY", &toks("a RESETKEY INBOX INTERNAL\r\n")),
            Some(UrlAuthCommand::ResetKey(Some(b"INBOX".to_vec())))
        );
        assert!(urlauth("GENURLAUTH", &toks("a GENURLAUTH x\r\n")).is_none());
        assert!(urlauth("URLFETCH", &toks("a URLFETCH\r\n")).is_none());
    }

    #[test]
    fn acl_forms() {
        assert_eq!(
            acl("SETACL", &toks("a SETACL INBOX bob +lr\r\n")),
            Some(AclCommand::SetAcl {
                mailbox: b"INBOX".to_vec(),
                identifier: "bob".into(),
                rights: "+lr".into()
            })
        );
        assert_eq!(
            acl("MYRIGHTS", &toks("a MYRIGHTS \"a b\"\r\n")),
            Some(AclCommand::MyRights {
                mailbox: b"a b".to_vec()
            })
        );
        assert!(acl("GETACL", &toks("a GETACL INBOX x\r\n")).is_none());
        assert!(acl("DELETEACL", &toks("a DELETEACL INBOX\r\n")).is_none());
        assert!(acl("LISTRIGHTS", &toks("a LISTRIGHTS INBOX (x)\r\n")).is_none());
    }
}
