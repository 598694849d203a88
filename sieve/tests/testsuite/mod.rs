//! Pigeonhole's `vnd.dovecot.testsuite` extension, as a [`Host`] of the interpreter: test
//! blocks, test_set/test_message, results and their execution into an in-memory mail store and
//! outbox, compiling and running other scripts, and the errors they produced.

use sieve::ast::{Arg, Node};
use sieve::spec::{match_tags, Spec, Ty};
use sieve::{
    vacation, Action, Compiler, Config, Envelope, Flow, Host, Message, Runtime, RuntimeError,
    Script,
};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// The marker error `test_fail` unwinds with to its `test` block.
const FAIL: &str = "\u{0}test_fail";
/// The error a `test_message :folder` command stops its test with when the mailbox does not
/// exist (Pigeonhole: a runtime error that ends the test's execution, not a test failure).
const NO_MAILBOX: &str = "\u{0}no such mailbox";

pub fn compiler() -> Compiler {
    let mut c = Compiler::new();
    let both = |s: Spec| Spec { both: true, ..s };
    c.add_extension(
        "vnd.dovecot.testsuite",
        vec![
            Spec::new("test", false, "vnd.dovecot.testsuite")
                .pos(&[Ty::Str])
                .block(),
            Spec::new("test_fail", false, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
            Spec::new("test_set", false, "vnd.dovecot.testsuite").pos(&[Ty::Str, Ty::Str]),
            both(
                Spec::new("test_message", false, "vnd.dovecot.testsuite")
                    .tag("smtp", None, "src", "")
                    .tag("folder", Some(Ty::Str), "src", "")
                    .pos(&[Ty::Num]),
            ),
            Spec::new("test_result_reset", false, "vnd.dovecot.testsuite"),
            Spec::new("test_result_print", false, "vnd.dovecot.testsuite"),
            Spec::new("test_result_action", true, "vnd.dovecot.testsuite")
                .tags(match_tags())
                .tag("index", Some(Ty::Num), "index", "")
                .pos(&[Ty::List]),
            Spec::new("test_result_execute", true, "vnd.dovecot.testsuite"),
            Spec::new("test_script_compile", true, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
            Spec::new("test_multiscript", true, "vnd.dovecot.testsuite").pos(&[Ty::List]),
            Spec::new("test_script_run", true, "vnd.dovecot.testsuite").tag(
                "append_result",
                None,
                "",
                "",
            ),
            Spec::new("test_error", true, "vnd.dovecot.testsuite")
                .tags(match_tags())
                .tag("index", Some(Ty::Num), "index", "")
                .pos(&[Ty::List]),
            Spec::new("test_config_set", false, "vnd.dovecot.testsuite").pos(&[Ty::Str, Ty::Str]),
            Spec::new("test_config_unset", false, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
            Spec::new("test_config_reload", false, "vnd.dovecot.testsuite").tag(
                "extension",
                Some(Ty::Str),
                "",
                "",
            ),
            Spec::new("test_mailbox_create", false, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
            Spec::new("test_binary_save", false, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
            Spec::new("test_binary_load", false, "vnd.dovecot.testsuite").pos(&[Ty::Str]),
        ],
    );
    c
}

/// A stored message and its flags.
type Stored = (Vec<u8>, Vec<String>);

/// One message the result execution sent.
struct Sent {
    from: String,
    to: String,
    message: Vec<u8>,
}

pub struct Suite {
    dir: PathBuf,
    pub failures: Vec<String>,
    pub tests: usize,
    current: Option<String>,
    compiled: Option<Script>,
    errors: Vec<String>,
    mailboxes: BTreeMap<String, Vec<Stored>>,
    created: HashSet<String>,
    outbox: Vec<Sent>,
    duplicates: HashSet<String>,
    orig_to: Option<String>,
    /// The message as test_set gave it, before any editheader change.
    original: Vec<u8>,
    /// Settings as test_config_set gave them.
    settings: BTreeMap<String, String>,
}

impl Suite {
    pub fn new(dir: &Path) -> Suite {
        Suite {
            dir: dir.to_path_buf(),
            failures: Vec::new(),
            tests: 0,
            current: None,
            compiled: None,
            errors: Vec::new(),
            mailboxes: BTreeMap::new(),
            created: HashSet::from(["INBOX".to_string()]),
            outbox: Vec::new(),
            duplicates: HashSet::new(),
            settings: BTreeMap::new(),
            orig_to: None,
            original: Vec::new(),
        }
    }

    /// Runs one .svtest file; `Err` when it does not compile or stops with an error outside a
    /// test block.
    pub fn run_file(&mut self, src: &str) -> Result<(), String> {
        let c = compiler();
        let script = c.compile(src).map_err(|e| format!("compile: {e}"))?;
        let mut rt = Runtime::new(
            c,
            Config::default(),
            Message::default(),
            Envelope::default(),
        );
        self.apply_settings(&mut rt);
        rt.run(self, &script).map_err(|e| {
            if e.message == FAIL {
                "test_fail outside a test".to_string()
            } else {
                format!("runtime: {e}")
            }
        })
    }

    fn apply_settings(&self, rt: &mut Runtime) {
        let mut c = Config::default();
        // The environment Pigeonhole's test suite runs in (RFC 5183 items it checks).
        c.environment
            .insert("name".into(), "Pigeonhole Sieve".into());
        c.environment.insert("location".into(), "MS".into());
        for (k, v) in &self.settings {
            let num = || parse_duration(v);
            match k.as_str() {
                "sieve_vacation_min_period" => {
                    c.vacation_min_period = num().unwrap_or(c.vacation_min_period)
                }
                "sieve_vacation_max_period" => {
                    c.vacation_max_period = num().unwrap_or(c.vacation_max_period)
                }
                "sieve_vacation_default_period" => {
                    c.vacation_default_period = num().unwrap_or(c.vacation_default_period)
                }
                "sieve_variables_max_variable_size" => {
                    c.limits.max_variable_size = v.parse().unwrap_or(c.limits.max_variable_size)
                }
                "sieve_include_max_includes" => {
                    c.limits.max_includes = v.parse().unwrap_or(c.limits.max_includes)
                }
                "sieve_include_max_nesting_depth" => {
                    c.limits.max_include_depth = v.parse().unwrap_or(c.limits.max_include_depth)
                }
                "sieve_editheader_max_header_size" => {
                    c.limits.max_header_size = v.parse().unwrap_or(c.limits.max_header_size)
                }
                "recipient_delimiter" => c.subaddress_separator = v.clone(),
                "sieve_vacation_default_subject" => c.vacation_default_subject = v.clone(),
                "sieve_vacation_default_subject_template" => {
                    c.vacation_default_subject_template = v.clone()
                }
                "sieve_vacation_to_header_ignore_envelope" => {
                    c.vacation_to_header_ignore_envelope = v == "yes"
                }
                k if k.starts_with("sieve_editheader_header/") && v == "yes" => {
                    let rest = &k["sieve_editheader_header/".len()..];
                    // Only the fields the list names count, and Subject cannot be protected
                    // (Pigeonhole's rules for these settings).
                    let listed = |name: &str| {
                        !name.eq_ignore_ascii_case("subject")
                            && self
                                .settings
                                .get("sieve_editheader_header")
                                .is_some_and(|l| {
                                    l.split_whitespace().any(|x| x.eq_ignore_ascii_case(name))
                                })
                    };
                    if let Some(name) = rest.strip_suffix("/forbid_add").filter(|n| listed(n)) {
                        c.editheader_forbid_add.push(name.to_string());
                    } else if let Some(name) =
                        rest.strip_suffix("/forbid_delete").filter(|n| listed(n))
                    {
                        c.editheader_forbid_delete.push(name.to_string());
                    }
                }
                k if k.starts_with("sieve_environment/") => {
                    c.environment
                        .insert(k["sieve_environment/".len()..].to_string(), v.clone());
                }
                _ => {}
            }
        }
        c.spamtest = self.score_test("sieve_spamtest_");
        c.virustest = self.score_test("sieve_virustest_");
        rt.compiler.max_header_size = c.limits.max_header_size;
        rt.compiler.max_includes = c.limits.max_includes;
        rt.compiler.max_include_depth = c.limits.max_include_depth;
        rt.config = c;
    }

    /// Pigeonhole's spamtest / virustest settings (`PREFIXstatus_header`, ...).
    fn score_test(&self, prefix: &str) -> Option<sieve::spamtest::ScoreTest> {
        use sieve::spamtest::{header_spec, Kind, ScoreTest};
        let get = |k: &str| self.settings.get(&format!("{prefix}{k}"));
        let (header, regex) = header_spec(get("status_header")?);
        let kind = match get("status_type").map(String::as_str) {
            Some("strlen") => Kind::Strlen,
            Some("text") => Kind::Text,
            _ => Kind::Score,
        };
        let text_prefix = format!("{prefix}text_value/");
        let text_values = self
            .settings
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&text_prefix)?.parse().ok()?, v.clone())))
            .collect();
        Some(ScoreTest {
            header,
            regex,
            kind,
            max_header: get("score_max_header").map(|h| header_spec(h)),
            max_value: get("score_max_value").and_then(|v| v.parse().ok()),
            text_values,
        })
    }

    fn load(&self, rel: &str) -> Result<String, String> {
        std::fs::read_to_string(self.dir.join(rel)).map_err(|e| format!("{rel}: {e}"))
    }

    /// Carries out the result as a delivery agent would, into the in-memory store and outbox.
    fn execute(&mut self, rt: &mut Runtime) -> bool {
        let msg = rt.message.to_bytes();
        let env = Envelope {
            from: path(&rt.envelope.from),
            to: path(&rt.envelope.to),
            auth: rt.envelope.auth.clone(),
        };
        let mut ok = true;
        self.errors.clear();
        let store_flags = |mut flags: Vec<String>| {
            flags.push(attachment_keyword(&msg).to_string());
            flags
        };
        // Each action carries the message as editheader had left it when it was taken.
        let unedited = if self.original.is_empty() {
            msg.clone()
        } else {
            self.original.clone()
        };
        let at = |m: &sieve::Snapshot| m.as_ref().map_or_else(|| unedited.clone(), |m| m.to_vec());
        // Actions an earlier test_result_execute carried out are not carried out again.
        let done = rt.executed;
        rt.executed = rt.actions.len();
        for a in rt.result().into_iter().skip(done) {
            match a {
                Action::Keep { flags, message, .. } => self
                    .mailboxes
                    .entry("INBOX".into())
                    .or_default()
                    .push((at(&message), store_flags(flags))),
                Action::FileInto {
                    mailbox,
                    flags,
                    create,
                    message,
                    ..
                } => {
                    let mailbox = inbox_prefix(&mailbox);
                    // The test store's hierarchy separator is '/': no empty levels.
                    if mailbox.split('/').any(str::is_empty) {
                        self.errors.push(format!(
                            "failed to store into mailbox '{mailbox}': Invalid mailbox name"
                        ));
                        ok = false;
                        continue;
                    }
                    if !create && !self.created.contains(&mailbox) {
                        self.errors.push(format!(
                            "failed to store into mailbox '{mailbox}': Mailbox doesn't exist: {mailbox}"
                        ));
                        ok = false;
                        continue;
                    }
                    self.created.insert(mailbox.clone());
                    self.mailboxes
                        .entry(mailbox)
                        .or_default()
                        .push((at(&message), store_flags(flags)));
                }
                Action::Discard => {}
                Action::Redirect {
                    address, message, ..
                } => {
                    let user_email = self.settings.get("sieve_user_email").map(|u| path(u));
                    let own = user_email.clone().unwrap_or_else(|| env.to.clone());
                    let orig = self.orig_to.as_deref().map(path).unwrap_or_default();
                    if sieve::redirect::is_loop(&rt.message, &[&own, &env.to, &orig]) {
                        continue;
                    }
                    // Pigeonhole's sieve_redirect_envelope_from; a null sender stays null.
                    let setting = self
                        .settings
                        .get("sieve_redirect_envelope_from")
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default();
                    let from = if env.from.is_empty() {
                        String::new()
                    } else {
                        match setting.as_str() {
                            "recipient" => env.to.clone(),
                            "orig_recipient" => {
                                if orig.is_empty() {
                                    env.to.clone()
                                } else {
                                    orig.clone()
                                }
                            }
                            "user_email" => user_email.clone().unwrap_or_else(|| env.to.clone()),
                            s if s.starts_with('<') => path(s),
                            _ => env.from.clone(),
                        }
                    };
                    self.outbox.push(Sent {
                        from,
                        to: address,
                        message: sieve::redirect::build(&at(&message), &own),
                    });
                }
                Action::Reject { reason, .. } => {
                    if !env.from.is_empty() {
                        let m = vacation::build_rejection(
                            &rt.message,
                            &reason,
                            &env.to,
                            &env.from,
                            "Mon, 7 Dec 2026 00:00:00 +0000",
                            "<reject@testsuite>",
                        );
                        // sieve_vacation_send_from_recipient: the reply's envelope sender is
                        // the recipient rather than the null path.
                        let from = match self
                            .settings
                            .get("sieve_vacation_send_from_recipient")
                            .map(String::as_str)
                        {
                            Some("yes") => env.to.clone(),
                            _ => String::new(),
                        };
                        self.outbox.push(Sent {
                            from,
                            to: env.from.clone(),
                            message: m,
                        });
                    }
                }
                Action::Vacation(v) => {
                    let user = self
                        .settings
                        .get("sieve_user_email")
                        .cloned()
                        .unwrap_or_else(|| env.to.clone());
                    let mut addrs = v.addresses.clone();
                    addrs.push(env.to.clone());
                    if self
                        .settings
                        .get("sieve_vacation_use_original_recipient")
                        .map(String::as_str)
                        == Some("yes")
                    {
                        addrs.extend(self.orig_to.as_deref().map(path));
                    }
                    let check = self
                        .settings
                        .get("sieve_vacation_check_recipient")
                        .map(String::as_str)
                        != Some("no");
                    if let Ok(own) =
                        vacation::check_with(&rt.message, &env.from, &user, &addrs, check)
                    {
                        let m = vacation::build_reply(
                            &rt.message,
                            &v,
                            &own,
                            &env.from,
                            "Mon, 7 Dec 2026 00:00:00 +0000",
                            "<vacation@testsuite>",
                        );
                        // sieve_vacation_send_from_recipient: the reply's envelope sender is
                        // the recipient rather than the null path.
                        let from = match self
                            .settings
                            .get("sieve_vacation_send_from_recipient")
                            .map(String::as_str)
                        {
                            Some("yes") => env.to.clone(),
                            _ => String::new(),
                        };
                        self.outbox.push(Sent {
                            from,
                            to: env.from.clone(),
                            message: m,
                        });
                    }
                }
            }
        }
        // A store that failed falls back to the implicit keep, of the message as it came
        // (Pigeonhole's rule; delivery keeps in INBOX likewise).
        if !ok {
            let flags = vec![attachment_keyword(&self.original).to_string()];
            self.mailboxes
                .entry("INBOX".into())
                .or_default()
                .push((self.original.clone(), flags));
        }
        ok
    }

    fn fail(&mut self, reason: String) {
        let test = self.current.clone().unwrap_or_else(|| "(top level)".into());
        self.failures.push(format!("{test}: {reason}"));
    }
}

/// The keyword Dovecot's attachment detection (`mail_attachment_detection_options =
/// add-flags`, on in Pigeonhole's test environment) gives a stored message.
fn attachment_keyword(raw: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    if text.contains("content-disposition: attachment") || text.contains("filename=") {
        "$HasAttachment"
    } else {
        "$HasNoAttachment"
    }
}

/// "INBOX" is case-insensitive, also as the first level of a hierarchical name.
fn inbox_prefix(name: &str) -> String {
    let b = name.as_bytes();
    if b.len() >= 5
        && name[..5].eq_ignore_ascii_case("inbox")
        && matches!(b.get(5), None | Some(b'.' | b'/'))
    {
        format!("INBOX{}", &name[5..])
    } else {
        name.to_string()
    }
}

fn parse_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    Some(n * mult)
}

/// The addr-spec of an envelope path ("" for the null path or a malformed one).
fn path(s: &str) -> String {
    sieve::address::parse_path(s)
        .map(|p| p.all)
        .unwrap_or_default()
}

/// Like Pigeonhole's test suite: the envelope of a new message comes from its Return-Path and
/// Envelope-To or To fields, or fixed example addresses.
fn default_envelope(m: &Message) -> Envelope {
    let first = |h: &str| {
        m.raw_values(h)
            .flat_map(|v| sieve::address::parse_header(&sieve::message::unfold(v)))
            .map(|a| a.all)
            .next()
    };
    Envelope {
        from: first("return-path")
            .or_else(|| first("sender"))
            .or_else(|| first("from"))
            .unwrap_or_else(|| "sender@example.com".into()),
        to: first("envelope-to")
            .or_else(|| first("to"))
            .unwrap_or_else(|| "recipient@example.com".into()),
        auth: None,
    }
}

impl Host for Suite {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.created.contains(&inbox_prefix(name))
    }

    fn load_script(&mut self, global: bool, name: &str) -> Result<Option<String>, String> {
        let dir = if global {
            "included-global"
        } else {
            "included"
        };
        let path = self.dir.join(dir).join(format!("{name}.sieve"));
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn duplicate(&mut self, id: &str, _period: u64, _last: bool) -> bool {
        !self.duplicates.insert(id.to_string())
    }

    fn command(&mut self, rt: &mut Runtime, n: &Node) -> Option<Result<Flow, RuntimeError>> {
        let err = |m: String| Some(Err(RuntimeError::new(n.line, m)));
        match n.name.as_str() {
            "test" => {
                let name = rt.s(&n.string(0));
                self.tests += 1;
                self.current = Some(name);
                let block = n.block.clone().unwrap_or_default();
                match rt.exec_block(self, &block) {
                    Ok(_) => {}
                    Err(e) if e.message == FAIL || e.message == NO_MAILBOX => {}
                    Err(e) => self.fail(format!("runtime error: {e}")),
                }
                self.current = None;
            }
            "test_fail" => {
                let reason = rt.s(&n.string(0));
                self.fail(format!("line {}: {reason}", n.line));
                return Some(Err(RuntimeError::new(n.line, FAIL)));
            }
            "test_set" => {
                let what = rt.s(&n.string(0));
                let value = rt.s(&n.string(1));
                match what.as_str() {
                    "message" => {
                        self.original = value.as_bytes().to_vec();
                        rt.message = Message::parse(value.as_bytes());
                        rt.envelope = default_envelope(&rt.message);
                    }
                    "envelope.from" => rt.envelope.from = value,
                    "envelope.to" => rt.envelope.to = value,
                    "envelope.orig_to" => self.orig_to = Some(value),
                    "envelope.auth" => rt.envelope.auth = Some(value),
                    other => {
                        if let Err(e) = rt.set_var(n, other, value) {
                            return Some(Err(e));
                        }
                    }
                }
            }
            "test_message" => {
                if let Some(Arg::Str(folder)) = n.tag("folder") {
                    if !self.mailboxes.contains_key(&inbox_prefix(&rt.s(folder))) {
                        return Some(Err(RuntimeError::new(n.line, NO_MAILBOX)));
                    }
                }
                // A missing message leaves the current one (the test's later checks fail).
                return match self.switch_message(rt, n) {
                    Ok(_) => Some(Ok(Flow::Next)),
                    Err(e) => err(e),
                };
            }
            "test_result_reset" => {
                rt.reset_result();
                self.outbox.clear();
            }
            "test_result_print" | "test_binary_save" | "test_binary_load" => {}
            "test_config_set" => {
                self.settings.insert(rt.s(&n.string(0)), rt.s(&n.string(1)));
                self.apply_settings(rt);
            }
            "test_config_unset" => {
                self.settings.remove(&rt.s(&n.string(0)));
                self.apply_settings(rt);
            }
            "test_config_reload" => self.apply_settings(rt),
            "test_mailbox_create" => {
                self.created.insert(inbox_prefix(&rt.s(&n.string(0))));
            }
            _ => return None,
        }
        Some(Ok(Flow::Next))
    }

    fn test(&mut self, rt: &mut Runtime, n: &Node) -> Option<Result<bool, RuntimeError>> {
        Some(Ok(match n.name.as_str() {
            "test_message" => match self.switch_message(rt, n) {
                Ok(b) => b,
                Err(e) => return Some(Err(RuntimeError::new(n.line, e))),
            },
            "test_script_compile" => {
                let path = rt.s(&n.string(0));
                self.compiled = None;
                self.errors.clear();
                match self.load(&path) {
                    Err(e) => {
                        self.errors.push(e);
                        false
                    }
                    Ok(src) => match rt
                        .compiler
                        .clone()
                        .compile_with_includes(&src, &mut |g, n| self.load_script(g, n))
                    {
                        Ok(s) => {
                            // Pigeonhole's test_error lists a compile's warnings too.
                            self.errors = s.warnings.iter().map(|w| w.message.clone()).collect();
                            self.compiled = Some(s);
                            true
                        }
                        Err(e) => {
                            // Each warning goes before the first error after it in the
                            // script (the errors keep the order they were found in).
                            self.errors = Vec::new();
                            let mut warnings = e.warnings.iter().peekable();
                            for err in &e.errors {
                                while let Some(w) =
                                    warnings.next_if(|w| (w.line, w.col) < (err.line, err.col))
                                {
                                    self.errors.push(w.message.clone());
                                }
                                self.errors.push(err.message.clone());
                            }
                            self.errors.extend(warnings.map(|w| w.message.clone()));
                            // Pigeonhole's error handler ends a failed compile with a summary
                            // error of its own, which test_error counts.
                            self.errors.push("script compilation failed".into());
                            if std::env::var_os("PH_DEBUG").is_some() {
                                eprintln!("compile {path}: {} errors", e.errors.len());
                                for x in &e.errors {
                                    eprintln!("   {x}");
                                }
                            }
                            false
                        }
                    },
                }
            }
            "test_script_run" => {
                let Some(script) = self.compiled.clone() else {
                    return Some(Ok(false));
                };
                if !n.has_tag("append_result") {
                    rt.reset_result();
                }
                self.errors.clear();
                let saved = rt.match_vars.clone();
                let r = rt.with_own_globals(|rt| rt.run(self, &script));
                rt.match_vars = saved;
                self.errors.append(&mut rt.warnings);
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        self.errors.push(e.message);
                        false
                    }
                }
            }
            "test_result_execute" => self.execute(rt),
            "test_multiscript" => {
                // Pigeonhole's sieve_before / personal / sieve_after chain, then its result.
                let mut scripts = Vec::new();
                self.errors.clear();
                for path in rt.sl(&n.list(0)) {
                    let compiled = self
                        .load(&path)
                        .and_then(|src| rt.compiler.compile(&src).map_err(|e| e.to_string()));
                    match compiled {
                        Ok(s) => scripts.push(s),
                        Err(e) => {
                            self.errors.push(e);
                            return Some(Ok(false));
                        }
                    }
                }
                rt.reset_result();
                let saved = rt.match_vars.clone();
                let refs: Vec<&Script> = scripts.iter().collect();
                let r = rt.run_chain(self, &refs);
                rt.match_vars = saved;
                match r {
                    Ok(()) => self.execute(rt),
                    Err((_, e)) => {
                        self.errors.push(e.message);
                        false
                    }
                }
            }
            "test_result_action" => {
                let keys = rt.sl(&n.list(0));
                let names: Vec<String> = rt.result().iter().map(|a| a.name().to_string()).collect();
                let values = match n.tag_num("index") {
                    Some(i) => names
                        .get((i as usize).wrapping_sub(1))
                        .cloned()
                        .into_iter()
                        .collect(),
                    None => names,
                };
                let mut m = n.clone();
                m.tags.retain(|(t, _)| t != "index");
                rt.match_values(&m, &values, &keys)
            }
            "test_error" => {
                let keys = rt.sl(&n.list(0));
                let values: Vec<String> = match n.tag_num("index") {
                    Some(i) => self
                        .errors
                        .get((i as usize).wrapping_sub(1))
                        .cloned()
                        .into_iter()
                        .collect(),
                    None => self.errors.clone(),
                };
                let mut m = n.clone();
                m.tags.retain(|(t, _)| t != "index");
                rt.match_values(&m, &values, &keys)
            }
            _ => return None,
        }))
    }
}

impl Suite {
    fn switch_message(&mut self, rt: &mut Runtime, n: &Node) -> Result<bool, String> {
        let i = n.num(0) as usize;
        if let Some(Arg::Str(folder)) = n.tag("folder") {
            let folder = inbox_prefix(&rt.s(folder));
            return Ok(match self.mailboxes.get(&folder).and_then(|m| m.get(i)) {
                Some((m, flags)) => {
                    self.original = m.clone();
                    rt.message = Message::parse(m);
                    rt.flags = flags.clone();
                    true
                }
                None => false,
            });
        }
        Ok(match self.outbox.get(i) {
            Some(s) => {
                self.original = s.message.clone();
                rt.message = Message::parse(&s.message);
                rt.envelope = Envelope {
                    from: s.from.clone(),
                    to: s.to.clone(),
                    auth: None,
                };
                true
            }
            None => false,
        })
    }
}
