//! The scripted-test format (imaptest's `scripted_test.md`): header, command groups in
//! their three forms, untagged expectations (`*` must, `!` must not, `?` may appear),
//! `{{{ ... }}}` multi-line literals, `!ifenv` blocks and the default `$!` list
//! directives, which are added here at parse time as imaptest does.

use super::args::{self, latin1, Arg};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_CONNECTIONS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StartState {
    NonAuth,
    Auth,
    Created,
    Appended,
    Selected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Messages {
    Count(u32),
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existence {
    Must,
    MustNot,
    May,
}

#[derive(Clone, Debug)]
pub struct Untagged {
    pub args: Vec<Arg>,
    pub existence: Existence,
}

#[derive(Clone, Debug)]
pub struct Command {
    /// 0 for the LOGOUT the parser adds.
    pub linenum: usize,
    /// The script's `tagN` (0 when the command has no explicit tag).
    pub tag: u32,
    /// Command text as written (variables unexpanded, literals inline), Latin-1.
    pub text: String,
    /// Expected tagged reply, matched as a prefix (`ok`, `no [trycreate]`, `""`...).
    pub reply: Option<Vec<Arg>>,
}

#[derive(Clone, Debug, Default)]
pub struct Group {
    pub conn: usize,
    pub commands: Vec<Command>,
    /// `None` when the group lists no untagged replies at all.
    pub untagged: Option<Vec<Untagged>>,
    pub ordered: bool,
    pub have_bye: bool,
    pub sleep: Duration,
    pub output: Vec<String>,
    replies_pending: usize,
}

#[derive(Clone, Debug)]
pub struct Script {
    pub name: String,
    pub path: PathBuf,
    pub mbox: PathBuf,
    pub capabilities: Vec<String>,
    pub connections: usize,
    pub messages: Messages,
    pub state: StartState,
    pub ignore_extra_untagged: bool,
    /// `user N: name` headers (index N-1); `None` means the default user.
    pub users: Vec<Option<String>>,
    /// `user N: $user2`: the run needs a second user.
    pub require_user2: bool,
    /// Whether `$modseqN` variables get the documented growth check: only when the
    /// script lists them in increasing N (scripts older than the check use them as
    /// plain names, e.g. esearch-condstore's modseq1, modseq3, modseq2).
    pub modseq_tracking: bool,
    pub have_banner_check: bool,
    pub groups: Vec<Group>,
}

impl Script {
    /// Whether the group counts as an extension test (it needs capabilities).
    pub fn is_extension(&self) -> bool {
        !self.capabilities.is_empty()
    }
}

/// The test groups in `dir`: every regular file that is not `*.mbox`, sorted by name;
/// subdirectories (`broken/`) and dot files are skipped.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".mbox") || !e.file_type()?.is_file() {
            continue;
        }
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

/// Reads and parses one test file; its mbox is `<path>.mbox` or `default.mbox` beside it.
pub fn load(path: &Path) -> Result<Script, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let own_mbox = PathBuf::from(format!("{}.mbox", path.display()));
    let mbox = if own_mbox.exists() {
        own_mbox
    } else {
        path.with_file_name("default.mbox")
    };
    parse(&name, path, &mbox, &data).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(name: &str, path: &Path, mbox: &Path, data: &[u8]) -> Result<Script, String> {
    let mut script = Script {
        name: name.to_string(),
        path: path.to_path_buf(),
        mbox: mbox.to_path_buf(),
        capabilities: Vec::new(),
        connections: 1,
        // imaptest appends nothing unless `messages:` says so (the doc's "all" is wrong).
        messages: Messages::Count(0),
        state: StartState::Selected,
        ignore_extra_untagged: true,
        users: Vec::new(),
        require_user2: false,
        modseq_tracking: modseqs_increasing(data),
        have_banner_check: false,
        groups: Vec::new(),
    };
    let mut p = FileParser {
        cur_group: false,
        ifenv: Vec::new(),
        skip: false,
    };

    let pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let Some((last, lines)) = pieces.split_last() else {
        return Err("empty file".into());
    };
    if !last.is_empty() {
        return Err("Last line doesn't end with LF".into());
    }
    let mut header = true;
    let mut continues = false;
    let mut binary = false;
    let mut multiline: Vec<u8> = Vec::new();
    let (mut start_pos, mut last_line_end, mut start_linenum) = (0usize, 0usize, 0usize);
    for (idx, raw) in lines.iter().enumerate() {
        let linenum = idx + 1;
        let line: Vec<u8>;
        if continues {
            if !raw.starts_with(b"}}}") {
                if binary {
                    // binary literals keep the file's bytes exactly (CR included)
                    multiline.extend_from_slice(raw);
                    last_line_end = multiline.len();
                    multiline.push(b'\n');
                } else {
                    multiline.extend_from_slice(raw.strip_suffix(b"\r").unwrap_or(raw));
                    last_line_end = multiline.len();
                    multiline.extend_from_slice(b"\r\n");
                }
                continue;
            }
            // the last line's own line ending is not part of the literal
            multiline.truncate(last_line_end);
            let rest = &raw[3..];
            let size = multiline.len() - start_pos;
            let prefix = format!("{}{{{size}}}\r\n", if binary { "~" } else { "" });
            multiline.splice(start_pos..start_pos, prefix.bytes());
            if let Some((text, bin)) = opens_multiline(rest) {
                binary = bin;
                multiline.extend_from_slice(text);
                start_pos = multiline.len();
                last_line_end = start_pos;
                continue;
            }
            multiline.extend_from_slice(rest.strip_suffix(b"\r").unwrap_or(rest));
            line = std::mem::take(&mut multiline);
            continues = false;
        } else {
            start_linenum = linenum;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                header = false;
                continue;
            }
            if raw[0] == b'#' {
                continue;
            }
            if let Some((text, bin)) = opens_multiline(raw) {
                binary = bin;
                multiline.clear();
                multiline.extend_from_slice(text);
                start_pos = multiline.len();
                last_line_end = start_pos;
                continues = true;
                continue;
            }
            line = raw.to_vec();
        }
        let text = latin1(&line);
        let r = if header {
            header_line(&mut script, &text)
        } else {
            p.command_line(&mut script, start_linenum, &text)
        };
        r.map_err(|e| format!("line {linenum}: {e}"))?;
    }
    if continues {
        return Err(format!("Multiline reply at line {start_linenum} not ended"));
    }
    if script.groups.is_empty() {
        return Err("No commands in file".into());
    }
    if let Some(g) = script.groups.last() {
        if g.replies_pending > 0 {
            let l = g
                .commands
                .iter()
                .find(|c| c.reply.is_none())
                .map_or(0, |c| c.linenum);
            return Err(format!("Missing reply from previous command at line {l}"));
        }
    }
    if let Some(open) = p.ifenv.first() {
        return Err(format!(
            "!ifenv at line {} not closed with !endif",
            open.linenum
        ));
    }
    add_logout(&mut script);
    Ok(script)
}

/// Whether the first uses of `$modseqN` / `${modseqN}` in the file come in increasing N.
fn modseqs_increasing(data: &[u8]) -> bool {
    let text = latin1(data);
    let mut seen: Vec<u32> = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("modseq") {
        let before = &rest[..i];
        let after = &rest[i + 6..];
        rest = after;
        if !(before.ends_with('$') || before.ends_with("${")) {
            continue;
        }
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u32>() {
            if !seen.contains(&n) {
                seen.push(n);
            }
        }
    }
    seen.windows(2).all(|w| w[0] < w[1])
}

/// A line ending in `{{{` (or `~{{{` for a binary literal) opens a multi-line literal:
/// returns the text before it.
fn opens_multiline(line: &[u8]) -> Option<(&[u8], bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let before = line.strip_suffix(b"{{{")?;
    match before.strip_suffix(b"~") {
        Some(b) => Some((b, true)),
        None => Some((before, false)),
    }
}

fn header_line(script: &mut Script, line: &str) -> Result<(), String> {
    let Some((key, value)) = line.split_once(':') else {
        return Err("Missing ':'".into());
    };
    let key = key.trim_end_matches(' ').to_ascii_lowercase();
    let value = value.trim_start_matches(' ');
    match key.as_str() {
        "capabilities" => {
            script.capabilities = value.split_whitespace().map(String::from).collect();
        }
        "connections" => {
            let n: usize = value.trim().parse().unwrap_or(0);
            if n == 0 || n > MAX_CONNECTIONS {
                return Err("Too many connections".into());
            }
            script.connections = n;
        }
        "ignore_extra_untagged" => script.ignore_extra_untagged = value.starts_with('y'),
        "messages" => {
            script.messages = if value == "all" {
                Messages::All
            } else {
                Messages::Count(value.trim().parse().unwrap_or(0))
            };
        }
        "state" => {
            script.state = match value.to_ascii_lowercase().as_str() {
                "nonauth" => StartState::NonAuth,
                "auth" => StartState::Auth,
                "created" => StartState::Created,
                "appended" => StartState::Appended,
                "selected" => StartState::Selected,
                _ => return Err("Unknown state value".into()),
            };
        }
        k => {
            let idx = k
                .strip_prefix("user ")
                .and_then(|n| n.trim().parse::<usize>().ok())
                .filter(|&n| n != 0)
                .ok_or_else(|| "Unknown setting".to_string())?;
            if idx > MAX_CONNECTIONS {
                return Err("Too many connections".into());
            }
            let user = if value == "$user2" || value == "${user2}" {
                script.require_user2 = true;
                None
            } else {
                Some(value.to_string())
            };
            if script.users.len() < idx {
                script.users.resize(idx, None);
            }
            script.users[idx - 1] = user;
        }
    }
    Ok(())
}

struct IfEnv {
    linenum: usize,
    else_seen: bool,
    skip: bool,
}

struct FileParser {
    /// Whether `script.groups.last()` is the group lines are being added to.
    cur_group: bool,
    ifenv: Vec<IfEnv>,
    skip: bool,
}

fn is_untagged(line: &str) -> Option<Existence> {
    if line.starts_with("* ") {
        Some(Existence::Must)
    } else if line.starts_with("! ") {
        Some(Existence::MustNot)
    } else if line.starts_with("? ") {
        Some(Existence::May)
    } else {
        None
    }
}

fn first_word(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

/// `[tagN] ok|no|bad|""` at the start of `line`: returns (tag, expected reply, rest).
fn cmd_reply(line: &str) -> (u32, Option<Vec<Arg>>, &str) {
    let mut tag = 0;
    let mut rest = line;
    let w = first_word(rest);
    let is_tag = w.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("tag"));
    if is_tag && rest.contains(' ') {
        if let Ok(t) = w.get(3..).unwrap_or("").parse::<u32>() {
            if t > 0 {
                tag = t;
                rest = &rest[w.len() + 1..];
            }
        }
    }
    let w = first_word(rest);
    let reply = if w.eq_ignore_ascii_case("ok") || w.eq_ignore_ascii_case("no") {
        Some(w.to_ascii_lowercase())
    } else if w.eq_ignore_ascii_case("bad") {
        Some("bad".to_string())
    } else if w == "\"\"" {
        Some(String::new())
    } else {
        None
    };
    match reply {
        Some(r) => {
            rest = &rest[w.len()..];
            rest = rest.strip_prefix(' ').unwrap_or(rest);
            (tag, Some(vec![Arg::Atom(r)]), rest)
        }
        None => (tag, None, rest),
    }
}

impl FileParser {
    fn command_line(
        &mut self,
        script: &mut Script,
        linenum: usize,
        line: &str,
    ) -> Result<(), String> {
        let ifenv = line.strip_prefix("!ifenv ").map(|e| (e, false));
        let ifnenv = line.strip_prefix("!ifnenv ").map(|e| (e, true));
        if let Some((env, negate)) = ifenv.or(ifnenv) {
            let present = std::env::var_os(env).is_some();
            self.ifenv.push(IfEnv {
                linenum,
                else_seen: false,
                skip: self.skip,
            });
            if present == negate {
                self.skip = true;
            }
            return Ok(());
        }
        if line == "!else" {
            let top = self.ifenv.last_mut().ok_or("!else without !ifenv")?;
            if top.else_seen {
                return Err("!else already seen".into());
            }
            top.else_seen = true;
            if !top.skip {
                self.skip = !self.skip;
            }
            return Ok(());
        }
        if line == "!endif" {
            let top = self.ifenv.pop().ok_or("!endif without !ifenv")?;
            self.skip = top.skip;
            return Ok(());
        }
        if self.skip {
            return Ok(());
        }

        let connections = script.connections;
        if self.cur_group {
            let group = script.groups.last_mut().ok_or("no group")?;
            if let Some(v) = line.strip_prefix("!sleep ") {
                group.sleep = parse_interval(v)?;
                return Ok(());
            }
            if let Some(v) = line.strip_prefix("!output ") {
                group.output.push(v.to_string());
                return Ok(());
            }
            if line == "!ordered" {
                group.ordered = true;
                return Ok(());
            }
            if let Some(ex) = is_untagged(line) {
                return add_untagged(group, &line[2..], ex);
            }
            if group.replies_pending > 0 {
                let mut no_conn = line;
                let mut reply_conn = 0usize;
                if connections > 1 {
                    if let Ok(n) = first_word(line).parse::<usize>() {
                        if n > 0 {
                            reply_conn = n;
                            no_conn = line.split_once(' ').map_or("", |(_, r)| r);
                        }
                    }
                }
                let (tag, reply, _) = cmd_reply(no_conn);
                if reply.is_some() {
                    // The 2022 scripts (append) write a multi-connection reply without its
                    // index, which today's imaptest refuses; it can only be the group's.
                    if reply_conn != 0 && reply_conn - 1 != group.conn {
                        return Err("Reply for wrong connection".into());
                    }
                    return finish_command(group, tag, no_conn);
                }
            }
        }

        let need_new = match script.groups.last() {
            Some(g) if self.cur_group => g.replies_pending == 0,
            _ => true,
        };
        if need_new {
            script.groups.push(Group::default());
            self.cur_group = true;
        }
        let mut line = line;
        let group_idx = script.groups.len() - 1;
        if script.connections > 1 {
            let n = first_word(line)
                .parse::<usize>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or("Missing client index")?;
            if n > MAX_CONNECTIONS {
                return Err("Too many connections".into());
            }
            let group = &mut script.groups[group_idx];
            if !group.commands.is_empty() && group.conn != n - 1 {
                return Err("All pipelined commands must use the same connection".into());
            }
            group.conn = n - 1;
            if script.connections < n {
                script.connections = n;
            }
            line = line.split_once(' ').map_or("", |(_, r)| r);
        }
        let group = &mut script.groups[group_idx];
        let (tag, reply, rest) = cmd_reply(line);
        if tag == 0 {
            if group.replies_pending > 0 {
                return Err("Missing reply from previous command group".into());
            }
        } else if group.commands.iter().any(|c| c.tag == tag) {
            return Err("Tag reused within command group".into());
        }
        if group.commands.is_empty() {
            if let Some(ex) = is_untagged(rest) {
                script.have_banner_check = true;
                return add_untagged(group, &rest[2..], ex);
            }
        }
        if reply.is_none() {
            group.replies_pending += 1;
        }
        group.commands.push(Command {
            linenum,
            tag,
            text: rest.to_string(),
            reply,
        });
        Ok(())
    }
}

fn parse_interval(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let digits = v.chars().take_while(|c| c.is_ascii_digit()).count();
    let n: u64 = v[..digits]
        .parse()
        .map_err(|_| format!("Invalid !sleep value {v}"))?;
    match v[digits..].trim() {
        "" | "ms" | "msec" | "msecs" => Ok(Duration::from_millis(n)),
        "s" | "sec" | "secs" => Ok(Duration::from_secs(n)),
        _ => Err(format!("Invalid !sleep value {v}")),
    }
}

fn finish_command(group: &mut Group, tag: u32, line: &str) -> Result<(), String> {
    let cmd = group
        .commands
        .iter_mut()
        .find(|c| c.tag == tag)
        .ok_or("Reply for unknown tag")?;
    if cmd.reply.is_some() {
        return Err("Command already has a reply".into());
    }
    let mut a = args::parse(&args::bytes(line)).map_err(|e| e.0)?;
    if tag != 0 {
        if a.is_empty() {
            return Err("empty reply".into());
        }
        a.remove(0);
    }
    cmd.reply = Some(a);
    group.replies_pending -= 1;
    Ok(())
}

fn add_untagged(group: &mut Group, line: &str, existence: Existence) -> Result<(), String> {
    let mut a = args::parse(&args::bytes(line)).map_err(|e| e.0)?;
    let mut name = a.first().and_then(Arg::atom).unwrap_or("").to_string();
    if name.starts_with('$') || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = a.get(1).and_then(Arg::atom).unwrap_or("").to_string();
    }
    let ctx = DirCtx {
        reply_name: name.to_ascii_lowercase(),
        chain: Vec::new(),
    };
    handle_directives(&ctx, None, &mut a)?;
    if name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("BYE")) {
        match existence {
            Existence::MustNot => {}
            Existence::Must => group.have_bye = true,
            Existence::May => return Err("? BYE not currently supported".into()),
        }
    }
    group
        .untagged
        .get_or_insert_with(Vec::new)
        .push(Untagged { args: a, existence });
    Ok(())
}

/// Where a list sits: for each ancestor level from the top, the list's index within its
/// parent's chain (`i % chain` when the parent is chained), plus the atom before it.
struct DirCtx {
    reply_name: String,
    /// parent_chain_idx of each level, outermost first (the top level has none).
    chain: Vec<usize>,
}

fn is_directive(a: &Arg) -> bool {
    a.atom().is_some_and(|s| s.starts_with("$!"))
}

/// Validates `$!` directives at the start of a list, adds the default directives when the
/// list has none, checks the chain size, and recurses into sub-lists.
fn handle_directives(
    ctx: &DirCtx,
    prev_atom: Option<&str>,
    list: &mut Vec<Arg>,
) -> Result<(), String> {
    let mut chain_count = 1usize;
    let mut directives = false;
    for a in list.iter() {
        let Some(s) = a.atom().and_then(|s| s.strip_prefix("$!")) else {
            break;
        };
        if let Some(r) = s.strip_prefix("unordered") {
            if r.is_empty() {
            } else if let Some(n) = r.strip_prefix('=').and_then(|n| n.parse::<usize>().ok()) {
                chain_count = n;
            } else {
                return Err("Broken $!unordered directive".into());
            }
        } else if !(s == "ordered"
            || s == "noextra"
            || s == "extra"
            || s.starts_with("ignore=")
            || s.starts_with("ban="))
        {
            return Err(format!("Unknown directive: {s}"));
        }
        directives = true;
    }
    if !directives {
        for d in default_directives(ctx, prev_atom) {
            if let Some(n) = d.strip_prefix("$!unordered=") {
                chain_count = n.parse().unwrap_or(1);
            }
            list.insert(0, Arg::Atom(d.to_string()));
        }
    }
    if chain_count == 0 {
        return Err("Invalid list argument count, chain size=0".into());
    }
    let n_dir = list.iter().take_while(|a| is_directive(a)).count();
    if !(list.len() - n_dir).is_multiple_of(chain_count) {
        return Err(format!(
            "Invalid list argument count, chain size={chain_count}"
        ));
    }
    let mut prev: Option<String> = None;
    for (i, a) in list.iter_mut().enumerate() {
        if let Some(s) = a.atom() {
            prev = Some(s.to_ascii_lowercase());
        }
        if let Arg::List(sub) = a {
            let mut chain = ctx.chain.clone();
            chain.push(if chain_count == 1 { i } else { i % chain_count });
            let subctx = DirCtx {
                reply_name: ctx.reply_name.clone(),
                chain,
            };
            handle_directives(&subctx, prev.as_deref(), sub)?;
        }
    }
    Ok(())
}

/// imaptest's defaults: `LIST|LSUB (flags)` unordered, `STATUS box (..)` unordered=2,
/// `n FETCH (..)` unordered=2 and its `FLAGS (..)` unordered/noextra/ignore=\recent.
/// Indexes count from the first argument, directives included, as imaptest does.
fn default_directives(ctx: &DirCtx, prev_atom: Option<&str>) -> Vec<&'static str> {
    let name = ctx.reply_name.as_str();
    // The top level (`chain` empty) is the reply itself, not a list: no defaults.
    match (name, ctx.chain.as_slice()) {
        ("list" | "lsub", [1]) => vec!["$!unordered"],
        ("status", [2]) => vec!["$!unordered=2"],
        ("fetch", [2]) => vec!["$!unordered=2"],
        ("fetch", [2, _]) if prev_atom == Some("flags") => vec![
            "$!unordered",
            "$!noextra",
            "$!ignore=\\recent",
            "$!ignore=$HasAttachment",
            "$!ignore=$HasNoAttachment",
        ],
        _ => Vec::new(),
    }
}

fn add_logout(script: &mut Script) {
    let has = script.groups.iter().any(|g| {
        !g.commands.is_empty()
            && (g.have_bye
                || g.commands
                    .iter()
                    .any(|c| c.text.eq_ignore_ascii_case("logout")))
    });
    if has {
        return;
    }
    script.groups.push(Group {
        conn: 0,
        commands: vec![Command {
            linenum: 0,
            tag: 0,
            text: "logout".into(),
            reply: Some(vec![Arg::Atom("ok".into())]),
        }],
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Script {
        parse("t", Path::new("t"), Path::new("m"), text.as_bytes()).unwrap()
    }

    #[test]
    fn header_and_three_command_forms() {
        let s = p(
            "capabilities: CHILDREN LIST-EXTENDED\nmessages: 3\nstate: auth\n\n\
                   ok select $mailbox\n* 0 exists\n\n\
                   select $mailbox\n* 0 exists\nok [read-write]\n\n\
                   tag1 status ${mailbox} (messages)\ntag2 status ${mailbox}2 (messages)\n\
                   * status ${mailbox} (messages 0)\ntag1 ok\ntag2 ok\n",
        );
        assert_eq!(s.capabilities, vec!["CHILDREN", "LIST-EXTENDED"]);
        assert_eq!(s.messages, Messages::Count(3));
        assert_eq!(s.state, StartState::Auth);
        assert_eq!(s.groups.len(), 4, "three groups and the added logout");
        assert_eq!(s.groups[0].commands[0].text, "select $mailbox");
        assert_eq!(
            s.groups[1].commands[0].reply,
            Some(vec![
                Arg::Atom("ok".into()),
                Arg::Atom("[read-write]".into())
            ])
        );
        let g = &s.groups[2];
        assert_eq!(g.commands.len(), 2);
        assert_eq!((g.commands[0].tag, g.commands[1].tag), (1, 2));
        assert!(g.commands.iter().all(|c| c.reply.is_some()));
        // STATUS gets the default $!unordered=2 on its list
        let ut = &g.untagged.as_ref().unwrap()[0];
        assert_eq!(
            ut.args[2].list().unwrap()[0],
            Arg::Atom("$!unordered=2".into())
        );
        assert_eq!(s.groups[3].commands[0].text, "logout");
    }

    #[test]
    fn default_directives_for_fetch_flags_and_list() {
        let s = p(
            "\nok fetch 1 (uid flags)\n* 1 fetch (uid $uid flags (\\seen))\n\
                   * list () $sep $mailbox\n* 1 fetch (FLAGS ($!extra))\n",
        );
        let ut = s.groups[0].untagged.as_ref().unwrap();
        let fetch = ut[0].args[2].list().unwrap();
        assert_eq!(fetch[0], Arg::Atom("$!unordered=2".into()));
        let flags = fetch[4].list().unwrap();
        let dirs: Vec<_> = flags.iter().filter_map(Arg::atom).collect();
        assert!(dirs.contains(&"$!unordered") && dirs.contains(&"$!noextra"));
        assert!(dirs.contains(&"$!ignore=\\recent"));
        assert_eq!(
            ut[1].args[1].list().unwrap(),
            &[Arg::Atom("$!unordered".into())]
        );
        // explicit directives replace the defaults of that list only
        let f = ut[2].args[2].list().unwrap();
        assert_eq!(f[0], Arg::Atom("$!unordered=2".into()));
        assert_eq!(f[2].list().unwrap(), &[Arg::Atom("$!extra".into())]);
    }

    #[test]
    fn multiline_literals_text_and_binary() {
        let s = p(
            "\nok fetch 1 body[text]\n* 1 fetch (body[text] {{{\nbody1\n\n\n}}})\n\
                   ok append $mailbox ~{{{\na\r\nb\n}}}\n",
        );
        let ut = s.groups[0].untagged.as_ref().unwrap();
        let l = ut[0].args[2].list().unwrap();
        assert_eq!(
            l[2],
            Arg::Literal {
                text: "body1\r\n\r\n".into(),
                binary: false
            }
        );
        assert_eq!(
            s.groups[1].commands[0].text,
            "append $mailbox ~{4}\r\na\r\nb"
        );
    }

    #[test]
    fn multi_connection_and_ifenv() {
        std::env::remove_var("IMAPTEST_SURELY_UNSET");
        let s = p(
            "connections: 2\n\n1 ok select $mailbox\n2 noop\n* 1 exists\n2 ok\n\
                   !ifenv IMAPTEST_SURELY_UNSET\n1 ok foo\n!else\n1 ok bar\n!endif\n",
        );
        assert_eq!(s.groups.len(), 4);
        assert_eq!(s.groups[1].conn, 1);
        assert_eq!(s.groups[2].commands[0].text, "bar");
        let e = parse(
            "t",
            Path::new("t"),
            Path::new("m"),
            b"connections: 2\n\nok noop\n",
        );
        assert!(e.unwrap_err().contains("Missing client index"));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |t: &str| parse("t", Path::new("t"), Path::new("m"), t.as_bytes()).unwrap_err();
        assert!(e("bogus: 1\n\nok noop\n").contains("Unknown setting"));
        assert!(e("\nnoop\n").contains("Missing reply"));
        assert!(e("\nok noop\n* 1 fetch ($!sideways)\n").contains("Unknown directive"));
        assert!(e("\nok noop\n* 1 fetch ($!unordered=2 a)\n").contains("chain size=2"));
        assert!(e("\nok noop").contains("LF"));
        assert!(e("\nok fetch {{{\nx\n").contains("not ended"));
    }

    #[test]
    fn modseq_tracking_only_for_increasing_scripts() {
        assert!(modseqs_increasing(
            b"* 1 fetch (modseq ($modseq1))\n* 2 fetch (modseq (${modseq5}))\n$modseq1"
        ));
        assert!(!modseqs_increasing(b"$modseq1 $modseq3 $modseq2"));
        assert!(modseqs_increasing(b"highestmodseq $highestmodseq"));
    }

    #[test]
    fn logout_only_added_when_missing_and_bye_groups_marked() {
        let s = p("state: nonauth\n\nok logout\n* bye\n");
        assert_eq!(s.groups.len(), 1);
        assert!(s.groups[0].have_bye);
    }
}
