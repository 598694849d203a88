//! The node's configuration (Dovecot's key names) turned into each protocol's settings, in one
//! place so a key that is parsed but never reaches its protocol shows up in a test here.

use crate::config::Config;
use protocols::imap::ImapConfig;
use protocols::lmtp::LmtpConfig;
use protocols::pop3::Pop3Config;

pub fn imap(config: &Config) -> ImapConfig {
    ImapConfig {
        max_line_length: config.imap_max_line_length.0 as usize,
        max_literal_size: config.storage.max_message_size.0,
        idle_notify_interval: config.imap_idle_notify_interval.0,
        auth_mechanisms: config.auth_mechanisms.0.clone(),
        ..Default::default()
    }
}

pub fn pop3(config: &Config) -> Pop3Config {
    Pop3Config {
        no_nuls: config.pop3_client_workarounds.contains("outlook-no-nuls"),
        lock_session: config.pop3_lock_session,
        no_flag_updates: config.pop3_no_flag_updates,
        auth_mechanisms: config.auth_mechanisms.0.clone(),
        ..Default::default()
    }
}

pub fn lmtp(config: &Config, hostname: &str) -> LmtpConfig {
    LmtpConfig {
        hostname: hostname.to_string(),
        max_message_size: config.storage.max_message_size.0,
        recipient_delimiter: config.recipient_delimiter.clone(),
        save_to_detail_mailbox: config.lmtp_save_to_detail_mailbox,
        dedupe_window: config.storage.delivery_dedupe_window.0,
        sieve: sieve(config),
        ..Default::default()
    }
}

/// The user's active script: `sieve`, or with ManageSieve on, Pigeonhole's default path (where
/// SETACTIVE puts its link).
fn active_script(config: &Config) -> String {
    if config.sieve.sieve.is_empty() && config.protocol_enabled("sieve") {
        "~/.dovecot.sieve".into()
    } else {
        config.sieve.sieve.clone()
    }
}

pub fn managesieve(config: &Config) -> protocols::managesieve::ManageSieveConfig {
    let s = &config.sieve;
    protocols::managesieve::ManageSieveConfig {
        auth_mechanisms: config.auth_mechanisms.0.clone(),
        active_path: active_script(config),
        script_dir: s.sieve_dir.clone(),
        max_scripts: s.sieve_quota_max_scripts as usize,
        max_storage: s.sieve_quota_max_storage.0,
        max_script_size: s.sieve_max_script_size.0,
        max_redirects: s.sieve_max_redirects as usize,
        ..Default::default()
    }
}

fn sieve(config: &Config) -> protocols::lmtp::SieveConfig {
    let s = &config.sieve;
    protocols::lmtp::SieveConfig {
        script: active_script(config),
        dir: s.sieve_dir.clone(),
        before: s.sieve_before.0.clone(),
        after: s.sieve_after.0.clone(),
        default: s.sieve_default.clone(),
        global_dir: s.sieve_global_dir.clone(),
        submission_host: s.submission_host.clone(),
        vacation_min_period: s.sieve_vacation_min_period.0,
        vacation_max_period: s.sieve_vacation_max_period.0,
        vacation_default_period: s.sieve_vacation_default_period.0,
        max_redirects: s.sieve_max_redirects as usize,
        max_actions: s.sieve_max_actions as usize,
        max_script_size: s.sieve_max_script_size.0,
        spamtest: score_test(
            &s.sieve_spamtest_status_header,
            &s.sieve_spamtest_status_type,
            &s.sieve_spamtest_score_max_header,
            s.sieve_spamtest_score_max_value,
            &s.sieve_spamtest_text_value,
        ),
        virustest: score_test(
            &s.sieve_virustest_status_header,
            &s.sieve_virustest_status_type,
            &s.sieve_virustest_score_max_header,
            s.sieve_virustest_score_max_value,
            &s.sieve_virustest_text_value,
        ),
    }
}

/// A spamtest/virustest configuration; None when no status header is set.
fn score_test(
    header: &str,
    kind: &str,
    max_header: &str,
    max_value: f64,
    texts: &std::collections::BTreeMap<String, String>,
) -> Option<sieve::spamtest::ScoreTest> {
    use sieve::spamtest::{header_spec, Kind, ScoreTest};
    if header.is_empty() {
        return None;
    }
    let (header, regex) = header_spec(header);
    Some(ScoreTest {
        header,
        regex,
        kind: match kind {
            "strlen" => Kind::Strlen,
            "text" => Kind::Text,
            _ => Kind::Score,
        },
        max_header: (!max_header.is_empty()).then(|| header_spec(max_header)),
        max_value: (max_value > 0.0).then_some(max_value),
        text_values: texts
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{non_default_settings, parse_str};
    use std::path::Path;

    fn parse(text: &str) -> Config {
        parse_str(text, Path::new("node.toml")).unwrap()
    }

    #[test]
    fn pop3_defaults_follow_the_node_defaults() {
        let p = pop3(&Config::default());
        assert!(!p.no_nuls);
        assert!(p.lock_session);
        assert!(!p.no_flag_updates);
        assert_eq!(p.auth_mechanisms, vec!["plain", "login"]);
    }

    #[test]
    fn pop3_keys_reach_pop3() {
        let c = parse(
            "pop3_lock_session = false\npop3_no_flag_updates = true\n\
             pop3_client_workarounds = \"outlook-no-nuls\"\nauth_mechanisms = \"login\"\n",
        );
        let p = pop3(&c);
        assert!(p.no_nuls);
        assert!(!p.lock_session);
        assert!(p.no_flag_updates);
        assert_eq!(p.auth_mechanisms, vec!["login"]);
        assert_eq!(
            p.mechanisms(),
            vec![protocols::sasl::Mechanism::Login],
            "what CAPA offers"
        );
        // `node config check` prints each of them, and what it prints reads back the same.
        let out = non_default_settings(&c);
        for line in [
            "pop3_lock_session = false",
            "pop3_no_flag_updates = true",
            "pop3_client_workarounds = \"outlook-no-nuls\"",
            "auth_mechanisms = \"login\"",
        ] {
            assert!(out.contains(line), "{line} missing from {out}");
        }
        assert_eq!(parse(&out), c);
    }

    #[test]
    fn spamtest_and_virustest_settings_reach_delivery() {
        let c = parse(
            "[sieve]\nsieve_spamtest_status_header = \"X-Spam-Score:score=([0-9.]+)\"\n\
             sieve_spamtest_score_max_value = 5.0\n\
             sieve_virustest_status_header = \"X-Virus\"\n\
             sieve_virustest_status_type = \"text\"\n\
             sieve_virustest_text_value = { 1 = \"clean\", 5 = \"infected\" }\n",
        );
        let s = sieve(&c);
        let spam = s.spamtest.expect("spamtest");
        assert_eq!(spam.header, "X-Spam-Score");
        assert_eq!(spam.max_value, Some(5.0));
        let m = sieve::Message::parse(b"X-Spam-Score: score=2.5\r\nX-Virus: infected\r\n\r\n");
        assert_eq!(spam.value(&m, 10, true), "50");
        assert_eq!(s.virustest.expect("virustest").value(&m, 5, false), "5");
        assert!(sieve(&Config::default()).spamtest.is_none());
        assert_eq!(parse(&non_default_settings(&c)), c);
    }

    #[test]
    fn unsupported_workarounds_and_mechanisms_are_refused() {
        for text in [
            "pop3_client_workarounds = \"oe-ns-eoh\"\n",
            "auth_mechanisms = \"plain digest-md5\"\n",
        ] {
            let err = parse_str(text, Path::new("node.toml")).unwrap_err();
            assert!(err.to_string().contains("not supported"), "{err}");
        }
    }

    #[test]
    fn lmtp_and_imap_keys_reach_their_protocols() {
        let c = parse(
            "recipient_delimiter = \"+-\"\nlmtp_save_to_detail_mailbox = true\n\
             imap_max_line_length = \"128k\"\nauth_mechanisms = \"plain\"\n\
             [storage]\nmax_message_size = \"20M\"\n",
        );
        let l = lmtp(&c, "mx.example.com");
        assert_eq!(l.hostname, "mx.example.com");
        assert_eq!(l.recipient_delimiter, "+-");
        assert!(l.save_to_detail_mailbox);
        assert_eq!(l.max_message_size, 20 << 20);
        let i = imap(&c);
        assert_eq!(i.max_line_length, 128 << 10);
        assert_eq!(i.max_literal_size, 20 << 20);
        assert_eq!(i.auth_mechanisms, vec!["plain"]);
    }

    #[test]
    fn sieve_keys_reach_lmtp() {
        let off = lmtp(&Config::default(), "mx");
        assert!(!off.sieve.enabled());
        let c = parse(
            "[sieve]\nsieve = \"~/.dovecot.sieve\"\nsieve_before = [\"/etc/sieve/a.sieve\", \"/etc/sieve/b.sieve\"]\n\
             sieve_default = \"/etc/sieve/default.sieve\"\nsubmission_host = \"127.0.0.1:25\"\n\
             sieve_vacation_min_period = \"1h\"\nsieve_max_redirects = 2\n",
        );
        let s = lmtp(&c, "mx").sieve;
        assert!(s.enabled());
        assert_eq!(s.script, "~/.dovecot.sieve");
        assert_eq!(s.before.len(), 2);
        assert_eq!(s.default, "/etc/sieve/default.sieve");
        assert_eq!(s.submission_host, "127.0.0.1:25");
        assert_eq!(s.vacation_min_period, std::time::Duration::from_secs(3600));
        assert_eq!(s.max_redirects, 2);
        // Pigeonhole's one-line form.
        let c = parse("sieve = \"~/.dovecot.sieve\"\n");
        assert_eq!(lmtp(&c, "mx").sieve.script, "~/.dovecot.sieve");
        let err = parse_str("sieve_before = \"/x\"\n", Path::new("node.toml")).unwrap_err();
        assert!(err.to_string().contains("[sieve]"), "{err}");
    }
}
