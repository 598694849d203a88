//! The node's configuration: one TOML file with Dovecot's key names where Dovecot has the
//! setting. [`Config::default`] is the production default (standard ports); [`Config::embedded`]
//! is what `node serve` runs with no file (loopback, high ports, data under ./data, demo user).

mod dovecot;
mod load;
mod nondefault;
pub mod values;

pub use dovecot::dovecot_hint;
pub use load::load_file;
#[cfg(test)]
pub use load::parse_str;
pub use nondefault::non_default_settings;

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use values::{DurationSetting, Size, WordList};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    /// TLS offered; plaintext authentication refused off loopback unless auth_allow_cleartext.
    Yes,
    /// Plaintext authentication refused everywhere, loopback included.
    Required,
    /// No TLS at all: no implicit-TLS listeners, no STARTTLS.
    No,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsMinProtocol {
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after the local fsync.
    Local,
    /// Acknowledge after a peer also has it durable (or replication_sync_timeout passes).
    Replicated,
}

/// `[[passdb]]` / `[[userdb]]`, in the order they are consulted (Dovecot's settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// passwd-file, static, sql, ldap, pam, checkpassword (see auth::db::DRIVERS).
    pub driver: String,
    /// The driver's argument: a passwd-file's path, a dovecot-sql.conf.ext or
    /// dovecot-ldap.conf.ext path, static's `key=value` fields.
    #[serde(default)]
    pub args: PathBuf,
    /// passdb: never | authenticated | unauthenticated; userdb: never | found | notfound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_success: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_internalfail: Option<String>,
    /// passdb only: users it finds are refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deny: bool,
    /// Dovecot 2.3: `key=value` fields under every answer's own (`%` variables expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_fields: Option<String>,
    /// Dovecot 2.3: `key=value` fields over every answer's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_fields: Option<String>,
    /// Wildcards (`*@example.com !root@*`): users this database is asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_filter: Option<String>,
}

impl DbConfig {
    /// A passwd-file passdb/userdb with Dovecot's default rules.
    pub fn passwd_file(path: PathBuf) -> DbConfig {
        DbConfig {
            driver: "passwd-file".into(),
            args: path,
            skip: None,
            result_success: None,
            result_failure: None,
            result_internalfail: None,
            deny: false,
            default_fields: None,
            override_fields: None,
            username_filter: None,
        }
    }

    /// `args` as text (static's fields, a path).
    pub fn args_str(&self) -> String {
        self.args.to_string_lossy().into_owned()
    }

    pub fn is_passwd_file(&self) -> bool {
        self.driver == "passwd-file"
    }
}

macro_rules! service_table {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $default:expr),* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(pub $field: u16,)*
        }
        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default),* }
            }
        }
    };
}

service_table!(
    /// `[imap]`: the plaintext (STARTTLS) port and the implicit-TLS port; 0 turns one off.
    ImapService { port: 143, ssl_port: 993 }
);
service_table!(
    /// `[pop3]`: the plaintext (STLS) port and the implicit-TLS port; 0 turns one off.
    Pop3Service { port: 110, ssl_port: 995 }
);
service_table!(
    /// `[lmtp]`: the TCP port (0 = off; see also lmtp_unix_socket).
    LmtpService { port: 24 }
);
service_table!(
    /// `[managesieve]`: the ManageSieve port (protocol "sieve"), STARTTLS on it; 0 = off.
    ManageSieveService { port: 4190 }
);
/// `[http]`: health and Prometheus metrics; port 0 = off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpService {
    pub port: u16,
    /// Address to listen on; empty = the first `listen` address. "127.0.0.1" keeps metrics
    /// off the network while keepalived (local) still reaches it.
    pub listen: String,
}

impl Default for HttpService {
    fn default() -> Self {
        HttpService {
            port: 9143,
            listen: String::new(),
        }
    }
}

/// `[lmtp_unix_socket]`: LMTP on a unix socket for Postfix's `lmtp:unix:` transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixSocketConfig {
    pub path: PathBuf,
    /// Octal permission bits, e.g. "0660".
    #[serde(default = "default_socket_mode")]
    pub mode: String,
    /// User (and group, as "user:group" or `group`) to chown the socket to; empty = unchanged.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub group: String,
}

fn default_socket_mode() -> String {
    "0660".into()
}

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Mail, index, TLS material (embedded default) and the admin socket live here.
    pub data_dir: PathBuf,
    pub max_message_size: Size,
    /// How far the clock may be pushed ahead of the wall clock by a peer.
    pub max_clock_drift: DurationSetting,
    /// Window in which a retried LMTP delivery is recognised and not stored twice.
    pub delivery_dedupe_window: DurationSetting,
    /// Space kept free on the data filesystem: writes that would leave less are refused
    /// (LMTP 452 4.3.1, IMAP NO [UNAVAILABLE]) and resume once space is freed.
    pub min_free_space: Size,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            data_dir: PathBuf::from("/var/lib/node"),
            max_message_size: Size(50 << 20),
            max_clock_drift: DurationSetting(Duration::from_secs(60)),
            delivery_dedupe_window: DurationSetting(Duration::from_secs(86_400)),
            min_free_space: Size(storage::DEFAULT_MIN_FREE),
        }
    }
}

/// One peer in `[cluster] peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub node_id: u32,
    /// host:port of the peer's replication listener.
    pub address: String,
    /// host:port of the peer's own coordination (Raft) listener, for a peer that sets
    /// `raft_listen`; empty (the default): raft goes to the peer's replication `address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raft_address: String,
}

impl PeerConfig {
    /// Where this node dials the peer's raft: its own listener if it has one, else the
    /// replication listener, which routes raft frames to the coordinator.
    pub fn raft_dial_address(&self) -> &str {
        if self.raft_address.is_empty() {
            &self.address
        } else {
            &self.raft_address
        }
    }
}

/// `[cluster] witness`: the small third voter of a two-node raft cluster (`node witness`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub node_id: u32,
    /// host:port of the witness's coordination listener.
    pub raft_address: String,
}

/// `[cluster] mode`: who decides which node takes the writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// keepalived's priorities pick the node holding the address; every node accepts writes
    /// and the two-way merge repairs a split brain.
    #[default]
    KeepalivedLed,
    /// An openraft group elects the active node; the others refuse writes.
    Raft,
}

/// `[cluster]`: parsed and validated now; replication uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub node_id: u32,
    /// Replication listener (host:port); empty = no replication listener.
    pub listen: String,
    pub peers: Vec<PeerConfig>,
    pub durability: Durability,
    pub replication_sync_timeout: DurationSetting,
    /// Catch-up replication (a peer more than one batch behind) yields to this node's busy
    /// clients; live replication never waits. `false` ships catch-up flat out.
    pub replication_yield: bool,
    /// Longest one catch-up batch waits for busy clients (the drain's floor rate).
    pub replication_yield_max_wait: DurationSetting,
    /// With `replication_yield`: catch-up store work runs on threads of lower CPU (nice 10)
    /// and I/O (best-effort 7) priority. Off by default (not shown to help; see
    /// `replication::PacingConfig::low_priority`).
    pub replication_yield_low_priority: bool,
    /// Records in a catch-up batch shipped while clients are busy (idle clients: 500).
    pub replication_yield_batch_records: usize,
    /// Cluster CA and this node's certificate (`node cluster init` / `node cluster cert`).
    pub certs_dir: PathBuf,
    /// keepalived's `track_file`: the node writes 0 while it may be the active node and 1 when
    /// it may not (at shutdown, at once), so the address moves without waiting for the track
    /// script's next run. Empty = not written.
    pub vrrp_track_file: PathBuf,
    pub mode: ClusterMode,
    /// Raft mode: a coordination listener of its own (host:port). Empty (the default): raft
    /// shares the replication listener (`listen`) and its mutual-TLS links. Either way the
    /// replication listener also takes raft connections.
    pub raft_listen: String,
    /// Raft mode, two mail nodes: the witness voter.
    pub witness: Option<WitnessConfig>,
    /// Raft leader heartbeat interval.
    pub raft_heartbeat: DurationSetting,
    /// Raft election timeout, drawn at random between min and max. The active node's lease
    /// (how long it keeps writing without a majority's acknowledgement) is the minimum.
    pub raft_election_timeout_min: DurationSetting,
    pub raft_election_timeout_max: DurationSetting,
    /// How long a node about to become active (raft mode: elected; keepalived-led: made
    /// master) pulls what it lacks from its peers (per peer; an unreachable peer is skipped at
    /// once). `raft_takeover_timeout`, its name when only raft mode used it, is still read.
    #[serde(alias = "raft_takeover_timeout")]
    pub takeover_timeout: DurationSetting,
    /// At start-up, before any client is served: how long the node pulls what it lacks from
    /// each peer (an unreachable peer is skipped at once; 0 turns the pull off).
    pub startup_catch_up_timeout: DurationSetting,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: 1,
            listen: String::new(),
            peers: Vec::new(),
            durability: Durability::Local,
            replication_sync_timeout: DurationSetting(Duration::from_secs(2)),
            replication_yield: true,
            replication_yield_max_wait: DurationSetting(Duration::from_millis(25)),
            replication_yield_low_priority: false,
            replication_yield_batch_records: 100,
            certs_dir: PathBuf::new(),
            vrrp_track_file: PathBuf::new(),
            mode: ClusterMode::KeepalivedLed,
            raft_listen: String::new(),
            witness: None,
            raft_heartbeat: DurationSetting(Duration::from_millis(100)),
            raft_election_timeout_min: DurationSetting(Duration::from_millis(400)),
            raft_election_timeout_max: DurationSetting(Duration::from_millis(800)),
            takeover_timeout: DurationSetting(Duration::from_secs(2)),
            startup_catch_up_timeout: DurationSetting(Duration::from_secs(2)),
        }
    }
}

/// `[oauth2]`: bearer tokens for OAUTHBEARER/XOAUTH2, checked by token introspection (RFC
/// 7662), with the names of Dovecot's oauth2 settings file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuth2Settings {
    /// The introspection endpoint; empty = no token is accepted.
    pub introspection_url: String,
    /// `post` (RFC 7662's form POST, default), `get` (token appended to the URL), `auth`
    /// (GET with the token as `Authorization: Bearer`).
    pub introspection_mode: String,
    /// HTTP basic credentials for the endpoint (RFC 7662 wants the caller authenticated).
    pub client_id: String,
    pub client_secret: String,
    /// The answer's field naming the token's user (RFC 7662: `username`).
    pub username_attribute: String,
    /// The answer's field that says the token is good, and the value it must have.
    pub active_attribute: String,
    pub active_value: String,
    /// How long to wait for the endpoint (then a temporary failure).
    pub timeout: DurationSetting,
}

impl Default for OAuth2Settings {
    fn default() -> Self {
        OAuth2Settings {
            introspection_url: String::new(),
            introspection_mode: "post".into(),
            client_id: String::new(),
            client_secret: String::new(),
            username_attribute: "username".into(),
            active_attribute: "active".into(),
            active_value: "true".into(),
            timeout: DurationSetting(Duration::from_secs(10)),
        }
    }
}

/// `[sieve]`: Sieve filtering at delivery, with Pigeonhole's setting names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SieveSettings {
    /// The user's active script (`~/.dovecot.sieve`); `~` is the user's directory in the
    /// store, `%u`/`%n`/`%d` the user, its local part and domain. Empty = no personal script.
    pub sieve: String,
    /// Where `include :personal` looks.
    pub sieve_dir: String,
    /// Global scripts run before and after the user's (a path or a list of paths).
    pub sieve_before: RuleList,
    pub sieve_after: RuleList,
    /// Run when the user has no script.
    pub sieve_default: String,
    /// Where `include :global` looks.
    pub sieve_global_dir: String,
    /// host:port of the SMTP server that sends redirects and vacation replies.
    pub submission_host: String,
    pub sieve_vacation_min_period: DurationSetting,
    pub sieve_vacation_max_period: DurationSetting,
    pub sieve_vacation_default_period: DurationSetting,
    pub sieve_max_redirects: u32,
    pub sieve_max_actions: u32,
    pub sieve_max_script_size: Size,
    /// ManageSieve quotas: scripts per user and their total size (0 = no limit).
    pub sieve_quota_max_scripts: u32,
    pub sieve_quota_max_storage: Size,
    /// RFC 5235 spamtest/virustest, Pigeonhole's settings: the header with the verdict
    /// (`NAME` or `NAME:REGEX`, the first group being the value; empty = not configured,
    /// the tests answer 0), how to read it (`score`, `strlen`, `text`), the maximum score
    /// (a header like the status one, or a value), and for `text` the texts by value
    /// (`{ 1 = "Clean", 5 = "Infected" }`).
    pub sieve_spamtest_status_header: String,
    pub sieve_spamtest_status_type: String,
    pub sieve_spamtest_score_max_header: String,
    pub sieve_spamtest_score_max_value: f64,
    pub sieve_spamtest_text_value: std::collections::BTreeMap<String, String>,
    pub sieve_virustest_status_header: String,
    pub sieve_virustest_status_type: String,
    pub sieve_virustest_score_max_header: String,
    pub sieve_virustest_score_max_value: f64,
    pub sieve_virustest_text_value: std::collections::BTreeMap<String, String>,
}

impl Default for SieveSettings {
    fn default() -> Self {
        SieveSettings {
            sieve: String::new(),
            sieve_dir: "~/sieve".into(),
            sieve_before: RuleList::default(),
            sieve_after: RuleList::default(),
            sieve_default: String::new(),
            sieve_global_dir: String::new(),
            submission_host: String::new(),
            sieve_vacation_min_period: DurationSetting(Duration::from_secs(86_400)),
            sieve_vacation_max_period: DurationSetting(Duration::from_secs(90 * 86_400)),
            sieve_vacation_default_period: DurationSetting(Duration::from_secs(7 * 86_400)),
            sieve_max_redirects: 4,
            sieve_max_actions: 32,
            sieve_max_script_size: Size(1 << 20),
            sieve_quota_max_scripts: 100,
            sieve_quota_max_storage: Size(10 << 20),
            sieve_spamtest_status_header: String::new(),
            sieve_spamtest_status_type: "score".into(),
            sieve_spamtest_score_max_header: String::new(),
            sieve_spamtest_score_max_value: 0.0,
            sieve_spamtest_text_value: Default::default(),
            sieve_virustest_status_header: String::new(),
            sieve_virustest_status_type: "score".into(),
            sieve_virustest_score_max_header: String::new(),
            sieve_virustest_score_max_value: 0.0,
            sieve_virustest_text_value: Default::default(),
        }
    }
}

/// Accepts `quota_rule = "*:storage=1G"` or a list of rules.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RuleList(pub Vec<String>);

impl<'de> Deserialize<'de> for RuleList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        Ok(RuleList(match Raw::deserialize(d)? {
            Raw::One(s) if s.is_empty() => vec![],
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        }))
    }
}

impl Serialize for RuleList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which of imap, pop3, lmtp run.
    pub protocols: WordList,
    /// Addresses to listen on; "*" = every IPv4 address, "::" = every IPv6 address.
    pub listen: WordList,
    /// Name in greetings and LMTP; empty = the system host name.
    pub hostname: String,
    pub ssl: SslMode,
    /// PEM certificate chain (leaf first). Dovecot's "<path" form is accepted.
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    pub ssl_min_protocol: TlsMinProtocol,
    /// CA certificates (PEM) that client certificates must chain to (SASL EXTERNAL).
    pub ssl_ca: Option<PathBuf>,
    /// Ask clients for a certificate (optional for them) and verify it against `ssl_ca`.
    pub ssl_verify_client_cert: bool,
    /// The certificate subject field naming the user: `commonName` or `emailAddress`.
    pub ssl_cert_username_field: String,
    pub auth_mechanisms: WordList,
    /// Allow plaintext authentication without TLS off loopback (Dovecot 2.4's name).
    pub auth_allow_cleartext: bool,
    pub auth_default_realm: String,
    /// Verified logins remembered (entries; Dovecot counts bytes). 0 = no cache.
    #[serde(deserialize_with = "cache_entries")]
    pub auth_cache_size: u64,
    pub auth_cache_ttl: DurationSetting,
    /// How long "unknown user" and "wrong password" answers are remembered (Dovecot's
    /// default, 1 hour); 0 = not at all.
    pub auth_cache_negative_ttl: DurationSetting,
    pub auth_failure_delay: DurationSetting,
    /// Log each failed login (`passwd-file(user,rip,<session>): Password mismatch`). On by
    /// default, unlike Dovecot: it is the line fail2ban reads.
    pub auth_verbose: bool,
    /// Failed logins per client IP within auth_failure_window before it is refused (0 = off).
    pub auth_failure_limit: u32,
    pub auth_failure_window: DurationSetting,
    /// Concurrent password hash checks; 0 = one per CPU core.
    pub auth_worker_max_count: u32,
    /// Empty = stderr.
    pub log_path: String,
    /// `text` (default) or `json` (one JSON object a line).
    pub log_format: crate::logging::LogFormat,
    /// Client networks the failed-login limiter never locks out (a webmail on this host:
    /// `["127.0.0.1/8", "::1"]`); CIDRs or single addresses.
    pub auth_failure_limit_exempt_nets: RuleList,
    /// Proxies whose word about their client's address is believed (IMAP ID
    /// `x-originating-ip`, POP3 XCLIENT), as Dovecot's setting; CIDRs or single addresses.
    pub login_trusted_networks: RuleList,
    /// CA certificates (PEM) a proxy trusts for `ssl=yes`/`starttls=yes` backends, beside
    /// the system's (Dovecot's setting).
    pub ssl_client_ca_file: Option<PathBuf>,
    /// Dovecot's `lmtp_proxy`: an LMTP recipient whose passdb entry has `proxy` and `host`
    /// is delivered to that host over LMTP instead of here.
    pub lmtp_proxy: bool,
    pub mail_max_userip_connections: u32,
    pub imap_idle_notify_interval: DurationSetting,
    pub imap_max_line_length: Size,
    pub lmtp_save_to_detail_mailbox: bool,
    pub recipient_delimiter: String,
    /// `outlook-no-nuls` strips NUL bytes from RETR/TOP output.
    pub pop3_client_workarounds: WordList,
    /// One POP3 session per user at a time; others get `-ERR [IN-USE]`.
    pub pop3_lock_session: bool,
    /// When false, messages fetched with RETR are marked \Seen at QUIT.
    pub pop3_no_flag_updates: bool,
    pub quota_rule: RuleList,
    /// How long sessions get to finish after SIGTERM before the process exits.
    pub shutdown_timeout: DurationSetting,
    pub passdb: Vec<DbConfig>,
    pub userdb: Vec<DbConfig>,
    pub imap: ImapService,
    pub pop3: Pop3Service,
    pub lmtp: LmtpService,
    pub managesieve: ManageSieveService,
    pub http: HttpService,
    pub lmtp_unix_socket: Option<UnixSocketConfig>,
    pub storage: StorageSettings,
    pub cluster: ClusterSettings,
    /// `[sieve]`, or Pigeonhole's one-line form `sieve = "~/.dovecot.sieve"`.
    #[serde(deserialize_with = "sieve_table_or_path")]
    pub sieve: SieveSettings,
    pub oauth2: OAuth2Settings,
}

fn sieve_table_or_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SieveSettings, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(path) => Ok(SieveSettings {
            sieve: path,
            ..SieveSettings::default()
        }),
        other => SieveSettings::deserialize(other).map_err(serde::de::Error::custom),
    }
}

impl Default for Config {
    /// Production defaults: standard ports, every address, plaintext auth only on loopback.
    fn default() -> Self {
        Config {
            protocols: WordList::of(&["imap", "pop3", "lmtp"]),
            listen: WordList::of(&["*"]),
            hostname: String::new(),
            ssl: SslMode::Yes,
            ssl_cert: None,
            ssl_key: None,
            ssl_min_protocol: TlsMinProtocol::Tls12,
            ssl_ca: None,
            ssl_verify_client_cert: false,
            ssl_cert_username_field: "commonName".into(),
            auth_mechanisms: WordList::of(&["plain", "login"]),
            auth_allow_cleartext: false,
            auth_default_realm: String::new(),
            auth_cache_size: 10_000,
            auth_cache_ttl: DurationSetting(Duration::from_secs(3600)),
            auth_cache_negative_ttl: DurationSetting(Duration::from_secs(3600)),
            auth_failure_delay: DurationSetting(Duration::from_secs(2)),
            auth_verbose: true,
            auth_failure_limit: 20,
            auth_failure_window: DurationSetting(Duration::from_secs(60)),
            auth_worker_max_count: 0,
            log_path: String::new(),
            log_format: crate::logging::LogFormat::Text,
            auth_failure_limit_exempt_nets: RuleList::default(),
            login_trusted_networks: RuleList::default(),
            ssl_client_ca_file: None,
            lmtp_proxy: false,
            mail_max_userip_connections: 10,
            imap_idle_notify_interval: DurationSetting(Duration::from_secs(120)),
            imap_max_line_length: Size(64 << 10),
            lmtp_save_to_detail_mailbox: false,
            recipient_delimiter: "+".into(),
            pop3_client_workarounds: WordList::default(),
            // Dovecot's default is no; locking gives POP3 clients the [IN-USE] answer RFC 2449
            // expects instead of two sessions deleting under each other.
            pop3_lock_session: true,
            pop3_no_flag_updates: false,
            quota_rule: RuleList::default(),
            shutdown_timeout: DurationSetting(Duration::from_secs(10)),
            passdb: Vec::new(),
            userdb: Vec::new(),
            imap: ImapService::default(),
            pop3: Pop3Service::default(),
            lmtp: LmtpService::default(),
            managesieve: ManageSieveService::default(),
            http: HttpService::default(),
            lmtp_unix_socket: None,
            storage: StorageSettings::default(),
            cluster: ClusterSettings::default(),
            sieve: SieveSettings::default(),
            oauth2: OAuth2Settings::default(),
        }
    }
}

/// auth_cache_size is a count here; Dovecot's byte sizes ("10M") get an error that says so.
fn cache_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "auth_cache_size counts cached logins here, not bytes as in Dovecot: give a number such as 10000, not {s:?}"
            ))
        }),
    }
}

/// The embedded default's demo user.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo";

impl Config {
    /// What `node serve` runs with no configuration file (design.md, "The embedded default").
    pub fn embedded() -> Config {
        let data = PathBuf::from("./data");
        Config {
            listen: WordList::of(&["127.0.0.1"]),
            // ManageSieve too, on 127.0.0.1:4190: a new user can upload filters at once.
            protocols: WordList::of(&["imap", "pop3", "lmtp", "sieve"]),
            // `demo` and `demo@localhost` (what a local MTA or swaks sends to) are one user.
            auth_default_realm: "localhost".into(),
            passdb: vec![DbConfig::passwd_file(data.join("passwd"))],
            imap: ImapService {
                port: 1143,
                ssl_port: 1993,
            },
            pop3: Pop3Service {
                port: 1110,
                ssl_port: 1995,
            },
            lmtp: LmtpService { port: 2424 },
            http: HttpService::default(),
            storage: StorageSettings {
                data_dir: data,
                ..StorageSettings::default()
            },
            ..Config::default()
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.storage.data_dir
    }

    pub fn admin_socket_path(&self) -> PathBuf {
        self.storage.data_dir.join("admin.sock")
    }

    /// Where the self-signed certificate lives when ssl_cert/ssl_key are not set.
    pub fn self_signed_dir(&self) -> PathBuf {
        self.storage.data_dir.join("tls")
    }

    /// The cluster CA and this node's certificate: `[cluster] certs_dir`, else `<data_dir>/cluster`.
    pub fn cluster_certs_dir(&self) -> PathBuf {
        if self.cluster.certs_dir.as_os_str().is_empty() {
            self.storage.data_dir.join("cluster")
        } else {
            self.cluster.certs_dir.clone()
        }
    }

    /// The userdbs to consult: the configured ones, else the passdbs (one passwd-file usually
    /// serves as both, as in Dovecot's examples).
    pub fn effective_userdbs(&self) -> &[DbConfig] {
        if self.userdb.is_empty() {
            &self.passdb
        } else {
            &self.userdb
        }
    }

    /// Listen addresses as IPs ("*" = 0.0.0.0, "::" = every IPv6 address).
    pub fn listen_addrs(&self) -> Result<Vec<IpAddr>, String> {
        self.listen
            .0
            .iter()
            .map(|w| match w.as_str() {
                "*" => Ok(IpAddr::from([0, 0, 0, 0])),
                "::" | "[::]" => Ok(IpAddr::from([0u16; 8])),
                other => other
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| {
                        format!("listen: {other:?} is not an IP address, \"*\" or \"::\"")
                    }),
            })
            .collect()
    }

    /// Where the health and metrics endpoint listens.
    pub fn http_addr(&self) -> Result<std::net::SocketAddr, String> {
        let ip = if self.http.listen.is_empty() {
            self.listen_addrs()?
                .first()
                .copied()
                .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        } else {
            self.http
                .listen
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("http.listen: {:?} is not an IP address", self.http.listen))?
        };
        Ok(std::net::SocketAddr::new(ip, self.http.port))
    }

    pub fn protocol_enabled(&self, name: &str) -> bool {
        self.protocols.contains(name)
    }

    /// Cross-field checks that serde cannot express. Errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addrs()?;
        crate::auth::nets::parse_list(self.login_trusted_networks.0.iter().map(String::as_str))
            .map_err(|e| format!("login_trusted_networks: {e}"))?;
        self.http_addr()?;
        for p in &self.protocols.0 {
            if !matches!(p.as_str(), "imap" | "pop3" | "lmtp" | "sieve") {
                return Err(format!(
                    "protocols: unknown protocol {p:?} (supported: imap pop3 lmtp sieve)"
                ));
            }
        }
        for w in &self.pop3_client_workarounds.0 {
            if w != "outlook-no-nuls" {
                return Err(format!(
                    "pop3_client_workarounds: {w:?} is not supported (supported: outlook-no-nuls)"
                ));
            }
        }
        for m in &self.auth_mechanisms.0 {
            // APOP is POP3's own command, not SASL, but Dovecot enables it here too.
            if protocols::sasl::Mechanism::parse(m).is_err() && !m.eq_ignore_ascii_case("apop") {
                let mut known: Vec<String> = protocols::sasl::Mechanism::ALL
                    .iter()
                    .map(|m| m.as_str().to_ascii_lowercase())
                    .collect();
                known.push("apop".into());
                return Err(format!(
                    "auth_mechanisms: mechanism {m:?} is not supported (supported: {})",
                    known.join(" ")
                ));
            }
        }
        let token_mechanisms =
            self.auth_mechanisms.0.iter().any(|m| {
                m.eq_ignore_ascii_case("oauthbearer") || m.eq_ignore_ascii_case("xoauth2")
            });
        if token_mechanisms && self.oauth2.introspection_url.is_empty() {
            return Err(
                "auth_mechanisms: oauthbearer/xoauth2 need [oauth2] introspection_url".into(),
            );
        }
        crate::auth::oauth2::Introspector::from_settings(&self.oauth2)?;
        if self.ssl_verify_client_cert && self.ssl_ca.is_none() {
            return Err(
                "ssl_verify_client_cert: needs ssl_ca (the CA client certificates chain to)".into(),
            );
        }
        if !["commonname", "emailaddress"]
            .contains(&self.ssl_cert_username_field.to_ascii_lowercase().as_str())
        {
            return Err(format!(
                "ssl_cert_username_field: {:?} is not supported (supported: commonName emailAddress)",
                self.ssl_cert_username_field
            ));
        }
        if self.userdb.is_empty() && self.passdb.iter().any(|d| d.driver == "pam") {
            return Err("passdb pam answers no user lookups: add a [[userdb]] (static with allow_all_users=yes, or passwd-file)".into());
        }
        for (key, dbs) in [("passdb", &self.passdb), ("userdb", &self.userdb)] {
            for db in dbs.iter() {
                crate::auth::db::check_config(db, key == "userdb")
                    .map_err(|e| format!("{key} {}: {e}", db.driver))?;
            }
        }
        if self.ssl_cert.is_some() != self.ssl_key.is_some() {
            return Err("ssl_cert and ssl_key must be set together".into());
        }
        if self.recipient_delimiter.chars().count() > 8 {
            return Err("recipient_delimiter: at most a few characters".into());
        }
        for rule in &self.quota_rule.0 {
            crate::auth::quota_rule::parse_rule(rule).map_err(|e| format!("quota_rule: {e}"))?;
        }
        if let Some(sock) = &self.lmtp_unix_socket {
            u32::from_str_radix(sock.mode.trim_start_matches("0o"), 8).map_err(|_| {
                format!(
                    "lmtp_unix_socket.mode: {:?} is not an octal mode like \"0660\"",
                    sock.mode
                )
            })?;
        }
        let mut ids = std::collections::BTreeSet::new();
        ids.insert(self.cluster.node_id);
        for peer in &self.cluster.peers {
            if !ids.insert(peer.node_id) {
                return Err(format!(
                    "cluster.peers: node_id {} appears twice (or is this node's own id)",
                    peer.node_id
                ));
            }
            if peer.node_id == 0 {
                return Err("cluster.peers: node_id must be at least 1".into());
            }
            if !peer.address.contains(':') {
                return Err(format!(
                    "cluster.peers: address {:?} of node {} needs host:port",
                    peer.address, peer.node_id
                ));
            }
        }
        if self.cluster.node_id == 0 {
            return Err("cluster.node_id must be at least 1".into());
        }
        if !self.cluster.listen.is_empty()
            && self.cluster.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "cluster.listen: {:?} is not an IP:port address",
                self.cluster.listen
            ));
        }
        if !self.cluster.peers.is_empty() && self.cluster.listen.is_empty() {
            return Err("cluster.peers is set but cluster.listen is not: peers need an address to reach this node".into());
        }
        if self.cluster.durability == Durability::Replicated && self.cluster.peers.is_empty() {
            return Err(
                "cluster.durability = \"replicated\" needs at least one cluster.peers entry".into(),
            );
        }
        if self.cluster.mode == ClusterMode::Raft {
            self.check_raft()?;
        }
        Ok(())
    }

    /// `mode = "raft"`: every voter has a coordination address, there are enough voters for
    /// a majority to survive one failure, and the timers can elect.
    fn check_raft(&self) -> Result<(), String> {
        let c = &self.cluster;
        if !c.raft_listen.is_empty() && c.raft_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "cluster.raft_listen: {:?} is not an IP:port address (leave it out to share \
                 cluster.listen)",
                c.raft_listen
            ));
        }
        if c.listen.is_empty() {
            return Err("cluster.mode = \"raft\" needs cluster.listen (replication)".into());
        }
        for p in &c.peers {
            if !p.raft_dial_address().contains(':') {
                return Err(format!(
                    "cluster.peers: node {}: {:?} needs host:port (raft_address, or address when \
                     raft shares the replication port)",
                    p.node_id,
                    p.raft_dial_address()
                ));
            }
        }
        if let Some(w) = &c.witness {
            if w.node_id == 0
                || w.node_id == c.node_id
                || c.peers.iter().any(|p| p.node_id == w.node_id)
            {
                return Err(format!(
                    "cluster.witness: node_id {} must be at least 1 and differ from every node's",
                    w.node_id
                ));
            }
            if !w.raft_address.contains(':') {
                return Err(format!(
                    "cluster.witness: raft_address {:?} needs host:port",
                    w.raft_address
                ));
            }
        }
        let voters = 1 + c.peers.len() + usize::from(c.witness.is_some());
        if voters < 3 {
            return Err(format!(
                "cluster.mode = \"raft\" needs three voters (this node, peers, witness), not {voters}: \
                 add a peer or a [cluster.witness], or use mode = \"keepalived-led\""
            ));
        }
        let (hb, min, max) = (
            c.raft_heartbeat.0,
            c.raft_election_timeout_min.0,
            c.raft_election_timeout_max.0,
        );
        if hb.is_zero() || hb >= min || min >= max {
            return Err(format!(
                "cluster: raft timers must satisfy 0 < raft_heartbeat < raft_election_timeout_min < raft_election_timeout_max ({hb:?}, {min:?}, {max:?})"
            ));
        }
        Ok(())
    }
}
