//! Dovecot's `.conf.ext` files (`dovecot-sql.conf.ext`, `dovecot-ldap.conf.ext`): `key = value`
//! lines, `#` comments, a trailing `\` continues a value on the next line, a value may be
//! double-quoted. Read unchanged from an operator's Dovecot installation.

use std::path::Path;

/// The settings in file order (a repeated key: the last one wins for [`get`]).
pub type Settings = Vec<(String, String, usize)>;

pub fn read(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<Settings, String> {
    let mut out = Vec::new();
    let mut pending: Option<(String, String, usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if let Some((key, mut value, at)) = pending.take() {
            let part = line.trim();
            match part.strip_suffix('\\') {
                Some(more) => {
                    value.push(' ');
                    value.push_str(more.trim());
                    pending = Some((key, value, at));
                }
                None => {
                    value.push(' ');
                    value.push_str(part);
                    out.push((key, finish(&value), at));
                }
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with('!') {
            return Err(format!(
                "line {line_no}: {trimmed:?}: !include is not supported here: put the settings in this file"
            ));
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(format!("line {line_no}: expected key = value"));
        };
        let (key, value) = (key.trim().to_string(), value.trim());
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("line {line_no}: bad key {key:?}"));
        }
        match value.strip_suffix('\\') {
            Some(v) => pending = Some((key, v.trim().to_string(), line_no)),
            None => out.push((key, finish(value), line_no)),
        }
    }
    if let Some((key, value, at)) = pending {
        out.push((key, finish(&value), at));
    }
    Ok(out)
}

/// Removes one pair of surrounding double quotes.
fn finish(value: &str) -> String {
    let v = value.trim();
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

pub fn get<'a>(settings: &'a Settings, key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _, _)| k == key)
        .map(|(_, v, _)| v.as_str())
}

/// Refuses keys outside `known` (naming the line), so a typo does not silently fall back
/// to a default.
pub fn check_known(settings: &Settings, known: &[&str], what: &str) -> Result<(), String> {
    for (k, _, line) in settings {
        if !known.contains(&k.as_str()) {
            return Err(format!("line {line}: unknown {what} setting {k:?}"));
        }
    }
    Ok(())
}

/// Dovecot's `yes`/`no`.
pub fn yes(value: Option<&str>) -> bool {
    matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("yes" | "y" | "true" | "1")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_quotes_comments() {
        let s = parse(
            "# comment\ndriver = pgsql\nconnect = \"host=db dbname=mail\"\npassword_query = \\\n  SELECT password \\\n  FROM users WHERE userid = '%u'\n\ndefault_pass_scheme = SHA512-CRYPT\n",
        )
        .unwrap();
        assert_eq!(get(&s, "driver"), Some("pgsql"));
        assert_eq!(get(&s, "connect"), Some("host=db dbname=mail"));
        assert_eq!(
            get(&s, "password_query"),
            Some("SELECT password FROM users WHERE userid = '%u'")
        );
        assert!(parse("what\n").is_err());
        assert!(parse("!include x\n").is_err());
        assert!(check_known(&s, &["driver"], "sql")
            .unwrap_err()
            .contains("connect"));
    }
}
