//! Dovecot settings this server does not have, so an unknown key can say "that is a Dovecot
//! setting we do not have" (and, where there is one, what to use instead) rather than just
//! "unknown".

/// (Dovecot setting, what to do here instead; empty = nothing equivalent).
const DOVECOT_SETTINGS: &[(&str, &str)] = &[
    (
        "mail_location",
        "the store's location is [storage] data_dir",
    ),
    ("mail_home", "the store's location is [storage] data_dir"),
    (
        "mail_driver",
        "the store format is fixed (dbox-style packs)",
    ),
    ("mail_path", "the store's location is [storage] data_dir"),
    (
        "mail_uid",
        "the node runs as one system user (see the systemd unit)",
    ),
    (
        "mail_gid",
        "the node runs as one system user (see the systemd unit)",
    ),
    ("mail_privileged_group", ""),
    ("mail_access_groups", ""),
    ("mail_plugins", "quota is built in: set quota_rule"),
    (
        "mail_fsync",
        "every acknowledged write is fsynced; this cannot be turned off",
    ),
    (
        "mail_nfs_storage",
        "NFS is not supported: use replication between local stores",
    ),
    (
        "mail_nfs_index",
        "NFS is not supported: use replication between local stores",
    ),
    ("mmap_disable", ""),
    ("lock_method", "the store needs no file locks"),
    (
        "mail_attachment_dir",
        "identical messages are stored once per user (content addressed)",
    ),
    ("mail_max_lock_timeout", "the store needs no file locks"),
    ("first_valid_uid", ""),
    ("last_valid_uid", ""),
    ("first_valid_gid", ""),
    ("last_valid_gid", ""),
    (
        "namespace",
        "the namespace is fixed: personal, separator \"/\"",
    ),
    (
        "mailbox",
        "the default mailboxes (INBOX, Drafts, Sent, Trash, Junk, Archive) are fixed",
    ),
    ("plugin", "quota is built in: set quota_rule"),
    ("quota", "quota is built in: set quota_rule"),
    ("quota_rule2", "give quota_rule as a list"),
    ("quota_warning", ""),
    ("quota_grace", ""),
    ("quota_exceeded_message", ""),
    (
        "ssl_cipher_list",
        "the TLS cipher suites are rustls' safe defaults",
    ),
    (
        "ssl_cipher_suites",
        "the TLS cipher suites are rustls' safe defaults",
    ),
    ("ssl_curve_list", "the TLS groups are rustls' safe defaults"),
    ("ssl_dh", "not needed: TLS 1.2+ with ECDHE only"),
    (
        "ssl_prefer_server_ciphers",
        "the TLS cipher suites are rustls' safe defaults",
    ),
    (
        "ssl_require_crl",
        "client certificates are checked against ssl_ca without CRLs",
    ),
    ("ssl_options", ""),
    (
        "ssl_key_password",
        "give an unencrypted key file readable only by the node's user",
    ),
    ("ssl_alt_cert", "give one certificate chain in ssl_cert"),
    ("ssl_alt_key", "give one certificate chain in ssl_cert"),
    (
        "disable_plaintext_auth",
        "renamed: use auth_allow_cleartext (the inverse), or ssl = \"required\"",
    ),
    (
        "auth_username_format",
        "user names are lower-cased and auth_default_realm is applied",
    ),
    ("auth_username_chars", ""),
    ("auth_username_translation", ""),
    ("auth_realms", "use auth_default_realm"),
    (
        "auth_master_user_separator",
        "master users are not supported",
    ),
    ("auth_verbose_passwords", ""),
    ("auth_debug", "set RUST_LOG=debug"),
    ("auth_debug_passwords", ""),
    (
        "auth_ssl_require_client_cert",
        "client certificates serve SASL EXTERNAL only (ssl_verify_client_cert)",
    ),
    (
        "auth_policy_server_url",
        "per-IP failure limiting is built in: auth_failure_limit",
    ),
    ("auth_socket_path", ""),
    ("auth_anonymous_username", ""),
    ("login_access_sockets", ""),
    ("login_log_format", ""),
    ("login_log_format_elements", ""),
    ("login_greeting", "set hostname; the greeting is fixed"),
    ("log_timestamp", "log lines carry an RFC 3339 timestamp"),
    (
        "info_log_path",
        "all levels go to log_path; filter with RUST_LOG",
    ),
    (
        "debug_log_path",
        "all levels go to log_path; filter with RUST_LOG",
    ),
    ("syslog_facility", "log to stderr (journald) or log_path"),
    ("mail_debug", "set RUST_LOG=debug"),
    ("verbose_ssl", "set RUST_LOG=rustls=debug"),
    ("mail_log_prefix", ""),
    ("base_dir", "the admin socket lives in [storage] data_dir"),
    ("state_dir", "state lives in [storage] data_dir"),
    ("instance_name", ""),
    (
        "service",
        "listener ports are set in [imap], [pop3], [lmtp] and [http]",
    ),
    ("protocol", ""),
    ("local", ""),
    ("remote", ""),
    ("passdb_default", ""),
    ("userdb_default", ""),
    (
        "default_process_limit",
        "one process serves every connection",
    ),
    (
        "default_client_limit",
        "one process serves every connection",
    ),
    ("default_vsz_limit", ""),
    ("default_login_user", ""),
    ("default_internal_user", ""),
    (
        "shutdown_clients",
        "sessions are always told BYE and closed at shutdown",
    ),
    ("verbose_proctitle", ""),
    ("version_ignore", ""),
    ("imap_capability", ""),
    ("imap_client_workarounds", ""),
    ("imap_logout_format", ""),
    ("imap_id_send", ""),
    ("imap_id_log", ""),
    (
        "imap_hibernate_timeout",
        "idle sessions are already cheap: no hibernation needed",
    ),
    ("imap_metadata", ""),
    ("imap_urlauth_host", ""),
    ("imap_literal_minus", ""),
    ("imap_fetch_failure", ""),
    (
        "pop3_uidl_format",
        "UIDLs are derived from the message GUID (stable across nodes)",
    ),
    ("pop3_logout_format", ""),
    ("pop3_reuse_xuidl", ""),
    ("pop3_fast_size_lookups", ""),
    ("lda_mailbox_autocreate", ""),
    ("lda_mailbox_autosubscribe", ""),
    ("lda_original_recipient_header", ""),
    (
        "lmtp_rcpt_check_quota",
        "quota is always checked at RCPT and DATA",
    ),
    ("lmtp_hdr_delivery_address", ""),
    ("postmaster_address", ""),
    ("submission_host", "moved: [sieve] submission_host"),
    ("sendmail_path", ""),
    (
        "replication_full_sync_interval",
        "replication is continuous; run node sync -u USER --full",
    ),
    ("replication_max_conns", ""),
    ("replication_dsync_parameters", ""),
    (
        "replication_sync_timeout",
        "moved: [cluster] replication_sync_timeout",
    ),
    ("dsync_remote_cmd", "peers are set in [cluster] peers"),
    ("doveadm_port", "admin commands use the local admin socket"),
    (
        "doveadm_password",
        "admin commands use the local admin socket",
    ),
    ("mail_replica", "peers are set in [cluster] peers"),
    ("mailbox_list_index", "the index is always on"),
    ("maildir_very_dirty_syncs", ""),
    ("mdbox_rotate_size", ""),
    ("mdbox_preallocate_space", ""),
    ("sieve_before", "moved: [sieve] sieve_before"),
    ("sieve_after", "moved: [sieve] sieve_after"),
    ("sieve_default", "moved: [sieve] sieve_default"),
    (
        "managesieve_notify_capability",
        "ManageSieve is not supported yet",
    ),
    (
        "stats_writer_socket_path",
        "metrics are served at /metrics on the [http] port",
    ),
    ("haproxy_trusted_networks", ""),
    ("import_environment", ""),
    ("valid_chroot_dirs", ""),
    ("mail_server_admin", ""),
    ("mail_server_comment", ""),
];

/// If `key` is a Dovecot setting this server does not have, what to say about it.
pub fn dovecot_hint(key: &str) -> Option<&'static str> {
    DOVECOT_SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_common_dovecot_settings() {
        assert!(super::dovecot_hint("mail_location").is_some());
        assert!(super::dovecot_hint("disable_plaintext_auth").is_some());
        assert!(super::dovecot_hint("no_such_thing").is_none());
    }
}
