//! SAVEDATE's search keys (RFC 8514): `SAVEDBEFORE date`, `SAVEDON date`, `SAVEDSINCE date`
//! and `SAVEDATESUPPORTED`. imap-codec does not know them, so before a SEARCH, SORT or THREAD
//! is parsed each is written as a key it does know and that keeps its place in `OR`/`NOT`:
//! `SAVEDATESUPPORTED` as `ALL` (every mailbox here keeps save dates), a dated key as
//! `KEYWORD` with a reserved name carrying the date ([`decode`] turns it back). A client's own
//! keyword with that reserved prefix is refused, so it cannot pose as a date key.

use super::lexer::{tokenize, Tok, Token};
use chrono::NaiveDate;

/// Prefix of the stand-in keyword; no client keyword may start with it.
const PREFIX: &str = "$$SAVEDATE-";

/// A dated SAVEDATE key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    Before(NaiveDate),
    On(NaiveDate),
    Since(NaiveDate),
}

/// Why a command with SAVEDATE keys cannot be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// The command with its SAVEDATE keys replaced; Ok(None) when it has none (or is not a
/// search, or not well-formed at the token level, which the parser reports).
pub fn rewrite(msg: &[u8]) -> Result<Option<Vec<u8>>, Invalid> {
    let Some(toks) = tokenize(msg) else {
        return Ok(None);
    };
    let at = if toks.get(1).is_some_and(|t| t.atom_eq("UID")) {
        2
    } else {
        1
    };
    if !toks
        .get(at)
        .is_some_and(|t| t.atom_eq("SEARCH") || t.atom_eq("SORT") || t.atom_eq("THREAD"))
    {
        return Ok(None);
    }
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut i = at + 1;
    while let Some(t) = toks.get(i) {
        let Tok::Atom(a) = &t.tok else {
            i += 1;
            continue;
        };
        if a.len() >= PREFIX.len()
            && a.get(..PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
        {
            return Err(Invalid);
        }
        let word = a.to_ascii_uppercase();
        let kind = match word.as_str() {
            "SAVEDATESUPPORTED" => {
                edits.push((t.start, t.end, "ALL".into()));
                i += 1;
                continue;
            }
            "SAVEDBEFORE" => 'B',
            "SAVEDON" => 'O',
            "SAVEDSINCE" => 'S',
            _ => {
                i += 1;
                continue;
            }
        };
        let date = toks.get(i + 1).and_then(date_of).ok_or(Invalid)?;
        let end = toks.get(i + 1).map_or(t.end, |d| d.end);
        edits.push((
            t.start,
            end,
            format!("KEYWORD {PREFIX}{kind}{}", date.format("%Y%m%d")),
        ));
        i += 2;
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(msg.len() + 16 * edits.len());
    let mut last = 0;
    for (a, b, with) in edits {
        out.extend_from_slice(msg.get(last..a).unwrap_or_default());
        out.extend_from_slice(with.as_bytes());
        last = b;
    }
    out.extend_from_slice(msg.get(last..).unwrap_or_default());
    Ok(Some(out))
}

/// A search date (`d-Mon-yyyy`, atom or quoted).
fn date_of(t: &Token) -> Option<NaiveDate> {
    let s = match &t.tok {
        Tok::Atom(a) => a.clone(),
        Tok::Str(b) => String::from_utf8(b.clone()).ok()?,
        _ => return None,
    };
    NaiveDate::parse_from_str(&s, "%d-%b-%Y").ok()
}

/// The dated key a stand-in keyword names, or None for any other keyword.
pub fn decode(keyword: &str) -> Option<Saved> {
    let rest = keyword.strip_prefix(PREFIX)?;
    let kind = rest.get(..1)?;
    let date = NaiveDate::parse_from_str(rest.get(1..)?, "%Y%m%d").ok()?;
    match kind {
        "B" => Some(Saved::Before(date)),
        "O" => Some(Saved::On(date)),
        "S" => Some(Saved::Since(date)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> Result<Option<String>, Invalid> {
        rewrite(s.as_bytes()).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    #[test]
    fn keys_become_keywords_in_place() {
        assert_eq!(
            rw("a UID SEARCH OR SAVEDBEFORE 1-Feb-2024 NOT SAVEDON \"03-Mar-2025\" SAVEDATESUPPORTED\r\n"),
            Ok(Some(
                "a UID SEARCH OR KEYWORD $$SAVEDATE-B20240201 NOT KEYWORD $$SAVEDATE-O20250303 ALL\r\n"
                    .into()
            ))
        );
        assert_eq!(
            rw("s SORT (DATE) UTF-8 savedsince 9-Dec-2026\r\n"),
            Ok(Some(
                "s SORT (DATE) UTF-8 KEYWORD $$SAVEDATE-S20261209\r\n".into()
            ))
        );
        assert_eq!(
            decode("$$SAVEDATE-S20261209"),
            NaiveDate::from_ymd_opt(2026, 12, 9).map(Saved::Since)
        );
        assert_eq!(decode("$Forwarded"), None);
    }

    #[test]
    fn other_commands_and_bad_input() {
        assert_eq!(rw("a SEARCH ALL\r\n"), Ok(None));
        assert_eq!(rw("a FETCH 1 SAVEDATE\r\n"), Ok(None));
        assert_eq!(rw("a SEARCH SAVEDBEFORE\r\n"), Err(Invalid));
        assert_eq!(rw("a SEARCH SAVEDON 31-Feb-2024\r\n"), Err(Invalid));
        assert_eq!(rw("a SEARCH SAVEDON (x)\r\n"), Err(Invalid));
        assert_eq!(
            rw("a SEARCH KEYWORD $$savedate-B20240101\r\n"),
            Err(Invalid)
        );
    }
}
