//! Dovecot's `username_filter` on a passdb or userdb: space-separated wildcard patterns
//! (`*` any run, `?` one character), `!pattern` excludes. A user matching an exclusion is
//! skipped; otherwise, when there are inclusions, the user must match one. A skipped
//! database is not asked at all (its result rules do not apply), as in Dovecot.
//! No external dependency: the fuzz target includes this file as it is.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsernameFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl UsernameFilter {
    /// Parses the setting; patterns are lower-cased, as the names they are matched against.
    pub fn parse(text: &str) -> Result<UsernameFilter, String> {
        let mut f = UsernameFilter {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        for word in text.split_whitespace() {
            match word.strip_prefix('!') {
                Some("") => return Err("username_filter: a lone \"!\"".into()),
                Some(p) => f.exclude.push(p.to_lowercase()),
                None => f.include.push(word.to_lowercase()),
            }
        }
        if f.include.is_empty() && f.exclude.is_empty() {
            return Err("username_filter is empty".into());
        }
        Ok(f)
    }

    pub fn accepts(&self, user: &str) -> bool {
        if self.exclude.iter().any(|p| wildcard_match(p, user)) {
            return false;
        }
        self.include.is_empty() || self.include.iter().any(|p| wildcard_match(p, user))
    }
}

/// `*` and `?` matching in O(pattern × text) at worst: the name comes from a client, so no
/// backtracking that a pattern with many stars could make exponential.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently stretched to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*@example.com", "ann@example.com"));
        assert!(!wildcard_match("*@example.com", "ann@example.org"));
        assert!(wildcard_match("a?n@*", "ann@x"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("*a*b*c", "xxaxxbxxc"));
        assert!(!wildcard_match("*a*b*c", "xxaxxbxx"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        // Many stars against a long name that does not match: quick, not exponential.
        let long = "a".repeat(2000);
        assert!(!wildcard_match(&format!("{}b", "*a".repeat(40)), &long));
    }

    #[test]
    fn includes_and_excludes() {
        let f = UsernameFilter::parse("*@Example.com *@example.org !bad@example.com").unwrap();
        assert!(f.accepts("ann@example.com"));
        assert!(f.accepts("ann@example.org"));
        assert!(!f.accepts("bad@example.com"));
        assert!(!f.accepts("ann@example.net"));
        let only_excl = UsernameFilter::parse("!root").unwrap();
        assert!(only_excl.accepts("ann"));
        assert!(!only_excl.accepts("root"));
        assert!(UsernameFilter::parse("  ").is_err());
        assert!(UsernameFilter::parse("a !").is_err());
    }
}
