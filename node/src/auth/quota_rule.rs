//! Dovecot's `quota_rule` syntax for the whole account: `*:storage=1G`, `*:messages=1000`,
//! `*:storage=1G:messages=1000`, `*:bytes=10M`, `*:ignore` is not supported. As in Dovecot,
//! a `storage` value without a unit is in kilobytes, `bytes` in bytes; 0 means unlimited.

use crate::config::values::parse_size;
use storage::QuotaLimits;

pub fn parse_rule(rule: &str) -> Result<QuotaLimits, String> {
    let mut parts = rule.trim().split(':');
    let mailbox = parts.next().unwrap_or_default();
    if mailbox != "*" {
        return Err(format!(
            "{rule:?}: only account-wide rules (\"*:...\") are supported, not per-mailbox {mailbox:?}"
        ));
    }
    let mut limits = QuotaLimits::default();
    let mut any = false;
    for part in parts {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{rule:?}: expected NAME=VALUE, found {part:?}"))?;
        let value = value.trim();
        if value.starts_with('+') || value.starts_with('-') || value.ends_with('%') {
            return Err(format!(
                "{rule:?}: relative limits ({value:?}) are not supported"
            ));
        }
        match name.trim() {
            "storage" => {
                // Dovecot: a bare number is kilobytes.
                let bytes = if value.bytes().all(|b| b.is_ascii_digit()) {
                    value
                        .parse::<u64>()
                        .ok()
                        .and_then(|k| k.checked_mul(1024))
                        .ok_or_else(|| format!("{rule:?}: invalid storage {value:?}"))?
                } else {
                    parse_size(value).map_err(|e| format!("{rule:?}: {e}"))?
                };
                limits.max_bytes = (bytes > 0).then_some(bytes);
            }
            "bytes" => {
                let bytes = parse_size(value).map_err(|e| format!("{rule:?}: {e}"))?;
                limits.max_bytes = (bytes > 0).then_some(bytes);
            }
            "messages" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("{rule:?}: invalid messages count {value:?}"))?;
                limits.max_messages = (n > 0).then_some(n);
            }
            other => {
                return Err(format!(
                    "{rule:?}: unknown limit {other:?} (supported: storage, bytes, messages)"
                ))
            }
        }
        any = true;
    }
    if !any {
        return Err(format!("{rule:?}: no limit given (e.g. \"*:storage=1G\")"));
    }
    Ok(limits)
}

/// Applies several rules in order: each one overrides the limits it names.
pub fn parse_rules<'a>(rules: impl IntoIterator<Item = &'a str>) -> Result<QuotaLimits, String> {
    apply_rules(QuotaLimits::default(), rules)
}

/// Applies rules on top of `base` (a user's rules over the global quota_rule).
pub fn apply_rules<'a>(
    base: QuotaLimits,
    rules: impl IntoIterator<Item = &'a str>,
) -> Result<QuotaLimits, String> {
    let mut limits = base;
    for rule in rules {
        let (line, explicit) = (parse_rule(rule)?, names(rule));
        if explicit.0 {
            limits.max_bytes = line.max_bytes;
        }
        if explicit.1 {
            limits.max_messages = line.max_messages;
        }
    }
    Ok(limits)
}

/// Which limits a rule sets (bytes, messages).
fn names(rule: &str) -> (bool, bool) {
    let mut out = (false, false);
    for part in rule.split(':').skip(1) {
        match part.split('=').next().map(str::trim) {
            Some("storage") | Some("bytes") => out.0 = true,
            Some("messages") => out.1 = true,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_with_units() {
        let l = parse_rule("*:storage=1G").unwrap();
        assert_eq!(l.max_bytes, Some(1 << 30));
        assert_eq!(l.max_messages, None);
        assert_eq!(
            parse_rule("*:storage=512M").unwrap().max_bytes,
            Some(512 << 20)
        );
    }

    #[test]
    fn bare_storage_is_kilobytes_bare_bytes_is_bytes() {
        assert_eq!(
            parse_rule("*:storage=100").unwrap().max_bytes,
            Some(102_400)
        );
        assert_eq!(parse_rule("*:bytes=100").unwrap().max_bytes, Some(100));
    }

    #[test]
    fn messages_and_combined() {
        assert_eq!(
            parse_rule("*:messages=1000").unwrap().max_messages,
            Some(1000)
        );
        let l = parse_rule("*:storage=1G:messages=10").unwrap();
        assert_eq!((l.max_bytes, l.max_messages), (Some(1 << 30), Some(10)));
    }

    #[test]
    fn zero_is_unlimited() {
        assert_eq!(parse_rule("*:storage=0").unwrap().max_bytes, None);
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for bad in [
            "Trash:storage=+100M",
            "*:storage=+10%",
            "*:storage=lots",
            "*:messages=-1",
            "*:foo=1",
            "*",
            "*:storage",
            "",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn later_rules_override_what_they_name() {
        let l = parse_rules(["*:storage=1G:messages=5", "*:storage=2G"]).unwrap();
        assert_eq!((l.max_bytes, l.max_messages), (Some(2 << 30), Some(5)));
    }
}
