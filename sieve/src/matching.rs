//! Comparators (RFC 4790: i;octet, i;ascii-casemap, i;unicode-casemap, i;ascii-numeric), match
//! types (:is, :contains, :matches, :regex) and relational matches (RFC 5231).

use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    UnicodeCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub fn parse(s: &str) -> Option<Comparator> {
        Some(match s.to_ascii_lowercase().as_str() {
            "i;octet" => Comparator::Octet,
            "i;ascii-casemap" => Comparator::AsciiCasemap,
            "i;unicode-casemap" => Comparator::UnicodeCasemap,
            "i;ascii-numeric" => Comparator::AsciiNumeric,
            _ => return None,
        })
    }

    fn fold(self, c: char) -> char {
        match self {
            Comparator::Octet | Comparator::AsciiNumeric => c,
            Comparator::AsciiCasemap => c.to_ascii_lowercase(),
            Comparator::UnicodeCasemap => c.to_lowercase().next().unwrap_or(c),
        }
    }

    fn norm(self, s: &str) -> String {
        s.chars().map(|c| self.fold(c)).collect()
    }

    /// The ordering of two values (relational :value, and :is).
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Comparator::AsciiNumeric => match (numeric(a), numeric(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => x.cmp(&y),
            },
            _ => self.norm(a).as_bytes().cmp(self.norm(b).as_bytes()),
        }
    }
}

/// i;ascii-numeric: the leading digits as a number; a string without one is positive infinity.
fn numeric(s: &str) -> Option<NumKey> {
    let digits: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(NumKey(trimmed.len(), trimmed.to_string()))
}

/// Compares digit strings of any length by length then text. `None` (infinity) sorts last.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct NumKey(usize, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl RelOp {
    pub fn parse(s: &str) -> Option<RelOp> {
        Some(match s.to_ascii_lowercase().as_str() {
            "gt" => RelOp::Gt,
            "ge" => RelOp::Ge,
            "lt" => RelOp::Lt,
            "le" => RelOp::Le,
            "eq" => RelOp::Eq,
            "ne" => RelOp::Ne,
            _ => return None,
        })
    }

    pub fn holds(self, o: Ordering) -> bool {
        match self {
            RelOp::Gt => o == Ordering::Greater,
            RelOp::Ge => o != Ordering::Less,
            RelOp::Lt => o == Ordering::Less,
            RelOp::Le => o != Ordering::Greater,
            RelOp::Eq => o == Ordering::Equal,
            RelOp::Ne => o != Ordering::Equal,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    Is,
    Contains,
    Matches,
    Regex,
    Value(RelOp),
    Count(RelOp),
}

/// Does `value` match `key`? For :matches and :regex, `captures` receives the match variables
/// (whole match first).
pub fn matches(
    mt: MatchType,
    cmp: Comparator,
    value: &str,
    key: &str,
    captures: Option<&mut Vec<String>>,
) -> bool {
    match mt {
        MatchType::Is => cmp.compare(value, key) == Ordering::Equal,
        MatchType::Contains => cmp.norm(value).contains(&cmp.norm(key)),
        MatchType::Value(op) => op.holds(cmp.compare(value, key)),
        MatchType::Count(op) => op.holds(cmp.compare(value, key)),
        MatchType::Matches => glob(cmp, value, key, captures),
        MatchType::Regex => regex_match(cmp, value, key, captures),
    }
}

fn glob(cmp: Comparator, value: &str, pattern: &str, captures: Option<&mut Vec<String>>) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Lit(char),
        Any,
        Star,
    }
    let mut pat = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        pat.push(match c {
            '\\' => match it.next() {
                Some(n) => P::Lit(cmp.fold(n)),
                None => P::Lit('\\'),
            },
            '*' => P::Star,
            '?' => P::Any,
            c => P::Lit(cmp.fold(c)),
        });
    }
    let orig: Vec<char> = value.chars().collect();
    let val: Vec<char> = orig.iter().map(|&c| cmp.fold(c)).collect();
    // Backtracking with each star as short as possible (RFC 5229 3.2: not greedy). A frame per
    // star: (pattern index, span start, span end, spans recorded before it).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut stack: Vec<(usize, usize, usize, usize)> = Vec::new();
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut budget: u32 = 200_000;
    loop {
        budget = budget.saturating_sub(1);
        if budget == 0 {
            return false;
        }
        if pi == pat.len() {
            if vi == val.len() {
                break;
            }
        } else {
            match pat[pi] {
                P::Lit(c) if val.get(vi) == Some(&c) => {
                    pi += 1;
                    vi += 1;
                    continue;
                }
                P::Any if vi < val.len() => {
                    spans.push((vi, vi + 1));
                    pi += 1;
                    vi += 1;
                    continue;
                }
                P::Star => {
                    stack.push((pi, vi, vi, spans.len()));
                    spans.push((vi, vi));
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: extend the most recent star by one character.
        loop {
            let Some((spi, start, end, slen)) = stack.pop() else {
                return false;
            };
            spans.truncate(slen);
            if end < val.len() {
                stack.push((spi, start, end + 1, slen));
                spans.push((start, end + 1));
                pi = spi + 1;
                vi = end + 1;
                break;
            }
        }
    }
    if let Some(c) = captures {
        c.clear();
        c.push(value.to_string());
        for (s, e) in spans {
            c.push(orig[s..e].iter().collect());
        }
    }
    true
}

/// Compiled patterns of this thread, so a key is compiled once for all the values it meets.
fn compiled_regex(key: &str, insensitive: bool) -> Option<regex::Regex> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Cache = HashMap<(String, bool), Option<regex::Regex>>;
    thread_local! {
        static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(re) = c.get(&(key.to_string(), insensitive)) {
            return re.clone();
        }
        let re = regex::RegexBuilder::new(key)
            .case_insensitive(insensitive)
            .size_limit(1 << 20)
            .build()
            .ok();
        if c.len() >= 64 {
            c.clear();
        }
        c.insert((key.to_string(), insensitive), re.clone());
        re
    })
}

/// Whether a key is a regular expression this engine takes (a key made at run time may not
/// be).
pub fn regex_valid(key: &str) -> bool {
    compiled_regex(key, false).is_some()
}

fn regex_match(
    cmp: Comparator,
    value: &str,
    key: &str,
    captures: Option<&mut Vec<String>>,
) -> bool {
    let insensitive = matches!(cmp, Comparator::AsciiCasemap | Comparator::UnicodeCasemap);
    let Some(re) = compiled_regex(key, insensitive) else {
        return false;
    };
    match re.captures(value) {
        Some(caps) => {
            if let Some(c) = captures {
                c.clear();
                for m in caps.iter() {
                    c.push(m.map(|m| m.as_str().to_string()).unwrap_or_default());
                }
            }
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &str, p: &str) -> Option<Vec<String>> {
        let mut c = Vec::new();
        glob(Comparator::Octet, v, p, Some(&mut c)).then_some(c)
    }

    #[test]
    fn glob_not_greedy() {
        let c = caps("frop.......frop.........frop....", "?*frop*").unwrap();
        assert_eq!(c[1..].concat(), "frop................frop....");
        assert_eq!(c[1], "f");
        assert_eq!(c[2], "rop.......");
        assert!(caps("abc", "a?c").is_some());
        assert!(caps("abc", "a\\?c").is_none());
        assert!(caps("a?c", "a\\?c").is_some());
        assert!(caps("", "*").is_some());
        assert!(caps("abc", "*d").is_none());
        let c = caps("the cat jumps off the table", "the * jumps off the *").unwrap();
        assert_eq!((c[1].as_str(), c[2].as_str()), ("cat", "table"));
    }

    #[test]
    fn comparators() {
        let n = Comparator::AsciiNumeric;
        assert_eq!(n.compare("010", "10"), Ordering::Equal);
        assert_eq!(n.compare("9", "10"), Ordering::Less);
        assert_eq!(n.compare("abc", "10"), Ordering::Greater);
        assert_eq!(n.compare("abc", "x"), Ordering::Equal);
        assert!(matches(
            MatchType::Is,
            Comparator::AsciiCasemap,
            "FoO",
            "foo",
            None
        ));
        assert!(!matches(
            MatchType::Is,
            Comparator::Octet,
            "FoO",
            "foo",
            None
        ));
        assert!(matches(
            MatchType::Contains,
            Comparator::UnicodeCasemap,
            "ÄBC",
            "äb",
            None
        ));
        assert!(matches(
            MatchType::Value(RelOp::Gt),
            Comparator::Octet,
            "b",
            "a",
            None
        ));
    }

    #[test]
    fn pathological_glob_is_bounded() {
        let v = "a".repeat(5000);
        let p = "*a*a*a*a*a*a*a*b";
        assert!(!glob(Comparator::Octet, &v, p, None));
    }
}
