//! Reading a configuration file, with errors that name the key, the file and the line.

use super::dovecot::dovecot_hint;
use super::Config;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} line {line}: unknown setting `{key}`{hint}")]
    UnknownKey {
        file: PathBuf,
        line: usize,
        key: String,
        /// Text after the key: where it is a Dovecot setting, says so.
        hint: String,
    },
    #[error("{file} line {line}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Semantic { file: PathBuf, message: String },
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Parses `text` as if read from `file` (the name only labels errors).
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| map_toml_error(&e, text, file))?;
    // Dovecot writes `ssl_cert = </etc/ssl/cert.pem`; accept the habit.
    for p in [
        &mut config.ssl_cert,
        &mut config.ssl_key,
        &mut config.ssl_ca,
        &mut config.ssl_client_ca_file,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(stripped) = p.to_str().and_then(|s| s.strip_prefix('<')) {
            *p = PathBuf::from(stripped.trim());
        }
    }
    config.validate().map_err(|message| ConfigError::Semantic {
        file: file.to_path_buf(),
        message,
    })?;
    Ok(config)
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn map_toml_error(e: &toml::de::Error, text: &str, file: &Path) -> ConfigError {
    let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
    let message = e.message().trim().to_string();
    if let Some(key) = unknown_field_name(&message) {
        let hint = match dovecot_hint(&key) {
            Some("") => ": this is a Dovecot setting that this server does not have".to_string(),
            Some(what) => {
                format!(": this is a Dovecot setting that this server does not have ({what})")
            }
            None => String::new(),
        };
        return ConfigError::UnknownKey {
            file: file.to_path_buf(),
            line,
            key,
            hint,
        };
    }
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        message,
    }
}

/// serde's deny_unknown_fields message is "unknown field `KEY`, expected ...".
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Durability, SslMode};
    use std::time::Duration;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("/etc/node/node.toml"))
    }

    #[test]
    fn empty_file_is_production_default() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let err = parse("ssl = \"yes\"\n\nfrobnicate = 3\n").unwrap_err();
        match &err {
            ConfigError::UnknownKey {
                key,
                line,
                file,
                hint,
            } => {
                assert_eq!(key, "frobnicate");
                assert_eq!(*line, 3);
                assert_eq!(file, Path::new("/etc/node/node.toml"));
                assert!(hint.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("/etc/node/node.toml line 3"), "{text}");
        assert!(text.contains("`frobnicate`"), "{text}");
    }

    #[test]
    fn unknown_key_in_a_table_names_its_line() {
        let err = parse("[storage]\ndata_dir = \"/x\"\nmail_location = \"y\"\n").unwrap_err();
        match err {
            ConfigError::UnknownKey { key, line, .. } => {
                assert_eq!(key, "mail_location");
                assert_eq!(line, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dovecot_setting_we_lack_says_so() {
        let err = parse("mail_location = \"mdbox:~/mdbox\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 1"), "{text}");
        assert!(
            text.contains("Dovecot setting that this server does not have"),
            "{text}"
        );
        assert!(text.contains("data_dir"), "{text}");
    }

    #[test]
    fn bad_value_names_line() {
        let err = parse("ssl = \"yes\"\nauth_failure_delay = \"2 fortnights\"\n").unwrap_err();
        match &err {
            ConfigError::Invalid { line, message, .. } => {
                assert_eq!(*line, 2);
                assert!(message.contains("fortnights"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = parse("auth_cache_size = \"10M\"\n").unwrap_err();
        assert!(err.to_string().contains("counts cached logins"), "{err}");
        assert_eq!(
            parse("auth_cache_size = 500\n").unwrap().auth_cache_size,
            500
        );
        let err = parse("ssl = \"maybe\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { line: 1, .. }), "{err}");
    }

    #[test]
    fn dovecot_style_values_parse() {
        let c = parse(
            r#"
protocols = "imap lmtp"
listen = "127.0.0.1, ::1"
ssl = "required"
ssl_cert = "</etc/ssl/node.pem"
ssl_key = "</etc/ssl/node.key"
ssl_min_protocol = "TLSv1.3"
auth_failure_delay = "3 secs"
auth_cache_ttl = "30 mins"
auth_default_realm = "example.com"
quota_rule = "*:storage=1G"
mail_max_userip_connections = 20

[[passdb]]
driver = "passwd-file"
args = "/etc/node/users"

[imap]
port = 10143
ssl_port = 993

[storage]
data_dir = "/srv/mail"
max_message_size = "20M"

[cluster]
node_id = 2
listen = "10.0.0.2:7143"
durability = "replicated"
replication_sync_timeout = "2s"
peers = [{ node_id = 1, address = "10.0.0.1:7143" }]
"#,
        )
        .unwrap();
        assert!(c.protocol_enabled("imap") && !c.protocol_enabled("pop3"));
        assert_eq!(c.ssl, SslMode::Required);
        assert_eq!(c.ssl_cert.as_deref(), Some(Path::new("/etc/ssl/node.pem")));
        assert_eq!(c.auth_failure_delay.0, Duration::from_secs(3));
        assert_eq!(c.imap.port, 10143);
        assert_eq!(c.imap.ssl_port, 993);
        assert_eq!(c.pop3.ssl_port, 995);
        assert_eq!(c.storage.max_message_size.0, 20 << 20);
        assert_eq!(c.cluster.durability, Durability::Replicated);
        assert_eq!(c.listen_addrs().unwrap().len(), 2);
        // [http] listen defaults to the first listen address.
        assert_eq!(c.http_addr().unwrap(), "127.0.0.1:9143".parse().unwrap());
        let c = parse("[http]\nlisten = \"::1\"\nport = 9000\n").unwrap();
        assert_eq!(c.http_addr().unwrap(), "[::1]:9000".parse().unwrap());
        assert!(parse("[http]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string()
            .contains("http.listen"));
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let err = parse("quota_rule = \"*:storage=lots\"\n").unwrap_err();
        assert!(err.to_string().contains("quota_rule"), "{err}");
        let err = parse("[[passdb]]\ndriver = \"ldap\"\nargs = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("passdb"), "{err}");
        let err = parse("[cluster]\ndurability = \"replicated\"\n").unwrap_err();
        assert!(err.to_string().contains("peers"), "{err}");
        let err = parse("ssl_cert = \"/x.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("ssl_key"), "{err}");
    }

    #[test]
    fn deploy_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let mut seen = 0;
        for rel in [
            "node.toml",
            "two-node/node1.toml",
            "two-node/node2.toml",
            "three-node/node1.toml",
            "three-node/node2.toml",
            "three-node/node3.toml",
        ] {
            let c = load_file(&root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            if rel.contains('/') {
                assert_eq!(c.cluster.durability, Durability::Replicated, "{rel}");
                assert!(!c.cluster.peers.is_empty(), "{rel}");
            }
            seen += 1;
        }
        assert_eq!(seen, 6);
    }

    #[test]
    fn cluster_settings_are_checked() {
        let err = parse("[cluster]\nnode_id = 1\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(err.to_string().contains("cluster.listen"), "{err}");
        let err = parse("[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:7143\"\npeers = [{ node_id = 1, address = \"x:1\" }]\n").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        let err = parse("[cluster]\nnode_id = 1\npeers = [{ node_id = 2, address = \"x:1\" }]\n")
            .unwrap_err();
        assert!(err.to_string().contains("cluster.listen"), "{err}");
    }

    #[test]
    fn raft_mode_is_explicit_and_checked() {
        // Existing files keep keepalived-led mode.
        let c = parse("[cluster]\nnode_id = 1\n").unwrap();
        assert_eq!(c.cluster.mode, crate::config::ClusterMode::KeepalivedLed);
        let base = "[cluster]\nmode = \"raft\"\nnode_id = 1\nlisten = \"127.0.0.1:7143\"\nraft_listen = \"127.0.0.1:7144\"\n";
        let three = format!(
            "{base}peers = [{{ node_id = 2, address = \"h2:7143\", raft_address = \"h2:7144\" }}, \
             {{ node_id = 3, address = \"h3:7143\", raft_address = \"h3:7144\" }}]\n"
        );
        let c = parse(&three).unwrap();
        assert_eq!(
            c.cluster.raft_heartbeat.0,
            std::time::Duration::from_millis(100)
        );
        // Two voters cannot keep a majority through one failure.
        let two = format!(
            "{base}peers = [{{ node_id = 2, address = \"h2:7143\", raft_address = \"h2:7144\" }}]\n"
        );
        let err = parse(&two).unwrap_err();
        assert!(err.to_string().contains("three voters"), "{err}");
        // ... unless a witness is the third.
        parse(&format!(
            "{two}witness = {{ node_id = 3, raft_address = \"w:7144\" }}\n"
        ))
        .unwrap();
        // Without raft_address a peer's raft goes to its replication address.
        let shared = parse(&format!(
            "{base}peers = [{{ node_id = 2, address = \"h2:7143\" }}, {{ node_id = 3, address = \"h3:7143\", raft_address = \"h3:7144\" }}]\n"
        ))
        .unwrap();
        assert_eq!(shared.cluster.peers[0].raft_dial_address(), "h2:7143");
        assert_eq!(shared.cluster.peers[1].raft_dial_address(), "h3:7144");
        // ... and raft_listen may be left out: raft shares `listen`.
        parse(
            "[cluster]\nmode = \"raft\"\nnode_id = 1\nlisten = \"127.0.0.1:7143\"\n\
             peers = [{ node_id = 2, address = \"h2:7143\" }, { node_id = 3, address = \"h3:7143\" }]\n"
        )
        .unwrap();
        let err = parse(&format!(
            "{base}peers = [{{ node_id = 2, address = \"h2\" }}, {{ node_id = 3, address = \"h3:7143\" }}]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("host:port"), "{err}");
        let err = parse(&format!("{three}raft_heartbeat = \"1s\"\n")).unwrap_err();
        assert!(err.to_string().contains("raft_heartbeat"), "{err}");
        let err = parse(&three.replace("mode = \"raft\"", "mode = \"paxos\"")).unwrap_err();
        assert!(
            err.to_string().contains("paxos") && err.to_string().contains("keepalived-led"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_names_it() {
        let err = load_file(Path::new("/nonexistent/node.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/node.toml"),
            "{err}"
        );
    }
}
