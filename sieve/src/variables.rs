//! RFC 5229 variables: names, `${...}` substitution and the `set` modifiers.

/// identifier, or with `namespace` dotted names (`global.x`); match variables are digits.
pub fn valid_name(name: &str, namespace: bool) -> bool {
    let ident = |s: &str| {
        let mut c = s.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if namespace {
        !name.is_empty() && name.split('.').all(ident)
    } else {
        ident(name)
    }
}

/// A reference inside `${...}`.
pub enum VarRef<'a> {
    Match(usize),
    Named(&'a str),
}

fn parse_ref(inner: &str) -> Option<VarRef<'_>> {
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        let n = inner.trim_start_matches('0');
        let n: usize = if n.is_empty() { 0 } else { n.parse().ok()? };
        return Some(VarRef::Match(n));
    }
    valid_name(inner, true).then_some(VarRef::Named(inner))
}

/// Replaces every well-formed `${name}` by its value; anything else stays as written.
/// The result is cut at `max` bytes.
pub fn expand(s: &str, max: usize, mut lookup: impl FnMut(VarRef<'_>) -> String) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after
            .find('}')
            .and_then(|end| parse_ref(&after[..end]).map(|r| (r, end)))
        {
            Some((r, end)) => {
                out.push_str(&lookup(r));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
        if out.len() > max {
            break;
        }
    }
    out.push_str(rest);
    truncate(&mut out, max);
    out
}

/// Cuts a string at a character boundary at most `max` bytes long.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Applies `set` modifiers in RFC 5229's order of precedence; the result is at most `max`
/// bytes, never ending in half a :quotewildcard escape.
pub fn apply_modifiers(value: String, tags: &[&str], max: usize) -> String {
    let mut v = value;
    if tags.contains(&"lower") {
        v = v.to_lowercase();
    }
    if tags.contains(&"upper") {
        v = v.to_uppercase();
    }
    if tags.contains(&"lowerfirst") {
        v = first(&v, |c| c.to_lowercase().collect());
    }
    if tags.contains(&"upperfirst") {
        v = first(&v, |c| c.to_uppercase().collect());
    }
    if tags.contains(&"quotewildcard") {
        let mut q = String::with_capacity(v.len() + 8);
        for c in v.chars() {
            let esc = matches!(c, '*' | '?' | '\\');
            if q.len() + c.len_utf8() + usize::from(esc) > max {
                break;
            }
            if esc {
                q.push('\\');
            }
            q.push(c);
        }
        v = q;
    }
    if tags.contains(&"quoteregex") {
        v = regex::escape(&v);
    }
    if tags.contains(&"length") {
        v = v.chars().count().to_string();
    }
    v
}

fn first(s: &str, f: impl Fn(char) -> String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(h) => f(h) + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let look = |r: VarRef<'_>| match r {
            VarRef::Match(n) => format!("m{n}"),
            VarRef::Named(n) => n.to_uppercase(),
        };
        assert_eq!(
            expand("a${x}b${002}${}${ x}${y", 100, look),
            "aXbm2${}${ x}${y"
        );
        assert_eq!(expand("${abc}", 2, |_| "long".into()), "lo");
    }

    #[test]
    fn modifiers() {
        assert_eq!(
            apply_modifiers("juMBlEd".into(), &["lower", "upperfirst"], 100),
            "Jumbled"
        );
        assert_eq!(
            apply_modifiers("a*b".into(), &["quotewildcard", "length"], 100),
            "4"
        );
        assert!(
            valid_name("global.x", true) && !valid_name("1x", false) && !valid_name("a.b", false)
        );
    }
}
