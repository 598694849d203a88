//! The imaptest suite's expected outputs as test vectors: the `.mbox` messages and the expected
//! FETCH/SEARCH responses are read at test time from the imaptest checkout (IMAPTEST_TESTS, else
//! /work/shared/imaptest-tests/tests); nothing of them is copied here. When the directory is
//! absent the tests say so and pass, since the vectors are an external reference.

use super::search::{matches, LazyContent, MessageCtx, SearchKey, SeqBound, SequenceSet};
use super::section::{Partial, SectionSpec, SectionText};
use super::{binary_size, decode_binary, extract, render_body, render_envelope};
use std::collections::BTreeSet;
use std::path::PathBuf;
use storage::mime::{parse_facts, MessageFacts};
use storage::{Guid, MessageMeta, ObjectId};

fn dir() -> Option<PathBuf> {
    let d = std::env::var_os("IMAPTEST_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/imaptest-tests/tests"));
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("imaptest vectors not found at {}: skipped", d.display());
        None
    }
}

/// Messages of an imaptest mbox: the text between "From " lines, LF made CRLF (as imaptest
/// appends them).
fn mbox(name: &str) -> Option<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(dir()?.join(name)).expect("read mbox");
    let mut msgs: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("From ") {
            msgs.push(String::new());
        } else if let Some(m) = msgs.last_mut() {
            m.push_str(line);
        }
    }
    Some(msgs.into_iter().map(|m| crlf(&m)).collect())
}

fn crlf(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0u8;
    for &b in s.as_bytes() {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn script(name: &str) -> Option<String> {
    Some(std::fs::read_to_string(dir()?.join(name)).expect("read script"))
}

/// Splits a script into (command line, expected text up to the next command) pairs.
fn commands(script: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in script.split_inclusive('\n') {
        let l = line.trim_end_matches('\n');
        if l.starts_with("ok ") || l.starts_with("bad ") || l.starts_with("no ") {
            out.push((l.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
        }
    }
    out
}

fn find_ci(hay: &str, needle: &str, from: usize) -> Option<usize> {
    hay.get(from..)?
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
        .map(|i| i + from)
}

/// The `body.peek[...]`-like items of a FETCH command, in order: (item, section, partial).
fn request_items(cmd: &str, prefixes: &[&str]) -> Vec<(String, String, Option<Partial>)> {
    let mut items = Vec::new();
    let lower = cmd.to_ascii_lowercase();
    let mut i = 0;
    while i < lower.len() {
        let Some((p, start)) = prefixes
            .iter()
            .filter_map(|p| lower.get(i..)?.find(p).map(|at| (*p, at + i)))
            .min_by_key(|(_, at)| *at)
        else {
            break;
        };
        let open = start + p.len();
        let close = cmd[open..].find(']').map(|c| c + open).expect("]");
        let section = cmd[open..close].to_string();
        let mut end = close + 1;
        let mut partial = None;
        if cmd[end..].starts_with('<') {
            let gt = cmd[end..].find('>').unwrap() + end;
            let (o, c) = cmd[end + 1..gt].split_once('.').unwrap();
            partial = Some(Partial {
                origin: o.parse().unwrap(),
                count: c.parse().unwrap(),
            });
            end = gt + 1;
        }
        items.push((p.to_string(), section, partial));
        i = end;
    }
    items
}

/// Values of `body[...]`/`binary[...]`/`binary.size[...]` items in an expected response.
/// A `$variable` (a value the script captures rather than states) gives None.
fn response_values(resp: &str) -> Vec<Option<Vec<u8>>> {
    let mut vals = Vec::new();
    let lower = resp.to_ascii_lowercase();
    let mut i = 0;
    while i < resp.len() {
        let rest = &lower[i..];
        if rest.starts_with("{{{") {
            i = find_ci(resp, "}}}", i).map(|e| e + 3).unwrap_or(resp.len());
            continue;
        }
        let item = ["body[", "binary[", "binary.size["]
            .iter()
            .find(|p| rest.starts_with(**p) && (i == 0 || matches!(&resp[i - 1..i], "(" | " ")));
        if item.is_none() {
            i += 1;
            continue;
        }
        let close = resp[i..].find(']').unwrap() + i;
        let mut j = close + 1;
        if resp[j..].starts_with('<') {
            j = resp[j..].find('>').unwrap() + j + 1;
        }
        j += 1; // the space
        let v = &resp[j..];
        if let Some(body) = v.strip_prefix("~{{{\n") {
            let e = body.find("\n}}}").unwrap();
            vals.push(Some(body.as_bytes()[..e].to_vec()));
            i = j + 5 + e + 4;
        } else if let Some(body) = v.strip_prefix("{{{\n") {
            let e = body.find("\n}}}").unwrap();
            vals.push(Some(crlf(&body[..e])));
            i = j + 4 + e + 4;
        } else if let Some(q) = v.strip_prefix('"') {
            let e = q.find('"').unwrap();
            vals.push(Some(q.as_bytes()[..e].to_vec()));
            i = j + e + 2;
        } else if v.starts_with('$') {
            vals.push(None);
            i = j + 1;
        } else {
            let n: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
            i = j + n.len().max(1);
            vals.push(Some(n.into_bytes()));
        }
    }
    vals
}

fn parse_section(s: &str) -> SectionSpec {
    let (dotted, list) = match s.split_once(' ') {
        Some((d, l)) => (d, Some(l)),
        None => (s, None),
    };
    let mut part = Vec::new();
    let mut text = Vec::new();
    for piece in dotted.split('.').filter(|p| !p.is_empty()) {
        match piece.parse::<u32>() {
            Ok(n) if text.is_empty() => part.push(n),
            _ => text.push(piece.to_ascii_lowercase()),
        }
    }
    let names = || -> Vec<Vec<u8>> {
        list.unwrap_or("")
            .trim_matches(|c| c == '(' || c == ')')
            .split(' ')
            .filter(|n| !n.is_empty())
            .map(|n| n.as_bytes().to_vec())
            .collect()
    };
    let text = match text.join(".").as_str() {
        "" => None,
        "header" => Some(SectionText::Header),
        "text" => Some(SectionText::Text),
        "mime" => Some(SectionText::Mime),
        "header.fields" => Some(SectionText::HeaderFields(names())),
        "header.fields.not" => Some(SectionText::HeaderFieldsNot(names())),
        other => panic!("section text {other}"),
    };
    SectionSpec {
        part,
        text,
        partial: None,
    }
}

fn seq_of(cmd: &str) -> usize {
    cmd.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Runs every FETCH of body/binary sections in a script against its mbox; returns how many
/// values were checked.
fn run_fetch_script(name: &str) -> usize {
    let (Some(msgs), Some(script)) = (mbox(&format!("{name}.mbox")), script(name)) else {
        return 0;
    };
    let facts: Vec<MessageFacts> = msgs.iter().map(|m| parse_facts(m)).collect();
    let mut checked = 0;
    for (cmd, expected) in commands(&script) {
        if !cmd.starts_with("ok fetch ") || expected.trim_start().starts_with('!') {
            continue;
        }
        let items = request_items(
            &cmd,
            &["body.peek[", "binary.peek[", "binary.size[", "(body["],
        );
        let vals = response_values(&expected);
        if items.is_empty() || items.len() != vals.len() {
            continue;
        }
        let n = seq_of(&cmd) - 1;
        let (raw, f) = (&msgs[n], &facts[n]);
        for ((kind, section, partial), want) in items.iter().zip(vals) {
            let Some(want) = want else { continue };
            let mut spec = parse_section(section);
            spec.partial = *partial;
            let got = match kind.as_str() {
                "binary.peek[" => decode_binary(raw, f, &spec.part, spec.partial).unwrap(),
                "binary.size[" => binary_size(raw, f, &spec.part)
                    .unwrap()
                    .to_string()
                    .into_bytes(),
                _ => extract(raw, f, &spec),
            };
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{name}: {cmd} ({kind}{section})"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn fetch_body_sections() {
    let mut total = 0;
    for name in [
        "fetch-body",
        "fetch-body-mime",
        "fetch-body-message-rfc822",
        "fetch-body-message-rfc822-mime",
        "fetch-body-message-rfc822-x2",
        "fetch-binary-mime",
        "fetch-binary-mime-qp",
        "fetch-binary-mime-base64",
    ] {
        let n = run_fetch_script(name);
        eprintln!("{name}: {n} values checked");
        total += n;
    }
    if dir().is_some() {
        assert!(total > 60, "only {total} values checked");
    }
}

/// The `(ENVELOPE ...)`/`(BODY ...)` value of each `* N FETCH` line of a script.
fn fetch_lines(script: &str, item: &str) -> Vec<(usize, String)> {
    script
        .lines()
        .filter(|l| l.starts_with("* "))
        .filter_map(|l| {
            let n = l.split_whitespace().nth(1)?.parse().ok()?;
            let at = find_ci(l, &format!("({item} "), 0)? + item.len() + 2;
            Some((n, l[at..l.len() - 1].to_string()))
        })
        .collect()
}

#[test]
fn fetch_envelope() {
    let (Some(msgs), Some(script)) = (mbox("fetch-envelope.mbox"), script("fetch-envelope")) else {
        return;
    };
    let lines = fetch_lines(&script, "ENVELOPE");
    assert_eq!(lines.len(), 6);
    for (n, want) in lines {
        let mut out = Vec::new();
        render_envelope(&parse_facts(&msgs[n - 1]).envelope, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), want, "message {n}");
    }
}

#[test]
fn fetch_bodystructure() {
    let (Some(msgs), Some(script)) = (
        mbox("fetch-bodystructure.mbox"),
        script("fetch-bodystructure"),
    ) else {
        return;
    };
    let lines = fetch_lines(&script, "BODY");
    assert!(!lines.is_empty());
    for (n, want) in lines {
        let mut out = Vec::new();
        render_body(&parse_facts(&msgs[n - 1]).body, false, &mut out);
        // imaptest compares case-insensitively; Dovecot keeps the sender's case, we lower-case.
        assert_eq!(
            String::from_utf8(out).unwrap().to_ascii_lowercase(),
            want.to_ascii_lowercase()
        );
    }
}

fn tokens(s: &str) -> Vec<String> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '"' => {
                chars.next();
                toks.push(chars.by_ref().take_while(|c| *c != '"').collect());
            }
            '(' | ')' => {
                toks.push(c.to_string());
                chars.next();
            }
            _ => {
                let mut t = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '(' || c == ')' {
                        break;
                    }
                    t.push(c);
                    chars.next();
                }
                toks.push(t);
            }
        }
    }
    toks
}

fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%d-%b-%Y").unwrap()
}

fn seqset(s: &str) -> SequenceSet {
    let b = |v: &str| {
        if v == "*" {
            SeqBound::Star
        } else {
            SeqBound::Num(v.parse().unwrap())
        }
    };
    SequenceSet(
        s.split(',')
            .map(|r| match r.split_once(':') {
                Some((a, z)) => (b(a), b(z)),
                None => (b(r), b(r)),
            })
            .collect(),
    )
}

fn key(t: &[String], i: &mut usize, vars: &[(&str, u64)]) -> SearchKey {
    let w = t[*i].to_ascii_lowercase();
    *i += 1;
    let arg = |i: &mut usize| {
        *i += 1;
        t[*i - 1].clone()
    };
    let num = |v: String| -> u64 {
        vars.iter()
            .find(|(k, _)| *k == v)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| v.parse().unwrap())
    };
    use SearchKey as K;
    match w.as_str() {
        "all" => K::All,
        "not" => K::Not(Box::new(key(t, i, vars))),
        "or" => {
            let a = key(t, i, vars);
            K::Or(Box::new(a), Box::new(key(t, i, vars)))
        }
        "(" => {
            let mut keys = Vec::new();
            while t[*i] != ")" {
                keys.push(key(t, i, vars));
            }
            *i += 1;
            K::And(keys)
        }
        "from" => K::From(arg(i)),
        "to" => K::To(arg(i)),
        "cc" => K::Cc(arg(i)),
        "bcc" => K::Bcc(arg(i)),
        "subject" => K::Subject(arg(i)),
        "body" => K::Body(arg(i)),
        "text" => K::Text(arg(i)),
        "header" => {
            let name = arg(i);
            K::Header(name, arg(i))
        }
        "smaller" => K::Smaller(num(arg(i))),
        "larger" => K::Larger(num(arg(i))),
        "sentbefore" => K::SentBefore(date(&arg(i))),
        "senton" => K::SentOn(date(&arg(i))),
        "sentsince" => K::SentSince(date(&arg(i))),
        other => K::SequenceSet(seqset(other)),
    }
}

fn run_search_script(name: &str) -> usize {
    let (Some(msgs), Some(script)) = (mbox(&format!("{name}.mbox")), script(name)) else {
        return 0;
    };
    let metas: Vec<MessageMeta> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| MessageMeta {
            uid: i as u32 + 1,
            guid: Guid::default(),
            object: ObjectId([0; 32]),
            flags: BTreeSet::new(),
            modseq: 1,
            internal_date: 0,
            internal_date_tz_min: 0,
            size: m.len() as u64,
            saved_ms: 0,
        })
        .collect();
    let size3 = metas.get(2).map(|m| m.size).unwrap_or(0);
    let vars = [("$size", size3)];
    let mut checked = 0;
    for (cmd, expected) in commands(&script) {
        let Some(criteria) = cmd.strip_prefix("ok search ") else {
            continue;
        };
        let Some(want_line) = expected.lines().find(|l| l.starts_with("* search")) else {
            continue;
        };
        let want: Vec<usize> = want_line
            .split_whitespace()
            .skip(2)
            .map(|n| n.parse().unwrap())
            .collect();
        let toks = tokens(criteria);
        let mut i = 0;
        let mut keys = Vec::new();
        while i < toks.len() {
            keys.push(key(&toks, &mut i, &vars));
        }
        let k = SearchKey::And(keys);
        let got: Vec<usize> = (0..msgs.len())
            .filter(|&n| {
                let raw = msgs[n].clone();
                let content = LazyContent::new(move || Some(raw.clone()), || None);
                let ctx = MessageCtx::new(
                    n as u32 + 1,
                    &metas[n],
                    false,
                    msgs.len() as u32,
                    msgs.len() as u32,
                    &content,
                );
                matches(&k, &ctx)
            })
            .map(|n| n + 1)
            .collect();
        assert_eq!(got, want, "{name}: {cmd}");
        checked += 1;
    }
    checked
}

#[test]
fn search_scripts() {
    let mut total = 0;
    for name in [
        "search-addresses",
        "search-body",
        "search-header",
        "search-size",
        "search-date",
        "nil",
    ] {
        let n = run_search_script(name);
        eprintln!("{name}: {n} searches checked");
        total += n;
    }
    if dir().is_some() {
        assert!(total > 60, "only {total} searches checked");
    }
}
