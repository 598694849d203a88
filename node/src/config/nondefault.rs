//! `node config check`: the effective settings that differ from the production defaults,
//! like `doveconf -n`.

use super::Config;

/// Lines `key = value` (TOML) for every setting whose value differs from [`Config::default`],
/// tables as `[name]` sections.
pub fn non_default_settings(config: &Config) -> String {
    let (Ok(toml::Value::Table(ours)), Ok(toml::Value::Table(defaults))) = (
        toml::Value::try_from(config),
        toml::Value::try_from(Config::default()),
    ) else {
        return String::new();
    };
    let mut top = toml::map::Map::new();
    let mut sections = Vec::new();
    for (key, value) in ours {
        match (&value, defaults.get(&key)) {
            (toml::Value::Table(t), Some(toml::Value::Table(d))) => {
                let diff: toml::map::Map<String, toml::Value> = t
                    .iter()
                    .filter(|(k, v)| d.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !diff.is_empty() {
                    sections.push((key, diff));
                }
            }
            (v, d) if d != Some(v) => {
                top.insert(key, value);
            }
            _ => {}
        }
    }
    let mut out = toml::to_string(&toml::Value::Table(top)).unwrap_or_default();
    for (name, table) in sections {
        let mut wrapper = toml::map::Map::new();
        wrapper.insert(name, toml::Value::Table(table));
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&toml::to_string(&toml::Value::Table(wrapper)).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_print_nothing() {
        assert_eq!(non_default_settings(&Config::default()).trim(), "");
    }

    #[test]
    fn only_changed_settings_are_printed() {
        let c = crate::config::parse_str(
            "auth_failure_delay = \"5 secs\"\n[imap]\nport = 1143\n[[passdb]]\ndriver = \"passwd-file\"\nargs = \"/u\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let out = non_default_settings(&c);
        assert!(out.contains("auth_failure_delay = \"5 secs\""), "{out}");
        assert!(
            out.contains("[imap]") && out.contains("port = 1143"),
            "{out}"
        );
        assert!(!out.contains("ssl_port"), "{out}");
        assert!(out.contains("passdb") && out.contains("/u"), "{out}");
        assert!(!out.contains("ssl ="), "{out}");
        // What it prints parses back to the same configuration.
        let again = crate::config::parse_str(&out, Path::new("t.toml")).unwrap();
        assert_eq!(again, c);
    }
}
