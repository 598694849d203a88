//! Maildir's small text formats, as Dovecot and mbsync write them: message file names (flag
//! letters after `:2,`, Dovecot's `,S=` size, mbsync's `,U=` UID), `dovecot-uidlist` (the
//! folder's UIDVALIDITY, next UID and each file's UID), `dovecot-keywords` (which keyword
//! each letter a-z stands for), mbsync's `.uidvalidity`, and `subscriptions`.
//!
//! Pure functions over text, std only (the fuzz target includes this file): whatever the
//! input, they return a value or an error, never panic.

/// The system flags of Maildir's info letters, in the order a file name must list them.
pub const FLAG_LETTERS: [(char, &str); 6] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    // Maildir's "passed" has no IMAP system flag; mbsync and many clients use this keyword.
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

/// Maildir file names carry at most 26 keyword letters (a-z).
pub const MAX_KEYWORDS: usize = 26;

/// What a message file's name says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileName {
    /// The name without the `:2,` info part: what `dovecot-uidlist` lists.
    pub base: String,
    /// System flags in IMAP spelling.
    pub flags: Vec<String>,
    /// Keyword letters a-z, indexes into `dovecot-keywords`.
    pub keyword_letters: Vec<u8>,
    /// mbsync's `,U=` UID.
    pub uid: Option<u32>,
    /// Dovecot's `,S=` physical size.
    pub size: Option<u64>,
}

/// Parses a file name from `cur/` or `new/`. Files without `:2,` (those in `new/`) have no flags.
pub fn parse_file_name(name: &str) -> FileName {
    // ':' is the standard separator; '!' and ';' are used on filesystems without ':'.
    let (base, info) = match name
        .rfind(":2,")
        .or_else(|| name.rfind("!2,"))
        .or_else(|| name.rfind(";2,"))
    {
        Some(i) => (&name[..i], name.get(i + 3..).unwrap_or("")),
        None => (name, ""),
    };
    let mut out = FileName {
        base: base.to_string(),
        ..FileName::default()
    };
    for c in info.chars() {
        if let Some((_, f)) = FLAG_LETTERS.iter().find(|(l, _)| *l == c) {
            if !out.flags.iter().any(|x| x == f) {
                out.flags.push((*f).to_string());
            }
        } else if c.is_ascii_lowercase() {
            let i = c as u8 - b'a';
            if !out.keyword_letters.contains(&i) {
                out.keyword_letters.push(i);
            }
        }
    }
    for field in base.split(',').skip(1) {
        if let Some(v) = field.strip_prefix("U=") {
            out.uid = v.parse().ok().filter(|u| *u > 0);
        } else if let Some(v) = field.strip_prefix("S=") {
            out.size = v.parse().ok();
        }
    }
    out
}

/// The info part of a file name (`:2,` and the letters, sorted as Maildir requires) for
/// system flags and keyword letters; flags with no letter are left out.
pub fn info_part(flags: &[String], keyword_letters: &[u8]) -> String {
    let mut s = String::from(":2,");
    for (l, f) in FLAG_LETTERS {
        if flags.iter().any(|x| x.eq_ignore_ascii_case(f)) {
            s.push(l);
        }
    }
    let mut ks: Vec<u8> = keyword_letters
        .iter()
        .copied()
        .filter(|i| (*i as usize) < MAX_KEYWORDS)
        .collect();
    ks.sort_unstable();
    ks.dedup();
    s.extend(ks.into_iter().map(|i| (b'a' + i) as char));
    s
}

/// A folder's `dovecot-uidlist`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UidList {
    pub uidvalidity: u32,
    pub next_uid: u32,
    /// Dovecot's mailbox GUID (hex), when written.
    pub guid: Option<String>,
    /// (UID, base file name), in file order.
    pub entries: Vec<(u32, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidListError {
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for UidListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

fn bad(line: usize, what: impl Into<String>) -> UidListError {
    UidListError {
        line,
        what: what.into(),
    }
}

/// Parses `dovecot-uidlist`, versions 1 (`1 UIDVALIDITY NEXTUID`, then `UID FILENAME`) and
/// 3 (`3 V<uidvalidity> N<next> G<guid>`, then `UID [EXT...] :FILENAME`). File names are
/// reduced to their base (without `:2,`), as Dovecot matches them.
pub fn parse_uidlist(text: &str) -> Result<UidList, UidListError> {
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad(1, "empty file"))?;
    let mut fields = header.split_ascii_whitespace();
    let version = fields.next().ok_or_else(|| bad(1, "no version"))?;
    let mut out = UidList::default();
    match version {
        "1" => {
            out.uidvalidity = fields
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(1, "no UIDVALIDITY"))?;
            out.next_uid = fields
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(1, "no next UID"))?;
        }
        "2" | "3" => {
            for f in fields {
                let (k, v) = f.split_at(f.char_indices().nth(1).map_or(f.len(), |(i, _)| i));
                match k {
                    "V" => {
                        out.uidvalidity = v.parse().map_err(|_| bad(1, "bad V (UIDVALIDITY)"))?
                    }
                    "N" => out.next_uid = v.parse().map_err(|_| bad(1, "bad N (next UID)"))?,
                    "G" => out.guid = Some(v.to_string()),
                    _ => {}
                }
            }
        }
        v => return Err(bad(1, format!("unknown version {v:?}"))),
    }
    if out.uidvalidity == 0 {
        return Err(bad(1, "UIDVALIDITY 0 or missing"));
    }
    let mut last = 0u32;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let (uid, rest) = line.split_once(' ').ok_or_else(|| bad(n, "no file name"))?;
        let uid: u32 = uid.parse().map_err(|_| bad(n, "bad UID"))?;
        if uid == 0 || uid <= last {
            return Err(bad(n, format!("UID {uid} not above the previous {last}")));
        }
        last = uid;
        let name = if version == "1" {
            rest.trim()
        } else {
            // Extension fields, then ':' and the file name (which may itself hold ':').
            rest.split_once(':')
                .map(|(_, n)| n)
                .ok_or_else(|| bad(n, "no ':' before the file name"))?
        };
        if name.is_empty() || name.contains('/') {
            return Err(bad(n, "bad file name"));
        }
        out.entries.push((uid, parse_file_name(name).base));
    }
    out.next_uid = out.next_uid.max(last.saturating_add(1));
    Ok(out)
}

/// Writes a version 3 `dovecot-uidlist`.
pub fn write_uidlist(list: &UidList) -> String {
    let mut s = format!("3 V{} N{}", list.uidvalidity, list.next_uid);
    if let Some(g) = &list.guid {
        s.push_str(&format!(" G{g}"));
    }
    s.push('\n');
    for (uid, name) in &list.entries {
        s.push_str(&format!("{uid} :{name}\n"));
    }
    s
}

/// Parses `dovecot-keywords` (`INDEX NAME` per line): the keyword of each letter, by index.
/// Indexes beyond z and malformed lines are ignored, as Dovecot does.
pub fn parse_keywords(text: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; MAX_KEYWORDS];
    for line in text.lines() {
        let Some((i, name)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(i), name) = (i.parse::<usize>(), name.trim()) else {
            continue;
        };
        if i < MAX_KEYWORDS && !name.is_empty() && !name.contains(char::is_whitespace) {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(name.to_string());
            }
        }
    }
    while out.last().is_some_and(|k| k.is_none()) {
        out.pop();
    }
    out
}

pub fn write_keywords(keywords: &[String]) -> String {
    keywords
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{i} {k}\n"))
        .collect()
}

/// mbsync's `.uidvalidity`: `UIDVALIDITY\nMAXUID\n`.
pub fn parse_mbsync_uidvalidity(text: &str) -> Option<(u32, u32)> {
    let mut l = text.lines();
    let uv = l.next()?.trim().parse().ok().filter(|v| *v > 0)?;
    let max = l.next().and_then(|m| m.trim().parse().ok()).unwrap_or(0);
    Some((uv, max))
}

/// Dovecot's `subscriptions` file: version 2 (`V\t2`, a blank line, then one mailbox per
/// line with its levels separated by TAB) or the older one name per line with `sep` between
/// levels. Names come back with `/` between levels.
pub fn parse_subscriptions(text: &str, sep: char) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
        }
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if v2 {
                l.split('\t').collect::<Vec<_>>().join("/")
            } else {
                l.replace(sep, "/")
            }
        })
        .collect()
}

/// Writes a version 2 `subscriptions` file.
pub fn write_subscriptions(names: &[String]) -> String {
    let mut s = String::from("V\t2\n\n");
    for n in names {
        s.push_str(&n.replace('/', "\t"));
        s.push('\n');
    }
    s
}

/// A Maildir++ folder directory name (`.Sent`, `.Work.2024`) to a mailbox name
/// (`Sent`, `Work/2024`), modified UTF-7 decoded (`&AOk-t&AOk-` is `été`).
pub fn folder_to_mailbox(dir: &str) -> Option<String> {
    let inner = dir.strip_prefix('.')?;
    if inner.is_empty() || inner.split('.').any(|p| p.is_empty()) {
        return None;
    }
    decode_mutf7(&inner.replace('.', "/"))
}

/// A mailbox name to its Maildir++ folder directory; None for INBOX (the root).
pub fn mailbox_to_folder(name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("INBOX") {
        return None;
    }
    Some(format!(".{}", encode_mutf7(name).replace('/', ".")))
}

/// IMAP's modified UTF-7 (RFC 3501 5.1.3) to UTF-8; None when malformed (the IMAP
/// server's own decoder, so folder names read as IMAP shows them).
pub fn decode_mutf7(s: &str) -> Option<String> {
    protocols::imap::mutf7::decode(s.as_bytes())
}

/// UTF-8 to IMAP's modified UTF-7.
pub fn encode_mutf7(s: &str) -> String {
    protocols::imap::mutf7::encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_dovecot_and_mbsync() {
        let f = parse_file_name("1700000000.M12P34.host,S=1234,W=1260:2,FSac");
        assert_eq!(f.base, "1700000000.M12P34.host,S=1234,W=1260");
        assert_eq!(f.flags, vec!["\\Flagged", "\\Seen"]);
        assert_eq!(f.keyword_letters, vec![0, 2]);
        assert_eq!((f.uid, f.size), (None, Some(1234)));
        let m = parse_file_name("1700000000.99_3.box,U=17:2,RT");
        assert_eq!(m.uid, Some(17));
        assert_eq!(m.flags, vec!["\\Answered", "\\Deleted"]);
        let n = parse_file_name("1700000000.M1P2.host");
        assert_eq!(
            (n.base.as_str(), n.flags.len()),
            ("1700000000.M1P2.host", 0)
        );
        assert_eq!(parse_file_name("x,U=0:2,").uid, None);
        assert_eq!(parse_file_name("x,U=abc").uid, None);
        assert_eq!(
            info_part(
                &["\\Seen".into(), "\\Draft".into(), "$Forwarded".into()],
                &[3, 0, 3]
            ),
            ":2,DPSad"
        );
    }

    #[test]
    fn uidlists_of_both_versions() {
        let l = parse_uidlist(
            "3 V1700000001 N5 G0123456789abcdef0123456789abcdef\n\
             1 :1700000000.M1P2.host,S=10:2,S\n\
             3 G00ff W123 :1700000002.M3P2.host,S=12\n",
        )
        .unwrap();
        assert_eq!((l.uidvalidity, l.next_uid), (1700000001, 5));
        assert_eq!(l.guid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(
            l.entries,
            vec![
                (1, "1700000000.M1P2.host,S=10".to_string()),
                (3, "1700000002.M3P2.host,S=12".to_string())
            ]
        );
        assert_eq!(parse_uidlist(&write_uidlist(&l)).unwrap(), l);
        let v1 = parse_uidlist("1 42 3\n1 a.b.c:2,S\n2 d.e.f\n").unwrap();
        assert_eq!((v1.uidvalidity, v1.next_uid, v1.entries.len()), (42, 3, 2));
        // N below the listed UIDs is raised: a UID is never given twice.
        assert_eq!(parse_uidlist("3 V1 N1\n7 :x\n").unwrap().next_uid, 8);
        for badlist in [
            "",
            "9 V1 N1\n",
            "3 N5\n",
            "3 V1 N2\n2 :a\n1 :b\n",
            "3 V1 N2\n0 :a\n",
            "3 V1 N2\nx :a\n",
            "3 V1 N2\n1 a\n",
            "3 V1 N2\n1 :../a\n",
            "3 Vx N2\n",
        ] {
            assert!(parse_uidlist(badlist).is_err(), "{badlist:?}");
        }
    }

    #[test]
    fn keywords_subscriptions_and_folder_names() {
        let k = parse_keywords("0 $Label1\n2 Work\nbad line\n30 far\n1 \n");
        assert_eq!(k, vec![Some("$Label1".into()), None, Some("Work".into())]);
        let kws = vec!["a".to_string(), "b".to_string()];
        assert_eq!(parse_keywords(&write_keywords(&kws)).len(), 2);
        assert_eq!(parse_mbsync_uidvalidity("1234\n56\n"), Some((1234, 56)));
        assert_eq!(parse_mbsync_uidvalidity("0\n"), None);
        assert_eq!(
            parse_subscriptions("V\t2\n\nINBOX\nWork\t2024\n", '.'),
            vec!["INBOX", "Work/2024"]
        );
        assert_eq!(
            parse_subscriptions("INBOX\nWork.2024\n", '.'),
            vec!["INBOX", "Work/2024"]
        );
        let subs = vec!["Sent".to_string(), "A/B".to_string()];
        assert_eq!(parse_subscriptions(&write_subscriptions(&subs), '.'), subs);
        assert_eq!(
            folder_to_mailbox(".Work.2024").as_deref(),
            Some("Work/2024")
        );
        assert_eq!(folder_to_mailbox(".&AOk-t&AOk-").as_deref(), Some("été"));
        assert_eq!(folder_to_mailbox(".a..b"), None);
        assert_eq!(folder_to_mailbox("cur"), None);
        assert_eq!(mailbox_to_folder("INBOX"), None);
        for name in ["été", "A&B", "日本語/x", "plain"] {
            let dir = mailbox_to_folder(name).unwrap();
            assert_eq!(folder_to_mailbox(&dir).as_deref(), Some(name), "{dir}");
        }
        assert_eq!(decode_mutf7("&Jjo"), None);
    }
}
