//! The fields a passdb or userdb returns: ordered `key=value` pairs (a key may repeat, the
//! last one wins), as Dovecot's extra fields.

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// These fields, then `later`'s, replacing keys `later` also has.
    pub fn overridden_by(mut self, later: Fields) -> Fields {
        for (k, _) in &later.0 {
            self.remove(k);
        }
        self.0.extend(later.0);
        self
    }

    /// Every `quota_rule`, `quota_rule2`, ... in order.
    pub fn quota_rules(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("quota_rule")
                    .is_some_and(|n| n.is_empty() || n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parses Dovecot's space-separated `key=value key2` list (static args, default_fields):
    /// a value may be double-quoted to hold spaces; a bare key has an empty value.
    pub fn parse_args(text: &str) -> Result<Fields, String> {
        Ok(Fields(
            super::kv_args::tokenize(text, '"')?
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_lookups() {
        let f = Fields::parse_args(
            " uid=vmail gid=vmail home=/var/vmail/%d/%n  nologin reason=\"moved away\" quota_rule=*:storage=1G quota_rule2=Trash:ignore",
        )
        .unwrap();
        assert_eq!(f.get("uid"), Some("vmail"));
        assert_eq!(f.get("home"), Some("/var/vmail/%d/%n"));
        assert_eq!(f.get("nologin"), Some(""));
        assert_eq!(f.get("reason"), Some("moved away"));
        assert_eq!(f.quota_rules(), vec!["*:storage=1G", "Trash:ignore"]);
        assert!(Fields::parse_args("a=\"open").is_err());
        let merged = Fields::parse_args("a=1 b=2")
            .unwrap()
            .overridden_by(Fields::parse_args("b=3").unwrap());
        assert_eq!(merged, Fields::parse_args("a=1 b=3").unwrap());
    }
}
