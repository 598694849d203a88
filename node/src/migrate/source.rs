//! Reads what `node import` imports: a Maildir tree (Dovecot's Maildir++ with
//! `dovecot-uidlist`, `dovecot-keywords` and `subscriptions`, mbsync's `,U=` UIDs and
//! `.uidvalidity`, or a plain Maildir) or mbox files, into mailboxes of messages with UIDs.
//! Message bytes are read later, one batch at a time.

use super::maildir_names as names;
use super::mbox_parse;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Maildir,
    Mbox,
}

#[derive(Debug)]
pub enum Body {
    File(PathBuf),
    Bytes(Vec<u8>),
}

#[derive(Debug)]
pub struct Message {
    pub uid: u32,
    pub flags: Vec<String>,
    pub date: i64,
    pub body: Body,
}

impl Message {
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match &self.body {
            Body::File(p) => std::fs::read(p),
            Body::Bytes(b) => Ok(b.clone()),
        }
    }

    pub fn size(&self) -> u64 {
        match &self.body {
            Body::File(p) => std::fs::metadata(p).map_or(0, |m| m.len()),
            Body::Bytes(b) => b.len() as u64,
        }
    }
}

#[derive(Debug)]
pub struct Mailbox {
    pub name: String,
    pub uidvalidity: u32,
    /// Ascending by UID.
    pub messages: Vec<Message>,
}

#[derive(Debug, Default)]
pub struct Source {
    pub mailboxes: Vec<Mailbox>,
    pub subscriptions: Vec<String>,
    /// Things read but not importable as they are (said to the operator, not fatal).
    pub warnings: Vec<String>,
}

/// A UIDVALIDITY for a source that has none, the same at every run (a resumed import must
/// meet the mailbox it created): made from the path.
fn stable_uidvalidity(path: &Path) -> u32 {
    let h = blake3::hash(path.to_string_lossy().as_bytes());
    let b = h.as_bytes();
    (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff) | 1
}

fn mtime(p: &Path) -> i64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn read(path: &Path, format: Format, mbox_mailbox: Option<&str>) -> Result<Source, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "{}: {e} (give the path of the Maildir or mbox to import)",
            path.display()
        )
    })?;
    match format {
        Format::Maildir => {
            if !meta.is_dir() {
                return Err(format!(
                    "{}: not a directory; a Maildir is a directory with cur/ and new/ (for an \
                     mbox file use --format mbox)",
                    path.display()
                ));
            }
            read_maildir_tree(path)
        }
        Format::Mbox => read_mbox(path, meta.is_dir(), mbox_mailbox),
    }
}

fn is_maildir(p: &Path) -> bool {
    p.join("cur").is_dir() || p.join("new").is_dir()
}

fn read_maildir_tree(root: &Path) -> Result<Source, String> {
    let mut src = Source::default();
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    if is_maildir(root) {
        folders.push(("INBOX".into(), root.to_path_buf()));
    }
    collect_folders(root, root, &mut folders, &mut src.warnings)?;
    if folders.is_empty() {
        return Err(format!(
            "{}: no Maildir here (no cur/ or new/ in it nor in any .Folder below it)",
            root.display()
        ));
    }
    folders.sort();
    for (name, dir) in folders {
        src.mailboxes
            .push(read_folder(&name, &dir, &mut src.warnings)?);
    }
    if let Ok(text) = std::fs::read_to_string(root.join("subscriptions")) {
        src.subscriptions = names::parse_subscriptions(&text, '.');
    }
    Ok(src)
}

/// Maildir++ folders (`.Name.Sub` directly under the root) and, for layouts that nest
/// directories (Dovecot's LAYOUT=fs, mbsync's `SubFolders Verbatim`), directories below.
fn collect_folders(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let fname = e.file_name().to_string_lossy().into_owned();
        if matches!(fname.as_str(), "cur" | "new" | "tmp") {
            continue;
        }
        if dir == root && fname.starts_with('.') && fname.len() > 1 {
            if !is_maildir(&p) {
                continue;
            }
            match names::folder_to_mailbox(&fname) {
                Some(n) => out.push((n, p)),
                None => warnings.push(format!("{}: not a folder name; skipped", p.display())),
            }
        } else if !fname.starts_with('.') {
            if is_maildir(&p) {
                let rel = p
                    .strip_prefix(root)
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, p.clone()));
            }
            collect_folders(root, &p, out, warnings)?;
        }
    }
    Ok(())
}

fn read_folder(name: &str, dir: &Path, warnings: &mut Vec<String>) -> Result<Mailbox, String> {
    let uidlist = match std::fs::read_to_string(dir.join("dovecot-uidlist")) {
        Ok(text) => Some(
            names::parse_uidlist(&text)
                .map_err(|e| format!("{}: {e}", dir.join("dovecot-uidlist").display()))?,
        ),
        Err(_) => None,
    };
    let keywords = std::fs::read_to_string(dir.join("dovecot-keywords"))
        .map(|t| names::parse_keywords(&t))
        .unwrap_or_default();
    let mbsync = std::fs::read_to_string(dir.join(".uidvalidity"))
        .ok()
        .and_then(|t| names::parse_mbsync_uidvalidity(&t));
    let by_base: HashMap<&str, u32> = uidlist
        .as_ref()
        .map(|l| l.entries.iter().map(|(u, n)| (n.as_str(), *u)).collect())
        .unwrap_or_default();
    let mut with_uid: BTreeMap<u32, Message> = BTreeMap::new();
    let mut without: Vec<(String, Message)> = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if !p.is_file() {
                continue;
            }
            let fname = e.file_name().to_string_lossy().into_owned();
            if fname.starts_with('.') {
                continue;
            }
            let f = names::parse_file_name(&fname);
            let mut flags = f.flags.clone();
            for i in &f.keyword_letters {
                match keywords.get(*i as usize).and_then(|k| k.as_ref()) {
                    Some(k) => flags.push(k.clone()),
                    None => warnings.push(format!(
                        "{}: keyword letter {} is not in dovecot-keywords; left out",
                        p.display(),
                        (b'a' + i) as char
                    )),
                }
            }
            let uid = if uidlist.is_some() {
                by_base.get(f.base.as_str()).copied()
            } else {
                f.uid
            };
            let msg = Message {
                uid: 0,
                flags,
                date: mtime(&p),
                body: Body::File(p.clone()),
            };
            match uid {
                Some(u) if !with_uid.contains_key(&u) => {
                    with_uid.insert(u, Message { uid: u, ..msg });
                }
                Some(u) => {
                    warnings.push(format!(
                        "{}: UID {u} given twice; gets a new UID",
                        p.display()
                    ));
                    without.push((f.base, msg));
                }
                None => without.push((f.base, msg)),
            }
        }
    }
    let (uidvalidity, mut next) = match (&uidlist, mbsync) {
        (Some(l), _) => (l.uidvalidity, l.next_uid),
        (None, Some((uv, max))) => (uv, max.saturating_add(1)),
        (None, None) => (stable_uidvalidity(dir), 1),
    };
    next = next.max(
        with_uid
            .keys()
            .next_back()
            .map_or(1, |u| u.saturating_add(1)),
    );
    // Files the UID list does not know yet (delivered since): after every known UID, in name
    // order (Maildir names start with the delivery time), as Dovecot would number them.
    without.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, m) in without {
        with_uid.insert(next, Message { uid: next, ..m });
        next = next.saturating_add(1);
    }
    Ok(Mailbox {
        name: name.to_string(),
        uidvalidity,
        messages: with_uid.into_values().collect(),
    })
}

fn read_mbox(path: &Path, dir: bool, mailbox: Option<&str>) -> Result<Source, String> {
    let mut src = Source::default();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if dir {
        collect_mbox_files(path, path, &mut files)?;
        if files.is_empty() {
            return Err(format!(
                "{}: no mbox files in this directory",
                path.display()
            ));
        }
    } else {
        files.push((mailbox.unwrap_or("INBOX").to_string(), path.to_path_buf()));
    }
    for (name, file) in files {
        let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mbox = mbox_parse::parse(&data).map_err(|e| format!("{}: {e}", file.display()))?;
        let file_date = mtime(&file);
        let uidvalidity = mbox
            .uidvalidity
            .unwrap_or_else(|| stable_uidvalidity(&file));
        let mut next = 1u32;
        let mut messages = Vec::new();
        for m in mbox.messages {
            // X-UID must grow; one that does not (or is missing) gets the next free UID.
            let uid = match m.uid {
                Some(u) if u >= next => u,
                _ => next,
            };
            next = uid.saturating_add(1);
            messages.push(Message {
                uid,
                flags: m.flags,
                date: m.date.unwrap_or(file_date),
                body: Body::Bytes(m.raw),
            });
        }
        src.mailboxes.push(Mailbox {
            name,
            uidvalidity,
            messages,
        });
    }
    Ok(src)
}

/// Every regular file below `dir` is an mbox; its path below the root is the mailbox name
/// (`inbox` in any case is INBOX), as mutt's and Dovecot's mbox layouts keep them.
fn collect_mbox_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let fname = e.file_name().to_string_lossy().into_owned();
        if fname.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect_mbox_files(root, &p, out)?;
        } else if p.is_file() {
            // Thunderbird (and `node export --format mbox`) keep A's children in A.sbd/.
            let rel = p
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| {
                    let c = c.as_os_str().to_string_lossy();
                    c.strip_suffix(".sbd").unwrap_or(&c).to_string()
                })
                .collect::<Vec<_>>()
                .join("/");
            let name = if rel.eq_ignore_ascii_case("inbox") {
                "INBOX".to_string()
            } else {
                rel
            };
            out.push((name, p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &Path, body: &str, mtime: i64) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64))
            .unwrap();
    }

    #[test]
    fn a_dovecot_maildir_with_a_file_the_uidlist_does_not_know() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for s in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(r.join(s)).unwrap();
        }
        std::fs::write(
            r.join("dovecot-uidlist"),
            "3 V555 N8\n2 :100.M1.h,S=5\n7 :200.M2.h\n",
        )
        .unwrap();
        std::fs::write(r.join("dovecot-keywords"), "0 $Label1\n1 Work\n").unwrap();
        std::fs::write(r.join("subscriptions"), "V\t2\n\nINBOX\nA\tB\n").unwrap();
        put(&r.join("cur/100.M1.h,S=5:2,Sb"), "x: 1\r\n\r\nA", 1000);
        put(&r.join("cur/200.M2.h:2,FRa"), "x: 2\r\n\r\nB", 2000);
        put(&r.join("new/300.M3.h"), "x: 3\r\n\r\nC", 3000);
        put(&r.join(".A.B/cur/1.M.h,U=4:2,"), "x: 4\r\n\r\nD", 4000);
        std::fs::write(r.join(".A.B/.uidvalidity"), "99\n9\n").unwrap();
        let s = read(r, Format::Maildir, None).unwrap();
        assert_eq!(s.subscriptions, vec!["INBOX", "A/B"]);
        assert_eq!(s.mailboxes.len(), 2);
        let ab = &s.mailboxes[0];
        assert_eq!((ab.name.as_str(), ab.uidvalidity), ("A/B", 99));
        assert_eq!(ab.messages[0].uid, 4);
        let inbox = &s.mailboxes[1];
        assert_eq!((inbox.name.as_str(), inbox.uidvalidity), ("INBOX", 555));
        let got: Vec<(u32, Vec<String>, i64)> = inbox
            .messages
            .iter()
            .map(|m| (m.uid, m.flags.clone(), m.date))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, vec!["\\Seen".into(), "Work".into()], 1000),
                (
                    7,
                    vec!["\\Flagged".into(), "\\Answered".into(), "$Label1".into()],
                    2000
                ),
                (8, vec![], 3000),
            ]
        );
        assert_eq!(inbox.messages[2].read().unwrap(), b"x: 3\r\n\r\nC");
        assert!(read(&r.join("nope"), Format::Maildir, None).is_err());
        assert!(read(&r.join("cur"), Format::Maildir, None).is_err());
        assert!(read(&r.join("dovecot-uidlist"), Format::Maildir, None).is_err());
        assert!(read(&r.join("dovecot-uidlist"), Format::Mbox, None).is_err());
    }
}
