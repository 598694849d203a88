//! Dovecot's `pass_attrs` / `user_attrs` / `iterate_attrs`: a comma-separated list of
//! `ldapAttr=field` (the field takes the attribute's value), `ldapAttr=field=template`
//! (`%$` is the attribute's value) and `=field=template` with `%{ldap:attr}` references,
//! e.g. `=home=/var/vmail/%{ldap:mailDomain}/%{ldap:uid}`.

use super::vars::{self, Piece};
use super::{Fields, Request};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Attr(String),
    Template(Vec<Piece>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrMap {
    items: Vec<(String, Source)>,
    /// Attributes to ask the directory for.
    pub wanted: Vec<String>,
}

impl AttrMap {
    pub fn parse(text: &str) -> Result<AttrMap, String> {
        let mut items = Vec::new();
        let mut wanted: Vec<String> = Vec::new();
        let want = |a: &str, wanted: &mut Vec<String>| {
            if !a.is_empty() && !wanted.iter().any(|w| w.eq_ignore_ascii_case(a)) {
                wanted.push(a.to_string());
            }
        };
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (attr, rest) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected ldapAttr=field"))?;
            let attr = attr.trim();
            let (field, template) = match rest.split_once('=') {
                Some((f, t)) => (f.trim(), Some(t.trim())),
                None => (rest.trim(), None),
            };
            if field.is_empty() {
                return Err(format!("{item:?}: no field name"));
            }
            let source = match template {
                None if attr.is_empty() => {
                    return Err(format!("{item:?}: neither an attribute nor a template"))
                }
                None => Source::Attr(attr.to_string()),
                Some(t) => {
                    let t = t.replace("%$", &format!("%{{ldap:{attr}}}"));
                    let pieces = vars::parse(&t)?;
                    for p in &pieces {
                        if let Piece::Var(v) = p {
                            if let Some(a) = v.name.strip_prefix("ldap:") {
                                want(a, &mut wanted);
                            }
                        }
                    }
                    Source::Template(pieces)
                }
            };
            want(attr, &mut wanted);
            items.push((field.to_string(), source));
        }
        Ok(AttrMap { items, wanted })
    }

    /// The fields of one entry. A multi-valued attribute gives its first value; a missing
    /// one leaves its field out (a template gets an empty string for it).
    pub fn fields(
        &self,
        attrs: &HashMap<String, Vec<String>>,
        req: &Request,
    ) -> Result<Fields, String> {
        let first = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first())
                .cloned()
        };
        let mut out = Fields::default();
        for (field, source) in &self.items {
            match source {
                Source::Attr(a) => {
                    if let Some(v) = first(a) {
                        out.push(field.clone(), v);
                    }
                }
                Source::Template(pieces) => {
                    let v = vars::expand(
                        pieces,
                        req,
                        &|n| {
                            n.strip_prefix("ldap:")
                                .map(|a| first(a).unwrap_or_default())
                        },
                        &|s| s.to_string(),
                    )?;
                    out.push(field.clone(), v);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_templated() {
        let m = AttrMap::parse(
            "uid=user, userPassword=password, homeDirectory=home, =quota_rule=*:bytes=%{ldap:mailQuota}, mail=proxy_user=x-%$",
        )
        .unwrap();
        assert_eq!(
            m.wanted,
            vec!["uid", "userPassword", "homeDirectory", "mailQuota", "mail"]
        );
        let mut attrs = HashMap::new();
        attrs.insert("uid".to_string(), vec!["alice".to_string()]);
        attrs.insert("userpassword".to_string(), vec!["{PLAIN}x".to_string()]);
        attrs.insert("mailQuota".to_string(), vec!["100".into(), "200".into()]);
        attrs.insert("mail".to_string(), vec!["a@b".to_string()]);
        let f = m.fields(&attrs, &Request::default()).unwrap();
        assert_eq!(f.get("user"), Some("alice"));
        assert_eq!(f.get("password"), Some("{PLAIN}x"));
        assert_eq!(f.get("home"), None);
        assert_eq!(f.get("quota_rule"), Some("*:bytes=100"));
        assert_eq!(f.get("proxy_user"), Some("x-a@b"));
        assert!(AttrMap::parse("novalue").is_err());
        assert!(AttrMap::parse("=home").is_err());
    }
}
