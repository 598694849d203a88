//! SEARCHRES (RFC 5182): `$` stands for the result the last `SEARCH RETURN (SAVE ...)`
//! saved. The saved result is a set of UIDs in the selected mailbox's snapshot; before a
//! command is parsed, each `$` where a sequence set may stand is written out as the set it
//! names now (UIDs for UID commands and the `UID $` search key, else the current sequence
//! numbers; expunged messages drop out), so the grammars need not know of it.

use super::lexer::{tokenize, Tok, Token};

/// No message has this UID or sequence number: an empty saved result becomes this, which
/// matches nothing without being an error.
const NOTHING: &str = "4294967295";

/// The command with every `$` replaced; None when it has none (or is not well-formed at
/// the token level, which the parser reports).
pub fn substitute(
    msg: &[u8],
    saved: &[u32],
    seq_of: &dyn Fn(u32) -> Option<u32>,
) -> Option<Vec<u8>> {
    if !msg.contains(&b'$') {
        return None;
    }
    let toks = tokenize(msg)?;
    let uid_cmd = toks.get(1).is_some_and(|t| atom_eq(t, "UID"));
    let at = if uid_cmd { 2 } else { 1 };
    let word = match &toks.get(at)?.tok {
        Tok::Atom(w) => w.to_ascii_uppercase(),
        _ => return None,
    };
    let dollars: Vec<usize> = match word.as_str() {
        "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" => {
            let i = at + 1;
            toks.get(i)
                .filter(|t| atom_eq(t, "$"))
                .map(|_| vec![i])
                .unwrap_or_default()
        }
        // `KEYWORD $` names a keyword, not the result.
        "SEARCH" | "SORT" | "THREAD" => (at + 1..toks.len())
            .filter(|&i| toks.get(i).is_some_and(|t| atom_eq(t, "$")))
            .filter(|&i| {
                !toks
                    .get(i - 1)
                    .is_some_and(|p| atom_eq(p, "KEYWORD") || atom_eq(p, "UNKEYWORD"))
            })
            .collect(),
        _ => Vec::new(),
    };
    if dollars.is_empty() {
        return None;
    }
    let mut uids: Vec<u32> = saved.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let mut seqs: Vec<u32> = uids.iter().filter_map(|&u| seq_of(u)).collect();
    seqs.sort_unstable();
    // Only present messages count, for UIDs too.
    uids.retain(|&u| seq_of(u).is_some());
    let searching = matches!(word.as_str(), "SEARCH" | "SORT" | "THREAD");
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut last = 0;
    let mut make_uid = false;
    for &i in &dollars {
        let Some(t) = toks.get(i) else { continue };
        let by_uid = uid_cmd || (i > 0 && toks.get(i - 1).is_some_and(|p| atom_eq(p, "UID")));
        let nums = if by_uid { &uids } else { &seqs };
        let text = if !nums.is_empty() {
            set_text(nums)
        } else if by_uid {
            NOTHING.to_string()
        } else if searching {
            format!("UID {NOTHING}")
        } else {
            // A sequence set cannot be empty: the command becomes its UID form on a UID
            // that does not exist, which does nothing and answers OK.
            make_uid = true;
            NOTHING.to_string()
        };
        out.extend_from_slice(msg.get(last..t.start)?);
        out.extend_from_slice(text.as_bytes());
        last = t.end;
    }
    out.extend_from_slice(msg.get(last..)?);
    if make_uid {
        let start = toks.get(at)?.start;
        let mut with_uid = out.get(..start)?.to_vec();
        with_uid.extend_from_slice(b"UID ");
        with_uid.extend_from_slice(out.get(start..)?);
        out = with_uid;
    }
    Some(out)
}

fn atom_eq(t: &Token, s: &str) -> bool {
    matches!(&t.tok, Tok::Atom(a) if a.eq_ignore_ascii_case(s))
}

/// Ascending numbers as an IMAP set, runs as ranges: `1:3,7`.
fn set_text(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = nums.get(i) {
        let mut end = start;
        while nums
            .get(i + 1)
            .is_some_and(|&n| Some(n) == end.checked_add(1))
        {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::substitute;

    /// UIDs 10, 20, 30, 40 are sequence numbers 1..4.
    fn seq_of(u: u32) -> Option<u32> {
        [10, 20, 30, 40]
            .iter()
            .position(|&x| x == u)
            .map(|i| i as u32 + 1)
    }

    fn sub(cmd: &str, saved: &[u32]) -> Option<String> {
        substitute(cmd.as_bytes(), saved, &seq_of).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn dollar_becomes_the_saved_set() {
        let saved = [40, 10, 20, 99];
        assert_eq!(
            sub("a FETCH $ (FLAGS)\r\n", &saved).unwrap(),
            "a FETCH 1:2,4 (FLAGS)\r\n"
        );
        assert_eq!(
            sub("a UID STORE $ +FLAGS (\\Seen)\r\n", &saved).unwrap(),
            "a UID STORE 10,20,40 +FLAGS (\\Seen)\r\n"
        );
        assert_eq!(
            sub("a SEARCH $ UID $ SEEN\r\n", &saved).unwrap(),
            "a SEARCH 1:2,4 UID 10,20,40 SEEN\r\n"
        );
        // A keyword named $ in a flag list is left alone; so is a command without $.
        assert_eq!(sub("a STORE 1 +FLAGS ($)\r\n", &saved), None);
        assert_eq!(sub("a SEARCH KEYWORD $\r\n", &saved), None);
        assert_eq!(sub("a FETCH 1 (FLAGS)\r\n", &saved), None);
    }

    #[test]
    fn an_empty_result_matches_nothing() {
        assert_eq!(
            sub("a FETCH $ FLAGS\r\n", &[]).unwrap(),
            "a UID FETCH 4294967295 FLAGS\r\n"
        );
        assert_eq!(
            sub("a SEARCH $\r\n", &[]).unwrap(),
            "a SEARCH UID 4294967295\r\n"
        );
        assert_eq!(
            sub("a UID COPY $ Trash\r\n", &[77]).unwrap(),
            "a UID COPY 4294967295 Trash\r\n"
        );
    }
}
