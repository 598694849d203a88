//! The `key=value key2 key3='a b'` lists Dovecot settings are made of (static `args`,
//! `default_fields`, SQL `connect`): one tokenizer, told which quote character the setting
//! uses (double quotes for fields, single quotes for libpq-style `connect`). A backslash in
//! a quoted value takes the next character literally. No external dependency: the fuzz
//! target includes this file as it is.

/// One `key` or `key=value`; `value` is None for a bare key.
pub type Pair = (String, Option<String>);

/// Splits `text` into pairs; an unterminated quote is an error naming the key.
pub fn tokenize(text: &str, quote: char) -> Result<Vec<Pair>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            out.push((key, None));
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek() == Some(&quote) {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == quote {
                    closed = true;
                    break;
                }
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
            if !closed {
                return Err(format!("{key}: unterminated quoted value"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, Some(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_bare_keys_and_escapes() {
        let p = tokenize(r#" a=1  b="x y" c d="q\"uote" e= "#, '"').unwrap();
        let want: Vec<Pair> = vec![
            ("a".into(), Some("1".into())),
            ("b".into(), Some("x y".into())),
            ("c".into(), None),
            ("d".into(), Some("q\"uote".into())),
            ("e".into(), Some(String::new())),
        ];
        assert_eq!(p, want);
        // The other quote character is an ordinary one.
        let p = tokenize("password='se cret' x=\"y", '\'').unwrap();
        assert_eq!(p[0], ("password".into(), Some("se cret".into())));
        assert_eq!(p[1], ("x".into(), Some("\"y".into())));
        assert!(tokenize("a='open", '\'').unwrap_err().contains('a'));
        assert!(tokenize("a=\"open\\\"", '"').is_err());
        assert_eq!(tokenize("   ", '"').unwrap(), Vec::<Pair>::new());
    }
}
