//! Sieve at delivery (Pigeonhole's LDA plugin): the user's script, with the global
//! `sieve_before` / `sieve_after` scripts around it and `sieve_default` when the user has none,
//! decides where the message goes. A script that fails to compile or run keeps the message in
//! INBOX and the log says why. Mail the script sends (redirect, vacation) goes out through
//! `submission_host`; `reject`/`ereject` refuse the recipient in LMTP (RFC 5429 2.1).

use super::deliver::{answer, Accepted, Outcome, Received};
use super::smtp_client::{self, Outgoing};
use super::LmtpContext;
use crate::mail::{Reader, UserMail, WriteError};
use crate::managesieve::attrs;
use crate::managesieve::storage::StoreError as StoreErr;
use sieve::{Action, Compiler, Envelope, Host, Message, Runtime, Script, Vacation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage::{Flag, Flags, NewMessage, SpecialUse, StoreError};

/// Sieve settings, with Pigeonhole's names in the node's `[sieve]` table.
#[derive(Clone, Debug)]
pub struct SieveConfig {
    /// `sieve`: the user's active script; `~` is the user's home (its store directory), `%u`
    /// the user, `%n` its local part, `%d` its domain. Empty = Sieve off.
    pub script: String,
    /// `sieve_dir`: where `include :personal` finds scripts.
    pub dir: String,
    /// `sieve_before` / `sieve_after`: global scripts run before and after the user's.
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// `sieve_default`: run when the user has no script of their own.
    pub default: String,
    /// `sieve_global_dir`: where `include :global` finds scripts.
    pub global_dir: String,
    /// `submission_host`: host:port of the SMTP server that sends redirects and replies.
    pub submission_host: String,
    pub vacation_min_period: Duration,
    pub vacation_max_period: Duration,
    pub vacation_default_period: Duration,
    /// `sieve_max_redirects` and `sieve_max_actions`.
    pub max_redirects: usize,
    pub max_actions: usize,
    /// `sieve_max_script_size`: larger script files are refused (and the message kept).
    pub max_script_size: u64,
    /// RFC 5235: `sieve_spamtest_*` and `sieve_virustest_*` (None: the tests answer 0).
    pub spamtest: Option<sieve::spamtest::ScoreTest>,
    pub virustest: Option<sieve::spamtest::ScoreTest>,
}

impl Default for SieveConfig {
    fn default() -> Self {
        SieveConfig {
            script: String::new(),
            dir: "~/sieve".into(),
            before: Vec::new(),
            after: Vec::new(),
            default: String::new(),
            global_dir: String::new(),
            submission_host: String::new(),
            vacation_min_period: Duration::from_secs(86_400),
            vacation_max_period: Duration::from_secs(90 * 86_400),
            vacation_default_period: Duration::from_secs(7 * 86_400),
            max_redirects: 4,
            max_actions: 32,
            max_script_size: 1 << 20,
            spamtest: None,
            virustest: None,
        }
    }
}

impl SieveConfig {
    pub fn enabled(&self) -> bool {
        !self.script.is_empty()
            || !self.default.is_empty()
            || !self.before.is_empty()
            || !self.after.is_empty()
    }
}

/// Where one copy of the message is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub mailbox: String,
    pub flags: Vec<String>,
    pub create: bool,
    pub special_use: Option<String>,
    /// The message as editheader had left it when the action was taken (None: as it came).
    pub message: sieve::Snapshot,
}

/// What the scripts decided, in the terms delivery carries out.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub targets: Vec<Target>,
    /// Addresses, each with the message as it was when the redirect was taken.
    pub redirects: Vec<(String, sieve::Snapshot)>,
    pub vacation: Option<Vacation>,
    pub reject: Option<String>,
    /// The message as edited by editheader, when it was.
    pub edited: Option<Vec<u8>>,
    /// Why the scripts' result was set aside for a plain keep.
    pub error: Option<String>,
    /// `duplicate` ids (and periods) to mark as seen with the delivery.
    pub marks: Vec<(String, u64)>,
}

impl Plan {
    fn keep(error: String) -> Plan {
        Plan {
            targets: vec![inbox(Vec::new())],
            error: Some(error),
            ..Plan::default()
        }
    }
}

fn inbox(flags: Vec<String>) -> Target {
    Target {
        mailbox: "INBOX".into(),
        flags,
        create: false,
        special_use: None,
        message: None,
    }
}

/// `~`, `%u`, `%n`, `%d` and `%%` in a path setting.
pub fn expand_path(template: &str, user: &str, home: &Path) -> PathBuf {
    let (local, domain) = user.split_once('@').unwrap_or((user, ""));
    let mut s = String::new();
    let mut it = template.chars().peekable();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.next() {
                Some('u') => s.push_str(user),
                Some('n') => s.push_str(local),
                Some('d') => s.push_str(domain),
                Some('%') => s.push('%'),
                Some(o) => {
                    s.push('%');
                    s.push(o);
                }
                None => s.push('%'),
            }
        } else {
            s.push(c);
        }
    }
    match s.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if s == "~" => home.to_path_buf(),
        None => PathBuf::from(s),
    }
}

/// The signatures table, built once.
fn compiler() -> Compiler {
    static C: OnceLock<Compiler> = OnceLock::new();
    C.get_or_init(Compiler::new).clone()
}

/// Compiled scripts by path, reused while the file's size and mtime are unchanged.
type CacheEntry = (SystemTime, u64, Arc<Script>);
fn cache() -> &'static Mutex<HashMap<PathBuf, CacheEntry>> {
    static C: OnceLock<Mutex<HashMap<PathBuf, CacheEntry>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// The compiled script at `path`; `Ok(None)` when there is no such file.
fn load(compiler: &Compiler, path: &Path, max: u64) -> Result<Option<Arc<Script>>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if meta.len() > max {
        return Err(format!(
            "{}: script larger than {max} bytes",
            path.display()
        ));
    }
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    if let Ok(c) = cache().lock() {
        if let Some((t, len, s)) = c.get(path) {
            if *t == mtime && *len == meta.len() {
                return Ok(Some(s.clone()));
            }
        }
    }
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let script = Arc::new(
        compiler
            .compile(&src)
            .map_err(|e| format!("{}: {e}", path.display()))?,
    );
    log_warnings(&path.display().to_string(), &script);
    if let Ok(mut c) = cache().lock() {
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(path.to_path_buf(), (mtime, meta.len(), script.clone()));
    }
    Ok(Some(script))
}

/// Compiled scripts kept as attributes, by the hash of their text (a script changed on
/// another node is a new text, compiled once here).
fn text_cache() -> &'static Mutex<HashMap<[u8; 32], Arc<Script>>> {
    static C: OnceLock<Mutex<HashMap<[u8; 32], Arc<Script>>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// A script's compile warnings, logged once per compile (scripts are cached): the script
/// still runs, but its owner or the administrator may want to know.
fn log_warnings(label: &str, script: &Script) {
    for w in &script.warnings {
        tracing::warn!(script = label, "sieve: {w}");
    }
}

fn compile_text(compiler: &Compiler, label: &str, text: &[u8]) -> Result<Arc<Script>, String> {
    let key = *blake3::hash(text).as_bytes();
    if let Ok(c) = text_cache().lock() {
        if let Some(s) = c.get(&key) {
            return Ok(s.clone());
        }
    }
    let src = std::str::from_utf8(text).map_err(|_| format!("{label}: not UTF-8"))?;
    let script = Arc::new(compiler.compile(src).map_err(|e| format!("{label}: {e}"))?);
    log_warnings(label, &script);
    if let Ok(mut c) = text_cache().lock() {
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key, script.clone());
    }
    Ok(script)
}

struct DeliveryHost<'a> {
    reader: &'a Reader,
    personal_dir: PathBuf,
    global_dir: Option<PathBuf>,
    max_script_size: u64,
    /// `duplicate` ids to mark as seen (with their periods) once the message is stored.
    marks: Vec<(String, u64)>,
}

impl Host for DeliveryHost<'_> {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.reader.mailbox(name).is_ok()
    }

    fn special_use_exists(&mut self, mailbox: Option<&str>, uses: &[String]) -> bool {
        let Ok(list) = self.reader.list_mailboxes() else {
            return false;
        };
        uses.iter().all(|u| {
            list.iter().any(|m| {
                mailbox.is_none_or(|n| m.name == n)
                    && m.special_use
                        .is_some_and(|s| s.to_imap().eq_ignore_ascii_case(u))
            })
        })
    }

    /// RFC 7352: ids seen within their period, tracked in the user's attributes like
    /// vacation replies (so the other node knows them too); new ids are marked with the
    /// delivery.
    fn duplicate(&mut self, id: &str, period: u64, _last: bool) -> bool {
        let id = format!("duplicate\0{id}");
        let seen = attrs::seen(self.reader, &id, self.reader.clock_now_ms()).unwrap_or(false);
        if !seen && !self.marks.iter().any(|(i, _)| *i == id) {
            self.marks.push((id, period));
        }
        seen
    }

    fn load_script(&mut self, global: bool, name: &str) -> Result<Option<String>, String> {
        let dir = if global {
            match &self.global_dir {
                Some(d) => d.clone(),
                None => return Ok(None),
            }
        } else {
            // A personal script kept as an attribute wins over a file of that name.
            match attrs::get(self.reader, name) {
                Ok(text) => return Ok(Some(String::from_utf8_lossy(&text).into_owned())),
                Err(StoreErr::NoSuchScript | StoreErr::BadName) => {}
                Err(e) => return Err(e.to_string()),
            }
            self.personal_dir.clone()
        };
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err("invalid script name".into());
        }
        let path = dir.join(format!("{name}.sieve"));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > self.max_script_size => Err("script too large".into()),
            Ok(_) => std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Runs the scripts for one recipient (blocking: reads script files and the user's mailboxes).
pub(crate) fn evaluate(
    cfg: &SieveConfig,
    hostname: &str,
    reader: &Reader,
    home: &Path,
    user: &str,
    envelope: Envelope,
    raw: &[u8],
) -> Plan {
    let compiler = compiler();
    let mut scripts: Vec<(String, Arc<Script>)> = Vec::new();
    let add = |template: &str, scripts: &mut Vec<(String, Arc<Script>)>| -> Result<bool, String> {
        let path = expand_path(template, user, home);
        Ok(match load(&compiler, &path, cfg.max_script_size)? {
            Some(s) => {
                scripts.push((path.display().to_string(), s));
                true
            }
            None => false,
        })
    };
    // The user's script: the active script attribute when the attributes are in use, else
    // the `sieve` file (an operator's existing ~/.dovecot.sieve).
    let personal = |scripts: &mut Vec<(String, Arc<Script>)>| -> Result<bool, String> {
        match attrs::active_script(reader).map_err(|e| format!("sieve scripts: {e}"))? {
            Ok(Some((name, text))) => {
                let label = format!("sieve script {name}");
                scripts.push((label.clone(), compile_text(&compiler, &label, &text)?));
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(()) => add(&cfg.script, scripts),
        }
    };
    let loaded = (|| -> Result<(), String> {
        for b in &cfg.before {
            add(b, &mut scripts)?;
        }
        let personal = !cfg.script.is_empty() && personal(&mut scripts)?;
        if !personal && !cfg.default.is_empty() {
            add(&cfg.default, &mut scripts)?;
        }
        for a in &cfg.after {
            add(a, &mut scripts)?;
        }
        Ok(())
    })();
    if let Err(e) = loaded {
        return Plan::keep(e);
    }
    if scripts.is_empty() {
        return Plan {
            targets: vec![inbox(Vec::new())],
            ..Plan::default()
        };
    }
    let mut config = sieve::Config {
        vacation_min_period: cfg.vacation_min_period.as_secs(),
        vacation_max_period: cfg.vacation_max_period.as_secs(),
        vacation_default_period: cfg.vacation_default_period.as_secs(),
        ..sieve::Config::default()
    };
    config.spamtest = cfg.spamtest.clone();
    config.virustest = cfg.virustest.clone();
    config.limits.max_redirects = cfg.max_redirects;
    config.limits.max_actions = cfg.max_actions;
    for k in ["domain", "host"] {
        config.environment.insert(k.into(), hostname.to_string());
    }
    let mut rt = Runtime::new(compiler.clone(), config, Message::parse(raw), envelope);
    let mut host = DeliveryHost {
        reader,
        personal_dir: expand_path(&cfg.dir, user, home),
        global_dir: (!cfg.global_dir.is_empty()).then(|| expand_path(&cfg.global_dir, user, home)),
        max_script_size: cfg.max_script_size,
        marks: Vec::new(),
    };
    // Pigeonhole's chain: a later script runs only while the message would still be kept.
    let chain: Vec<&Script> = scripts.iter().map(|(_, s)| &**s).collect();
    if let Err((i, e)) = rt.run_chain(&mut host, &chain) {
        let label = scripts.get(i).map(|(l, _)| l.as_str()).unwrap_or("sieve");
        return Plan::keep(format!("{label}: {e}"));
    }
    for w in &rt.warnings {
        tracing::warn!(user, "sieve: {w}");
    }
    let mut plan = Plan {
        marks: host.marks,
        edited: rt.message.edited.then(|| rt.message.to_bytes()),
        ..Plan::default()
    };
    for a in rt.result() {
        match a {
            Action::Keep { flags, message, .. } => plan.targets.push(Target {
                message,
                ..inbox(flags)
            }),
            Action::FileInto {
                mailbox,
                flags,
                create,
                special_use,
                message,
                ..
            } => plan.targets.push(Target {
                mailbox,
                flags,
                create,
                special_use,
                message,
            }),
            Action::Redirect {
                address, message, ..
            } => plan.redirects.push((address, message)),
            Action::Discard => {}
            Action::Reject { reason, .. } => plan.reject = Some(reason),
            Action::Vacation(v) => plan.vacation = Some(v),
        }
    }
    plan
}

fn special_use(s: &str) -> Option<SpecialUse> {
    Some(match s.to_ascii_lowercase().as_str() {
        "\\all" => SpecialUse::All,
        "\\archive" => SpecialUse::Archive,
        "\\drafts" => SpecialUse::Drafts,
        "\\flagged" => SpecialUse::Flagged,
        "\\junk" => SpecialUse::Junk,
        "\\sent" => SpecialUse::Sent,
        "\\trash" => SpecialUse::Trash,
        _ => return None,
    })
}

/// Stores the message in each target (blocking, inside the write). A mailbox that does not
/// exist is created for `:create`, else the copy goes to INBOX (lda_mailbox_autocreate = no).
fn store_targets(
    store: &storage::UserStore,
    targets: &[Target],
    raw: &[u8],
    key: Option<[u8; 32]>,
) -> Vec<(String, Result<storage::AppendOutcome, StoreError>)> {
    let mut out: Vec<(String, Result<storage::AppendOutcome, StoreError>)> = Vec::new();
    for t in targets {
        let mut mailbox = t.mailbox.clone();
        // :specialuse: a mailbox with that use wins over the name (RFC 8579 4).
        if let Some(u) = t.special_use.as_deref().and_then(special_use) {
            if let Ok(list) = store.list_mailboxes() {
                if let Some(m) = list.iter().find(|m| m.special_use == Some(u)) {
                    mailbox = m.name.clone();
                }
            }
        }
        match store.mailbox(&mailbox) {
            Ok(info) => mailbox = info.name,
            Err(StoreError::NoSuchMailbox(_)) if t.create => {
                let su = t.special_use.as_deref().and_then(special_use);
                if let Err(e) = store.create_mailbox(&mailbox, su) {
                    tracing::info!(
                        mailbox,
                        "sieve: cannot create mailbox: {e}; keeping in INBOX"
                    );
                    mailbox = "INBOX".into();
                }
            }
            Err(e) => {
                tracing::info!(mailbox, "sieve: fileinto: {e}; keeping in INBOX");
                mailbox = "INBOX".into();
            }
        }
        if out.iter().any(|(m, _)| *m == mailbox) {
            continue;
        }
        let flags: Flags = t.flags.iter().map(|f| Flag::from_imap(f)).collect();
        // One delivery key per mailbox, so a retried delivery is recognised in each.
        let key = key.map(|k| {
            let mut h = blake3::Hasher::new_derive_key("mailstore lmtp sieve target v1");
            h.update(&k);
            h.update(mailbox.as_bytes());
            *h.finalize().as_bytes()
        });
        let r = store.append(
            &mailbox,
            NewMessage {
                raw: t.message.as_deref().map_or(raw, Vec::as_slice),
                flags,
                internal_date: None,
                delivery_key: key,
            },
        );
        out.push((mailbox, r));
    }
    out
}

/// One recipient's delivery through its scripts: the reply line and how it ended.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deliver(
    ctx: &LmtpContext,
    msg: &Received,
    rcpt: &Accepted,
    store: &UserMail,
    raw: Vec<u8>,
    key: Option<[u8; 32]>,
    session: &str,
    log: &(dyn Fn(&str) -> String + Sync),
) -> (Outcome, String) {
    let addr = &rcpt.address;
    let user = rcpt.user.clone();
    let temp_fail = |why: &str| {
        tracing::error!(user, "{}", log(&format!("sieve: {why}")));
        (
            Outcome::TempFail,
            format!("451 4.3.0 <{addr}> Temporary internal error"),
        )
    };
    let cfg = ctx.config.sieve.clone();
    let hostname = ctx.config.hostname.clone();
    let reader = store.reader().clone();
    let envelope = Envelope {
        from: msg.sender.clone(),
        to: addr.clone(),
        auth: None,
    };
    let raw_eval = raw.clone();
    let user_eval = user.clone();
    let plan = crate::blocking::run(move || {
        let home = reader.dir().to_path_buf();
        evaluate(
            &cfg, &hostname, &reader, &home, &user_eval, envelope, &raw_eval,
        )
    })
    .await;
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return temp_fail(&e),
    };
    if let Some(e) = &plan.error {
        tracing::warn!(
            user,
            "{}",
            log(&format!("sieve: {e}; keeping the message in INBOX"))
        );
    }
    if let Some(reason) = &plan.reject {
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        tracing::info!(user, "{}", log(&format!("sieve: rejected: {reason}")));
        return (Outcome::Ok, format!("550 5.7.1 <{addr}> {}", reason.trim()));
    }
    // Stores and redirects carry the message as each action saw it; the vacation check
    // reads it as the scripts left it.
    let edited = plan.edited.clone().unwrap_or_else(|| raw.clone());
    // Redirects go out before the reply: a failed one is retried with the whole delivery.
    let parsed = Message::parse(&raw);
    let mut looped = false;
    for (to, snapshot) in &plan.redirects {
        if sieve::redirect::is_loop(&parsed, &[addr.as_str()]) {
            tracing::info!(
                user,
                "{}",
                log(&format!("sieve: not forwarding to <{to}>: mail loop"))
            );
            looped = true;
            continue;
        }
        if ctx.config.sieve.submission_host.is_empty() {
            return temp_fail("redirect without a submission_host");
        }
        let data = sieve::redirect::build(snapshot.as_deref().unwrap_or(&raw), addr);
        let out = Outgoing {
            from: &msg.sender,
            to,
            data: &data,
        };
        if let Err(e) = smtp_client::send(
            &ctx.config.sieve.submission_host,
            &ctx.config.hostname,
            &out,
        )
        .await
        {
            return temp_fail(&format!("redirect to <{to}> failed: {e}"));
        }
        tracing::info!(user, "{}", log(&format!("sieve: forwarded to <{to}>")));
    }
    let mut targets = plan.targets.clone();
    // A redirect held back as a loop must not lose the message: it is kept.
    if looped && targets.is_empty() {
        targets.push(inbox(Vec::new()));
    }
    let marks = plan.marks.clone();
    let reply_to = plan
        .vacation
        .as_ref()
        .and_then(|v| vacation_wanted(msg, addr, &user, &edited, v, log));
    let track = reply_to.as_ref().map(|r| (r.id.clone(), r.period));
    let result = if targets.is_empty() && marks.is_empty() && track.is_none() {
        Ok((Vec::new(), None))
    } else {
        let raw = raw.clone();
        store
            .write(move |s| {
                // The tracking goes into the same write as the message, and first: a retried
                // delivery finds its ids seen, and a node that holds the message (the other
                // one after a fail-over) holds the tracking too.
                if !marks.is_empty() {
                    if let Err(e) = attrs::mark(s, &marks) {
                        tracing::warn!("sieve: duplicate tracking: {e}");
                    }
                }
                let seen = track.map(|(id, period)| {
                    attrs::check_and_mark(s, &id, period).unwrap_or_else(|e| {
                        tracing::warn!("sieve: vacation tracking: {e}");
                        true
                    })
                });
                (store_targets(s, &targets, &raw, key), seen)
            })
            .await
    };
    let (stored, seen) = match result {
        Ok(r) => r,
        Err(WriteError::Refused(refused)) => {
            tracing::warn!(user, "{}", log(&format!("writes refused: {refused}")));
            return (Outcome::TempFail, format!("451 4.3.0 <{addr}> {refused}"));
        }
        Err(WriteError::Internal(e)) => return temp_fail(&e),
    };
    let mut reply = None;
    for (mailbox, outcome) in stored {
        match answer(outcome, &mailbox, addr, session, &user, log) {
            Ok(r) => {
                if reply
                    .as_ref()
                    .is_none_or(|(o, _)| *o == Outcome::Ok || *o == Outcome::Duplicate)
                {
                    reply = Some(r);
                }
            }
            Err(e) => return temp_fail(&format!("save failed to {mailbox}: {e}")),
        }
    }
    let reply = reply.unwrap_or_else(|| {
        tracing::info!(user, "{}", log("sieve: discarded (no copy kept)"));
        (Outcome::Ok, format!("250 2.0.0 <{addr}> {session} Saved"))
    });
    if let (Some(v), Some(r)) = (plan.vacation, reply_to) {
        if seen == Some(false) {
            send_vacation(ctx, &user, &edited, &v, &r, log).await;
        } else {
            tracing::info!(
                user,
                "{}",
                log(&format!(
                    "sieve: vacation: already replied to <{}> recently",
                    r.sender
                ))
            );
        }
    }
    reply
}

/// Whom a vacation reply would go to, when RFC 5230's rules allow one.
struct ReplyTo {
    sender: String,
    own: String,
    id: String,
    period: u64,
}

fn vacation_wanted(
    msg: &Received,
    addr: &str,
    user: &str,
    raw: &[u8],
    v: &Vacation,
    log: &(dyn Fn(&str) -> String + Sync),
) -> Option<ReplyTo> {
    let parsed = Message::parse(raw);
    let sender = sieve::address::parse_path(&msg.sender)
        .map(|p| p.all)
        .unwrap_or_default();
    match sieve::vacation::check(&parsed, &sender, addr, &v.addresses) {
        Ok(own) => Some(ReplyTo {
            id: tracking_id(&v.handle, &sender),
            period: v.period,
            sender,
            own,
        }),
        Err(why) => {
            tracing::info!(
                user,
                "{}",
                log(&format!("sieve: vacation: no reply ({why})"))
            );
            None
        }
    }
}

/// Sends the vacation reply (the tracking already said this sender was not answered).
async fn send_vacation(
    ctx: &LmtpContext,
    user: &str,
    raw: &[u8],
    v: &Vacation,
    r: &ReplyTo,
    log: &(dyn Fn(&str) -> String + Sync),
) {
    let parsed = Message::parse(raw);
    let (sender, own) = (&r.sender, &r.own);
    if ctx.config.sieve.submission_host.is_empty() {
        tracing::warn!(user, "sieve: vacation: no submission_host configured");
        return;
    }
    let date = chrono::Utc::now().to_rfc2822();
    let mid = format!(
        "<{}.vacation@{}>",
        blake3::hash(format!("{sender}{date}{}", v.handle).as_bytes()).to_hex(),
        ctx.config.hostname
    );
    let reply = sieve::vacation::build_reply(&parsed, v, own, sender, &date, &mid);
    let out = Outgoing {
        from: "",
        to: sender,
        data: &reply,
    };
    match smtp_client::send(
        &ctx.config.sieve.submission_host,
        &ctx.config.hostname,
        &out,
    )
    .await
    {
        Ok(()) => tracing::info!(
            user,
            "{}",
            log(&format!("sieve: sent vacation response to <{sender}>"))
        ),
        Err(e) => tracing::warn!(
            user,
            "{}",
            log(&format!(
                "sieve: vacation response to <{sender}> failed: {e}"
            ))
        ),
    }
}

/// The vacation tracking id of a handle and a sender (hashed into its key by `attrs`).
fn tracking_id(handle: &str, sender: &str) -> String {
    format!("vacation\0{handle}\0{}", sender.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates() {
        let home = Path::new("/h/u");
        assert_eq!(
            expand_path("~/.dovecot.sieve", "a@b.example", home),
            PathBuf::from("/h/u/.dovecot.sieve")
        );
        assert_eq!(
            expand_path("/s/%d/%n.sieve", "a@b.example", home),
            PathBuf::from("/s/b.example/a.sieve")
        );
        assert_eq!(
            expand_path("/s/%u/%%x", "a", home),
            PathBuf::from("/s/a/%x")
        );
    }
}
