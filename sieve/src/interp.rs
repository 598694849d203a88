//! Running a compiled script against a message and its envelope.

use crate::action::{Action, Vacation};
use crate::address::{self, Parsed, Part};
use crate::ast::{Arg, Node};
use crate::compile::{Compiler, Script};
use crate::error::RuntimeError;
use crate::matching::{self, Comparator, MatchType, RelOp};
use crate::message::Message;
use crate::variables::{self, VarRef};
use crate::{date, vacation};
use chrono::{DateTime, FixedOffset};
use std::collections::{HashMap, HashSet};

type RResult<T> = Result<T, RuntimeError>;

/// Bounds on one run.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Commands and tests evaluated, includes counted.
    pub max_steps: u64,
    pub max_actions: usize,
    pub max_redirects: usize,
    pub max_include_depth: usize,
    pub max_includes: usize,
    pub max_variables: usize,
    pub max_variable_size: usize,
    pub max_header_size: usize,
    /// Bytes of edited copies of the message the actions of one run may hold.
    pub max_snapshot_bytes: usize,
    /// Wall-clock time one run may take (Pigeonhole's sieve_max_cpu_time); each step is
    /// itself bounded, so a run overshoots it by at most one step.
    pub max_time: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 100_000,
            max_actions: 32,
            max_redirects: 4,
            max_include_depth: 10,
            max_includes: 255,
            max_variables: 255,
            max_variable_size: 4096,
            max_header_size: 2048,
            max_snapshot_bytes: 128 << 20,
            max_time: std::time::Duration::from_secs(5),
        }
    }
}

/// Settings of the engine (Pigeonhole's `sieve_*` settings where they exist).
#[derive(Clone, Debug)]
pub struct Config {
    pub limits: Limits,
    pub subaddress_separator: String,
    pub vacation_min_period: u64,
    pub vacation_max_period: u64,
    pub vacation_default_period: u64,
    /// RFC 5183 items: domain, host, location, name, phase, remote-host, remote-ip, version.
    pub environment: HashMap<String, String>,
    /// The zone `date` converts to when no :zone is given.
    pub local_zone: FixedOffset,
    /// Fields scripts may not add or delete, besides Received and Auto-Submitted (Pigeonhole's
    /// `sieve_editheader_header/NAME/forbid_add` and `forbid_delete`).
    pub editheader_forbid_add: Vec<String>,
    pub editheader_forbid_delete: Vec<String>,
    /// `sieve_vacation_default_subject`: the reply's subject when the script gives none and
    /// no template applies ("" = "Auto: " and the original subject).
    pub vacation_default_subject: String,
    /// `sieve_vacation_default_subject_template`: `%{subject}` (or `%$`) stands for the
    /// original subject; used when the message has one.
    pub vacation_default_subject_template: String,
    /// `sieve_vacation_to_header_ignore_envelope`.
    pub vacation_to_header_ignore_envelope: bool,
    /// RFC 5235: where spamtest and virustest read their scores (None: "0", not tested).
    pub spamtest: Option<crate::spamtest::ScoreTest>,
    pub virustest: Option<crate::spamtest::ScoreTest>,
}

impl Default for Config {
    fn default() -> Self {
        let mut environment = HashMap::new();
        for (k, v) in [
            ("name", "mailstore"),
            ("version", env!("CARGO_PKG_VERSION")),
            ("location", "MDA"),
            ("phase", "during"),
            ("domain", "localhost"),
            ("host", "localhost"),
        ] {
            environment.insert(k.to_string(), v.to_string());
        }
        Config {
            limits: Limits::default(),
            subaddress_separator: "+".into(),
            vacation_min_period: 86_400,
            vacation_max_period: 90 * 86_400,
            vacation_default_period: 7 * 86_400,
            environment,
            local_zone: local_zone(),
            editheader_forbid_add: Vec::new(),
            editheader_forbid_delete: Vec::new(),
            vacation_default_subject: String::new(),
            vacation_default_subject_template: String::new(),
            vacation_to_header_ignore_envelope: false,
            spamtest: None,
            virustest: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; "" for the null sender.
    pub from: String,
    pub to: String,
    pub auth: Option<String>,
}

/// How a block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Next,
    /// `stop`: the whole run ends.
    Stop,
    /// `return` (RFC 6609): the current script ends.
    Return,
}

/// What the interpreter asks of its caller.
pub trait Host {
    fn mailbox_exists(&mut self, _name: &str) -> bool {
        false
    }
    fn special_use_exists(&mut self, _mailbox: Option<&str>, _uses: &[String]) -> bool {
        false
    }
    /// The source of an included script; `Ok(None)` when there is none.
    fn load_script(&mut self, _global: bool, _name: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    /// RFC 7352: has `id` been seen within `period` seconds? Records it unless only checking.
    fn duplicate(&mut self, _id: &str, _period: u64, _last: bool) -> bool {
        false
    }
    /// Commands of extensions the host adds (the test suite's); `None` when not one.
    fn command(&mut self, _rt: &mut Runtime, _node: &Node) -> Option<RResult<Flow>> {
        None
    }
    fn test(&mut self, _rt: &mut Runtime, _node: &Node) -> Option<RResult<bool>> {
        None
    }
}

/// A host with no mailboxes, no included scripts and no tracking.
pub struct NoHost;
impl Host for NoHost {}

#[derive(Default)]
struct Frame {
    vars: HashMap<String, String>,
    variables: bool,
    globals: HashSet<String>,
    name: String,
}

pub struct Runtime {
    pub compiler: Compiler,
    pub config: Config,
    pub message: Message,
    pub envelope: Envelope,
    pub actions: Vec<Action>,
    pub implicit_keep: bool,
    /// The imap4flags internal variable.
    pub flags: Vec<String>,
    /// How many of `actions` the caller has already carried out (Pigeonhole's multiscript
    /// execution between scripts); they no longer conflict with new ones.
    pub executed: usize,
    pub match_vars: Vec<String>,
    /// Problems that did not stop the run (a regular expression made at run time that does
    /// not compile matches nothing), for the log.
    pub warnings: Vec<String>,
    pub now: DateTime<FixedOffset>,
    frames: Vec<Frame>,
    globals: HashMap<String, String>,
    steps: u64,
    included: HashSet<(bool, String)>,
    includes: usize,
    redirects: usize,
    started: std::time::Instant,
    /// The last edited copy of the message (by `Message::version`) and what all copies took.
    last_snapshot: Option<(u64, std::sync::Arc<Vec<u8>>)>,
    snapshot_bytes: usize,
}

/// The machine's UTC offset, looked up once (it reads the zone database).
fn local_zone() -> FixedOffset {
    static Z: std::sync::OnceLock<FixedOffset> = std::sync::OnceLock::new();
    *Z.get_or_init(|| *chrono::Local::now().offset())
}

fn rerr<T>(n: &Node, msg: impl Into<String>) -> RResult<T> {
    Err(RuntimeError::new(n.line, msg))
}

impl Runtime {
    pub fn new(
        compiler: Compiler,
        config: Config,
        message: Message,
        envelope: Envelope,
    ) -> Runtime {
        Runtime {
            compiler,
            config,
            message,
            envelope,
            actions: Vec::new(),
            implicit_keep: true,
            flags: Vec::new(),
            executed: 0,
            match_vars: Vec::new(),
            warnings: Vec::new(),
            now: chrono::Utc::now().fixed_offset(),
            frames: Vec::new(),
            globals: HashMap::new(),
            steps: 0,
            included: HashSet::new(),
            includes: 0,
            redirects: 0,
            started: std::time::Instant::now(),
            last_snapshot: None,
            snapshot_bytes: 0,
        }
    }

    /// Forgets the actions of an earlier run (the message, envelope and global variables stay).
    pub fn reset_result(&mut self) {
        self.actions.clear();
        self.executed = 0;
        self.last_snapshot = None;
        self.snapshot_bytes = 0;
        self.warnings.clear();
        self.implicit_keep = true;
        self.flags.clear();
        self.redirects = 0;
        self.steps = 0;
        self.started = std::time::Instant::now();
        self.included.clear();
        self.includes = 0;
    }

    /// Runs a script. On error the caller keeps the message (RFC 5228 2.10.6).
    pub fn run(&mut self, host: &mut dyn Host, script: &Script) -> RResult<()> {
        self.run_frame(host, script, "main")?;
        Ok(())
    }

    /// Runs `f` with global variables of its own (a separate execution, as a test suite's
    /// script run is), then puts the caller's back.
    pub fn with_own_globals<R>(&mut self, f: impl FnOnce(&mut Runtime) -> R) -> R {
        let saved = std::mem::take(&mut self.globals);
        let r = f(self);
        self.globals = saved;
        r
    }

    /// Runs scripts one after the other as Pigeonhole chains `sieve_before`, the user's
    /// script and `sieve_after`: the next script runs only while the message would still be
    /// kept (implicitly or by `keep`); an earlier script's explicit keep is folded into the
    /// implicit keep the chain ends with. The error names the script (its index) that failed.
    pub fn run_chain(
        &mut self,
        host: &mut dyn Host,
        scripts: &[&Script],
    ) -> Result<(), (usize, RuntimeError)> {
        for (i, script) in scripts.iter().enumerate() {
            self.run(host, script).map_err(|e| (i, e))?;
            if i + 1 == scripts.len() {
                break;
            }
            let kept = self
                .actions
                .iter()
                .any(|a| matches!(a, Action::Keep { .. }));
            if !self.implicit_keep && !kept {
                break;
            }
            self.actions.retain(|a| !matches!(a, Action::Keep { .. }));
            self.implicit_keep = true;
            // Pigeonhole carries out each script's result before the next one runs: those
            // actions no longer conflict with the next script's (a reject after a
            // fileinto :copy of sieve_before).
            self.executed = self.actions.len();
        }
        Ok(())
    }

    fn run_frame(&mut self, host: &mut dyn Host, script: &Script, name: &str) -> RResult<Flow> {
        self.frames.push(Frame {
            variables: script.requires("variables"),
            name: name.to_string(),
            ..Frame::default()
        });
        let r = self.exec_block(host, &script.commands);
        self.frames.pop();
        r
    }

    /// The final actions: the script's, then the implicit keep when nothing cancelled it.
    pub fn result(&self) -> Vec<Action> {
        let mut out = self.actions.clone();
        if self.implicit_keep && !out.iter().any(|a| matches!(a, Action::Keep { .. })) {
            out.push(Action::Keep {
                flags: self.flags.clone(),
                implicit: true,
                message: self
                    .message
                    .edited
                    .then(|| std::sync::Arc::new(self.message.to_bytes())),
            });
        }
        out
    }

    pub fn exec_block(&mut self, host: &mut dyn Host, nodes: &[Node]) -> RResult<Flow> {
        let mut skip_chain = false;
        for n in nodes {
            match n.name.as_str() {
                "require" => continue,
                "if" => skip_chain = false,
                "elsif" | "else" if skip_chain => continue,
                "elsif" | "else" => {}
                _ => skip_chain = false,
            }
            if matches!(n.name.as_str(), "if" | "elsif" | "else") {
                let hit = match n.tests.first() {
                    Some(t) => self.eval(host, t)?,
                    None => true,
                };
                if hit {
                    skip_chain = true;
                    let f = self.exec_block(host, n.block.as_deref().unwrap_or_default())?;
                    if f != Flow::Next {
                        return Ok(f);
                    }
                }
                continue;
            }
            let f = self.exec(host, n)?;
            if f != Flow::Next {
                return Ok(f);
            }
        }
        Ok(Flow::Next)
    }

    fn step(&mut self, n: &Node) -> RResult<()> {
        self.steps += 1;
        if self.steps > self.config.limits.max_steps {
            return rerr(n, "execution exceeded the CPU/step limit");
        }
        if self.started.elapsed() > self.config.limits.max_time {
            return rerr(n, "execution exceeded the CPU time limit");
        }
        Ok(())
    }

    // ---- variables ----

    fn frame(&self) -> Option<&Frame> {
        self.frames.last()
    }

    /// Expands variables in a string of the running script (when it requires "variables").
    pub fn s(&self, raw: &str) -> String {
        match self.frame() {
            Some(f) if f.variables => {
                // Only variables are held to max_variable_size; an expanded string may be
                // longer (a key made of a variable and more text), within a fixed bound.
                let bound = self
                    .config
                    .limits
                    .max_variable_size
                    .saturating_mul(16)
                    .max(64 << 10);
                variables::expand(raw, bound, |r| self.lookup(r))
            }
            _ => raw.to_string(),
        }
    }

    pub fn sl(&self, raw: &[String]) -> Vec<String> {
        raw.iter().map(|s| self.s(s)).collect()
    }

    fn lookup(&self, r: VarRef<'_>) -> String {
        match r {
            VarRef::Match(i) => self.match_vars.get(i).cloned().unwrap_or_default(),
            VarRef::Named(n) => self.get_var(n).unwrap_or_default(),
        }
    }

    pub fn get_var(&self, name: &str) -> Option<String> {
        let n = name.to_ascii_lowercase();
        if let Some(g) = n.strip_prefix("global.") {
            return self.globals.get(g).cloned();
        }
        let f = self.frame()?;
        if f.globals.contains(&n) {
            return self.globals.get(&n).cloned();
        }
        f.vars.get(&n).cloned()
    }

    pub fn set_var(&mut self, n: &Node, name: &str, mut value: String) -> RResult<()> {
        variables::truncate(&mut value, self.config.limits.max_variable_size);
        let name = name.to_ascii_lowercase();
        let max = self.config.limits.max_variables;
        let (map, key) = match name.strip_prefix("global.") {
            Some(g) => (&mut self.globals, g.to_string()),
            None => {
                let Some(f) = self.frames.last_mut() else {
                    return rerr(n, "no running script");
                };
                if f.globals.contains(&name) {
                    (&mut self.globals, name)
                } else {
                    (&mut f.vars, name)
                }
            }
        };
        if !map.contains_key(&key) && map.len() >= max {
            return rerr(n, "too many variables");
        }
        map.insert(key, value);
        Ok(())
    }

    fn set_match_vars(&mut self, caps: Vec<String>) {
        if self.frame().is_some_and(|f| f.variables) {
            self.match_vars = caps;
            self.match_vars.truncate(256);
        }
    }

    // ---- matching ----

    fn match_type(&self, n: &Node) -> MatchType {
        if n.has_tag("contains") {
            MatchType::Contains
        } else if n.has_tag("matches") {
            MatchType::Matches
        } else if n.has_tag("regex") {
            MatchType::Regex
        } else if let Some(op) = n.tag_str("value").and_then(RelOp::parse) {
            MatchType::Value(op)
        } else if let Some(op) = n.tag_str("count").and_then(RelOp::parse) {
            MatchType::Count(op)
        } else {
            MatchType::Is
        }
    }

    fn comparator(&self, n: &Node) -> Comparator {
        // RFC 5235 3: spamtest and virustest compare numbers unless told otherwise.
        let default = if matches!(n.name.as_str(), "spamtest" | "virustest") {
            Comparator::AsciiNumeric
        } else {
            Comparator::AsciiCasemap
        };
        n.tag_str("comparator")
            .and_then(Comparator::parse)
            .unwrap_or(default)
    }

    /// The generic match of a test: any value against any key.
    pub fn match_values(&mut self, n: &Node, values: &[String], keys: &[String]) -> bool {
        let mt = self.match_type(n);
        let cmp = self.comparator(n);
        if let MatchType::Count(op) = mt {
            let count = values.len().to_string();
            return keys
                .iter()
                .any(|k| matching::matches(MatchType::Count(op), cmp, &count, k, None));
        }
        if mt == MatchType::Regex {
            for k in keys.iter().filter(|k| !matching::regex_valid(k)) {
                if self.warnings.len() < 32 {
                    self.warnings.push(format!(
                        "line {}: invalid regular expression '{k}' (matches nothing)",
                        n.line
                    ));
                }
            }
        }
        let capture = matches!(mt, MatchType::Matches | MatchType::Regex);
        let mut caps = Vec::new();
        for v in values {
            for k in keys {
                if matching::matches(mt, cmp, v, k, capture.then_some(&mut caps)) {
                    if capture {
                        self.set_match_vars(std::mem::take(&mut caps));
                    }
                    return true;
                }
            }
        }
        false
    }

    /// Applies :index/:last (RFC 5260 7) to the occurrences of one field.
    fn pick_index<T>(&self, n: &Node, mut v: Vec<T>) -> Vec<T> {
        let Some(i) = n.tag_num("index") else {
            return v;
        };
        let i = i as usize;
        if i == 0 || i > v.len() {
            return Vec::new();
        }
        let at = if n.has_tag("last") {
            v.len() - i
        } else {
            i - 1
        };
        vec![v.swap_remove(at)]
    }

    // ---- tests ----

    pub fn eval(&mut self, host: &mut dyn Host, n: &Node) -> RResult<bool> {
        self.step(n)?;
        Ok(match n.name.as_str() {
            "true" => true,
            "false" => false,
            "not" => match n.tests.first() {
                Some(t) => !self.eval(host, t)?,
                None => false,
            },
            "allof" => {
                for t in &n.tests {
                    if !self.eval(host, t)? {
                        return Ok(false);
                    }
                }
                true
            }
            "anyof" => {
                for t in &n.tests {
                    if self.eval(host, t)? {
                        return Ok(true);
                    }
                }
                false
            }
            "header" => {
                let names = self.sl(&n.list(0));
                let keys = self.sl(&n.list(1));
                let mut values = Vec::new();
                for name in &names {
                    values.extend(self.pick_index(n, self.message.values(name)));
                }
                self.match_values(n, &values, &keys)
            }
            "address" => {
                let names = self.sl(&n.list(0));
                let keys = self.sl(&n.list(1));
                let part = Part::from_tags(|t| n.has_tag(t));
                let mut values = Vec::new();
                for name in &names {
                    let fields: Vec<String> = self
                        .message
                        .raw_values(name)
                        .map(crate::message::unfold)
                        .collect();
                    for f in self.pick_index(n, fields) {
                        for a in address::parse_header(&f) {
                            values.extend(part.extract(&a, &self.config.subaddress_separator));
                        }
                    }
                }
                self.match_values(n, &values, &keys)
            }
            "envelope" => {
                let parts = self.sl(&n.list(0));
                let keys = self.sl(&n.list(1));
                let part = Part::from_tags(|t| n.has_tag(t));
                let mut values = Vec::new();
                for p in parts {
                    let a = match p.to_ascii_lowercase().as_str() {
                        "from" => Some(self.envelope.from.clone()),
                        "to" => Some(self.envelope.to.clone()),
                        "auth" => {
                            // Not a path: the authenticated name as it is.
                            if let Some(auth) = &self.envelope.auth {
                                let parsed = Parsed::from_spec(auth);
                                values.extend(
                                    part.extract(&parsed, &self.config.subaddress_separator),
                                );
                            }
                            None
                        }
                        _ => None,
                    };
                    if let Some(parsed) = a.as_deref().and_then(address::parse_path) {
                        if parsed.all.is_empty() {
                            // The null path: every part is empty, except there is no detail.
                            if part != Part::Detail {
                                values.push(String::new());
                            }
                        } else {
                            values.extend(part.extract(&parsed, &self.config.subaddress_separator));
                        }
                    }
                }
                self.match_values(n, &values, &keys)
            }
            "exists" => {
                let names = self.sl(&n.list(0));
                names.iter().all(|h| self.message.exists(h))
            }
            "size" => {
                let size = self.message.size();
                let limit = n.num(0);
                if n.has_tag("over") {
                    size > limit
                } else {
                    size < limit
                }
            }
            "string" => {
                let values: Vec<String> = self.sl(&n.list(0));
                let keys = self.sl(&n.list(1));
                // RFC 5229 5: empty strings are not counted by :count.
                let values: Vec<String> = if matches!(self.match_type(n), MatchType::Count(_)) {
                    values.into_iter().filter(|v| !v.is_empty()).collect()
                } else {
                    values
                };
                self.match_values(n, &values, &keys)
            }
            "hasflag" => {
                // Each key string is itself a space-separated list of flags.
                let keys = split_flags(&self.sl(&n.list(1)));
                let flags = match n.pos.first() {
                    Some(Arg::Tag(_)) | None => self.flags.clone(),
                    Some(_) => {
                        let mut all = Vec::new();
                        for v in self.sl(&n.list(0)) {
                            let val = self.get_var(&v).unwrap_or_default();
                            all.extend(split_flags(&[val]));
                        }
                        all
                    }
                };
                self.match_values(n, &flags, &keys)
            }
            "mailboxexists" => {
                let names = self.sl(&n.list(0));
                names.iter().all(|m| host.mailbox_exists(m))
            }
            "specialuse_exists" => {
                let mailbox = match n.pos.first() {
                    Some(Arg::Str(s)) => Some(self.s(s)),
                    _ => None,
                };
                let uses = self.sl(&n.list(1));
                host.special_use_exists(mailbox.as_deref(), &uses)
            }
            "body" => {
                let keys = self.sl(&n.list(0));
                let raw = n.has_tag("raw");
                let types = match n.tag_list("content") {
                    Some(t) => self.sl(&t),
                    None => vec!["text".to_string()],
                };
                let text = !raw && !n.has_tag("content");
                let values = self.message.body_values(raw, &types, text);
                // The body test leaves the match variables alone (RFC 5173 5).
                let saved = self.match_vars.clone();
                let hit = self.match_values(n, &values, &keys);
                self.match_vars = saved;
                hit
            }
            "date" => {
                let name = self.s(&n.string(0));
                let part = self.s(&n.string(1));
                let keys = self.sl(&n.list(2));
                let fields = self.message.values(&name);
                let mut values = Vec::new();
                for f in self.pick_index(n, fields) {
                    // Received: the date follows the last ';'.
                    let text = if name.eq_ignore_ascii_case("received") {
                        f.rsplit_once(';')
                            .map_or(f.as_str(), |(_, d)| d)
                            .to_string()
                    } else {
                        f
                    };
                    let Some(d) = date::parse_header_date(&text) else {
                        continue;
                    };
                    let d = self.zoned(n, d);
                    values.extend(date::part(&d, &part));
                }
                self.match_values(n, &values, &keys)
            }
            "currentdate" => {
                let part = self.s(&n.string(0));
                let keys = self.sl(&n.list(1));
                let d = self.zoned(n, self.now);
                let values: Vec<String> = date::part(&d, &part).into_iter().collect();
                self.match_values(n, &values, &keys)
            }
            "environment" => {
                let name = self.s(&n.string(0)).to_ascii_lowercase();
                let keys = self.sl(&n.list(1));
                match self.config.environment.get(&name).cloned() {
                    Some(v) => self.match_values(n, &[v], &keys),
                    // An unknown item matches nothing, not even :count (RFC 5183 4).
                    None => false,
                }
            }
            "spamtest" | "virustest" => {
                let keys = vec![self.s(&n.string(0))];
                let (test, top) = if n.name == "spamtest" {
                    (&self.config.spamtest, 10)
                } else {
                    (&self.config.virustest, 5)
                };
                let value = match test {
                    Some(t) => t.value(&self.message, top, n.has_tag("percent")),
                    None => "0".to_string(),
                };
                self.match_values(n, &[value], &keys)
            }
            "ihave" => {
                let caps = n.list(0);
                caps.iter()
                    .all(|c| crate::compile::ihave_supports(&self.compiler, c))
            }
            "duplicate" => {
                let id = if let Some(u) = n.tag_str("uniqueid") {
                    self.s(u)
                } else {
                    let h = n
                        .tag_str("header")
                        .map(|h| self.s(h))
                        .unwrap_or_else(|| "message-id".into());
                    match self.message.values(&h).into_iter().next() {
                        Some(v) => v,
                        None => return Ok(false),
                    }
                };
                let handle = n.tag_str("handle").map(|h| self.s(h)).unwrap_or_default();
                let period = n.tag_num("seconds").unwrap_or(7 * 86_400);
                host.duplicate(&format!("{handle}\0{id}"), period, n.has_tag("last"))
            }
            _ => match host.test(self, n) {
                Some(r) => r?,
                None => return rerr(n, format!("unsupported test '{}'", n.name)),
            },
        })
    }

    fn zoned(&self, n: &Node, d: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        if n.has_tag("originalzone") {
            return d;
        }
        let zone = match n.tag_str("zone") {
            Some(z) => date::parse_zone(&self.s(z)).unwrap_or(self.config.local_zone),
            None => self.config.local_zone,
        };
        d.with_timezone(&zone)
    }

    // ---- commands ----

    /// The message as it is now, when editheader changed it: one copy per edited state,
    /// shared by the actions taken in it, and all copies together bounded
    /// (`Limits::max_snapshot_bytes`) so a script alternating edits and actions cannot
    /// multiply a large message in memory.
    fn snapshot(&mut self, n: &Node) -> RResult<crate::action::Snapshot> {
        if !self.message.edited {
            return Ok(None);
        }
        if let Some((v, s)) = &self.last_snapshot {
            if *v == self.message.version {
                return Ok(Some(s.clone()));
            }
        }
        let bytes = std::sync::Arc::new(self.message.to_bytes());
        self.snapshot_bytes += bytes.len();
        if self.snapshot_bytes > self.config.limits.max_snapshot_bytes {
            return rerr(n, "edited copies of the message exceed the memory limit");
        }
        self.last_snapshot = Some((self.message.version, bytes.clone()));
        Ok(Some(bytes))
    }

    fn push_action(&mut self, n: &Node, a: Action) -> RResult<()> {
        if self.actions.len() >= self.config.limits.max_actions {
            return rerr(
                n,
                format!(
                    "total number of actions exceeds policy limit ({} > {})",
                    self.actions.len() + 1,
                    self.config.limits.max_actions
                ),
            );
        }
        self.actions.push(a);
        Ok(())
    }

    fn flags_arg(&self, n: &Node) -> Vec<String> {
        match n.tag_list("flags") {
            Some(l) => split_flags(&self.sl(&l)),
            None => self.flags.clone(),
        }
    }

    fn check_reject_conflict(&self, n: &Node, rejecting: bool) -> RResult<()> {
        // Actions already carried out (an earlier script's, in a chain) no longer conflict.
        let pending = self.actions.get(self.executed..).unwrap_or_default();
        let conflict = pending.iter().any(|a| {
            if rejecting {
                matches!(
                    a,
                    Action::Keep { .. }
                        | Action::FileInto { .. }
                        | Action::Redirect { .. }
                        | Action::Vacation(_)
                        | Action::Reject { .. }
                )
            } else {
                matches!(a, Action::Reject { .. })
            }
        });
        if conflict {
            return rerr(
                n,
                format!("the {} action conflicts with an earlier action", n.name),
            );
        }
        Ok(())
    }

    pub fn exec(&mut self, host: &mut dyn Host, n: &Node) -> RResult<Flow> {
        self.step(n)?;
        match n.name.as_str() {
            "stop" => return Ok(Flow::Stop),
            "return" => return Ok(Flow::Return),
            "keep" => {
                self.check_reject_conflict(n, false)?;
                let flags = self.flags_arg(n);
                self.implicit_keep = false;
                let snapshot = self.snapshot(n)?;
                let dup = self.actions.iter_mut().find(|a| match a {
                    Action::Keep { .. } => true,
                    Action::FileInto { mailbox, .. } => mailbox.eq_ignore_ascii_case("INBOX"),
                    _ => false,
                });
                match dup {
                    // Duplicates are merged, the last flag list winning (RFC 5232 3.2); a
                    // fileinto "INBOX" becomes the keep (Pigeonhole shows it so).
                    Some(a) => {
                        *a = Action::Keep {
                            flags,
                            implicit: false,
                            message: snapshot,
                        }
                    }
                    None => self.push_action(
                        n,
                        Action::Keep {
                            flags,
                            implicit: false,
                            message: snapshot,
                        },
                    )?,
                }
            }
            "discard" => {
                self.implicit_keep = false;
                if !self.actions.contains(&Action::Discard) {
                    self.push_action(n, Action::Discard)?;
                }
            }
            "redirect" => {
                self.check_reject_conflict(n, false)?;
                let raw = self.s(&n.string(0));
                let Some(address) = address::normalize(&raw) else {
                    return rerr(n, format!("redirect: invalid address '{raw}'"));
                };
                let copy = n.has_tag("copy");
                if !copy {
                    self.implicit_keep = false;
                }
                let dup = self.actions.iter().any(|a| matches!(a, Action::Redirect { address: x, .. } if x.eq_ignore_ascii_case(&address)));
                if !dup {
                    self.redirects += 1;
                    if self.redirects > self.config.limits.max_redirects {
                        return rerr(
                            n,
                            format!(
                                "number of redirect actions exceeds policy limit ({} > {})",
                                self.redirects, self.config.limits.max_redirects
                            ),
                        );
                    }
                    let message = self.snapshot(n)?;
                    self.push_action(
                        n,
                        Action::Redirect {
                            address,
                            copy,
                            message,
                        },
                    )?;
                }
            }
            "fileinto" => {
                self.check_reject_conflict(n, false)?;
                let mailbox = self.s(&n.string(0));
                if mailbox.is_empty() || mailbox.chars().any(|c| c.is_control() || c == '\u{fffd}')
                {
                    return rerr(
                        n,
                        format!("fileinto: invalid folder name '{mailbox}' (not UTF-8 text)"),
                    );
                }
                let flags = self.flags_arg(n);
                let copy = n.has_tag("copy");
                if !copy {
                    self.implicit_keep = false;
                }
                let special_use = n.tag_str("specialuse").map(|s| self.s(s));
                let inbox = mailbox.eq_ignore_ascii_case("INBOX");
                let snapshot = self.snapshot(n)?;
                let dup = self.actions.iter_mut().find_map(|a| match a {
                    Action::FileInto {
                        mailbox: m,
                        flags: f,
                        ..
                    } if *m == mailbox => Some(f),
                    Action::Keep { flags: f, .. } if inbox => Some(f),
                    _ => None,
                });
                match dup {
                    // Duplicates are merged; the last flag list wins (RFC 5232 3.2).
                    Some(f) => *f = flags,
                    None => self.push_action(
                        n,
                        Action::FileInto {
                            mailbox,
                            flags,
                            copy,
                            create: n.has_tag("create"),
                            special_use,
                            message: snapshot,
                        },
                    )?,
                }
            }
            "reject" | "ereject" => {
                // A reject after one already carried out is the same refusal: dropped.
                let done = self.actions.get(..self.executed).unwrap_or_default();
                if done.iter().any(|a| matches!(a, Action::Reject { .. })) {
                    return Ok(Flow::Next);
                }
                self.check_reject_conflict(n, true)?;
                let reason = self.s(&n.string(0));
                self.implicit_keep = false;
                self.push_action(
                    n,
                    Action::Reject {
                        reason,
                        extended: n.name == "ereject",
                    },
                )?;
            }
            "vacation" => {
                self.check_reject_conflict(n, false)?;
                if self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Vacation(_)))
                {
                    return rerr(n, "duplicate vacation action");
                }
                let v = self.vacation(n);
                self.push_action(n, Action::Vacation(v))?;
            }
            "setflag" | "addflag" | "removeflag" => {
                let new = split_flags(&self.sl(&n.list(1)));
                let var = match n.pos.first() {
                    Some(Arg::Str(s)) => Some(self.s(s)),
                    _ => None,
                };
                let mut cur = match &var {
                    Some(v) => split_flags(&[self.get_var(v).unwrap_or_default()]),
                    None => self.flags.clone(),
                };
                match n.name.as_str() {
                    "setflag" => {
                        cur.clear();
                        merge_flags(&mut cur, new);
                    }
                    "addflag" => merge_flags(&mut cur, new),
                    _ => cur.retain(|f| !new.iter().any(|x| x.eq_ignore_ascii_case(f))),
                }
                match var {
                    Some(v) => self.set_var(n, &v, cur.join(" "))?,
                    None => self.flags = cur,
                }
            }
            "set" => {
                let name = n.string(0);
                let value = self.s(&n.string(1));
                let mods: Vec<&str> = n.tags.iter().map(|(t, _)| t.as_str()).collect();
                let value =
                    variables::apply_modifiers(value, &mods, self.config.limits.max_variable_size);
                self.set_var(n, &name, value)?;
            }
            "global" => {
                let names = n.list(0);
                if let Some(f) = self.frames.last_mut() {
                    for name in names {
                        f.globals.insert(name.to_ascii_lowercase());
                    }
                }
            }
            "include" => return self.include(host, n),
            "error" => return rerr(n, self.s(&n.string(0))),
            "addheader" => {
                let name = self.s(&n.string(0));
                let value = self.s(&n.string(1));
                if !valid_field_name(&name) {
                    return rerr(n, format!("addheader: field name '{name}' is invalid"));
                }
                if value.contains('\0') {
                    return rerr(n, "addheader: value with a NUL character is invalid");
                }
                if value.len() > self.config.limits.max_header_size {
                    return rerr(n, "addheader: value too long");
                }
                // Bounds what a script can add to a message.
                if self.message.fields.len() >= 10_000 {
                    return rerr(n, "addheader: too many header fields");
                }
                let forbidden = self
                    .config
                    .editheader_forbid_add
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&name));
                // Received and Auto-Submitted are protected from deletion only (RFC 5293 9:
                // adding a trace or an Auto-Submitted field is harmless).
                if !forbidden {
                    self.message.add_field(&name, &value, n.has_tag("last"));
                }
            }
            "deleteheader" => self.deleteheader(n)?,
            _ => match host.command(self, n) {
                Some(r) => return r,
                None => return rerr(n, format!("unsupported command '{}'", n.name)),
            },
        }
        Ok(Flow::Next)
    }

    fn vacation(&self, n: &Node) -> Vacation {
        let c = &self.config;
        let period = match (n.tag_num("days"), n.tag_num("seconds")) {
            (Some(d), _) => d.saturating_mul(86_400),
            (None, Some(s)) => s,
            (None, None) => c.vacation_default_period,
        };
        let period = if period == 0 && c.vacation_min_period == 0 {
            0
        } else {
            period.clamp(
                c.vacation_min_period,
                c.vacation_max_period.max(c.vacation_min_period),
            )
        };
        let reason = self.s(&n.string(0));
        let subject = n.tag_str("subject").map(|s| self.s(s));
        let from = n.tag_str("from").map(|s| self.s(s));
        let addresses = n
            .tag_list("addresses")
            .map(|l| self.sl(&l))
            .unwrap_or_default();
        let mime = n.has_tag("mime");
        let handle = match n.tag_str("handle") {
            Some(h) => self.s(h),
            None => vacation::default_handle(&reason, subject.as_deref(), from.as_deref(), mime),
        };
        // The handle is made from what the script said; the configured defaults only shape
        // the reply.
        let orig = self.message.values("subject").into_iter().next();
        let subject = match subject {
            Some(s) => Some(s),
            None => match orig {
                Some(o) if !c.vacation_default_subject_template.is_empty() => Some(
                    c.vacation_default_subject_template
                        .replace("%{subject}", &o)
                        .replace("%$", &o),
                ),
                _ if !c.vacation_default_subject.is_empty() => {
                    Some(c.vacation_default_subject.clone())
                }
                _ => None,
            },
        };
        Vacation {
            to_ignore_envelope: c.vacation_to_header_ignore_envelope,
            reason,
            subject,
            from,
            addresses,
            mime,
            handle,
            period,
        }
    }

    fn include(&mut self, host: &mut dyn Host, n: &Node) -> RResult<Flow> {
        let name = self.s(&n.string(0));
        let name = crate::compile::script_name(&name).to_string();
        let global = n.has_tag("global");
        let key = (global, name.clone());
        if n.has_tag("once") && self.included.contains(&key) {
            return Ok(Flow::Next);
        }
        if self
            .frames
            .iter()
            .any(|f| f.name == format!("{global}:{name}"))
        {
            return rerr(n, format!("include: recursion through script '{name}'"));
        }
        if self.frames.len() > self.config.limits.max_include_depth {
            return rerr(n, "include: nesting too deep");
        }
        self.includes += 1;
        if self.includes > self.config.limits.max_includes {
            return rerr(n, "include: too many included scripts");
        }
        let src = match host.load_script(global, &name) {
            Ok(Some(s)) => s,
            Ok(None) if n.has_tag("optional") => return Ok(Flow::Next),
            Ok(None) => return rerr(n, format!("include: script '{name}' does not exist")),
            Err(e) => return rerr(n, format!("include: script '{name}': {e}")),
        };
        let script = self.compiler.compile(&src).map_err(|e| {
            RuntimeError::new(
                n.line,
                format!("include: script '{name}' failed to compile: {e}"),
            )
        })?;
        self.included.insert(key);
        let flow = self.run_frame(host, &script, &format!("{global}:{name}"))?;
        Ok(if flow == Flow::Stop {
            Flow::Stop
        } else {
            Flow::Next
        })
    }

    fn deleteheader(&mut self, n: &Node) -> RResult<()> {
        let name = self.s(&n.string(0));
        let forbidden = self
            .config
            .editheader_forbid_delete
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name));
        if protected(&name) || forbidden {
            return Ok(());
        }
        let patterns = if n.pos.len() > 1 {
            Some(self.sl(&n.list(1)))
        } else {
            None
        };
        let idx: Vec<usize> = self
            .message
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.eq_ignore_ascii_case(&name))
            .map(|(i, _)| i)
            .collect();
        let idx = self.pick_index(n, idx);
        let mut doomed = Vec::new();
        for i in idx {
            let Some(f) = self.message.fields.get(i) else {
                continue;
            };
            let value = crate::message::decode_value(&f.raw);
            let hit = match &patterns {
                None => true,
                Some(p) => self.match_values(n, &[value], p),
            };
            if hit {
                doomed.push(i);
            }
        }
        if !doomed.is_empty() {
            let mut i = 0;
            self.message.fields.retain(|_| {
                let keep = !doomed.contains(&i);
                i += 1;
                keep
            });
            self.message.edited = true;
            self.message.version += 1;
        }
        Ok(())
    }
}

/// RFC 5293 9: these fields are never removed by a script.
fn protected(name: &str) -> bool {
    name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("auto-submitted")
}

pub fn valid_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// Flag lists: each string may hold several space-separated flags.
pub fn split_flags(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        for f in s.split_whitespace() {
            if !out.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                out.push(f.to_string());
            }
        }
    }
    out
}

fn merge_flags(into: &mut Vec<String>, new: Vec<String>) {
    for f in new {
        if !into.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
            into.push(f);
        }
    }
}
