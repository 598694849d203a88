//! The validator: binds arguments to each command's signature, checks that every extension used
//! was required, and decodes encoded characters (RFC 5228 section 2.4.2.4).

use crate::ast::{Arg, Node};
use crate::error::{CompileError, CompileErrors, Warning};
use crate::spec::{self, Block, Spec, Tests, Ty};
use crate::{lexer, parser};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Compiled scripts stop at this many errors (Pigeonhole's limit too).
const MAX_ERRORS: usize = 100;
/// Pigeonhole's limits on variables: the name's length, the highest match variable, and how
/// many variables one script sets.
const MAX_VARIABLE_NAME: usize = 64;
const MAX_MATCH_INDEX: usize = 32;
const MAX_SCRIPT_VARIABLES: usize = 255;

/// A script checked and ready to run.
#[derive(Clone, Debug)]
pub struct Script {
    pub commands: Vec<Node>,
    pub required: HashSet<String>,
    /// What the compiler warned about (the script is valid all the same).
    pub warnings: Vec<Warning>,
}

impl Script {
    pub fn requires(&self, ext: &str) -> bool {
        self.required.contains(ext)
    }
}

/// Knows the signatures; extra extensions (the test suite's) can be added.
#[derive(Clone)]
pub struct Compiler {
    // Shared: a compiler is cloned into every run (includes compile with it).
    specs: Arc<HashMap<&'static str, Spec>>,
    caps: Arc<HashSet<String>>,
    /// `sieve_editheader_max_header_size`: a longer constant addheader value is an error.
    pub max_header_size: usize,
    /// `sieve_include_max_includes` and `sieve_include_max_nesting_depth`, for
    /// [`Compiler::compile_with_includes`].
    pub max_includes: usize,
    pub max_include_depth: usize,
}

/// Where [`Compiler::compile_with_includes`] finds included scripts: (global, name) to the
/// script's text, `Ok(None)` when there is none.
pub type Loader<'a> = dyn FnMut(bool, &str) -> Result<Option<String>, String> + 'a;

impl Default for Compiler {
    fn default() -> Self {
        Compiler::new()
    }
}

impl Compiler {
    pub fn new() -> Compiler {
        let specs = spec::builtin().into_iter().map(|s| (s.name, s)).collect();
        Compiler {
            specs: Arc::new(specs),
            caps: Arc::new(spec::CAPABILITIES.iter().map(|s| s.to_string()).collect()),
            max_header_size: crate::interp::Limits::default().max_header_size,
            max_includes: crate::interp::Limits::default().max_includes,
            max_include_depth: crate::interp::Limits::default().max_include_depth,
        }
    }

    /// Adds a capability and the commands and tests it brings.
    pub fn add_extension(&mut self, capability: &str, specs: Vec<Spec>) {
        Arc::make_mut(&mut self.caps).insert(capability.to_string());
        let map = Arc::make_mut(&mut self.specs);
        for s in specs {
            map.insert(s.name, s);
        }
    }

    /// Removes a capability (an operator can disable an extension).
    pub fn disable(&mut self, capability: &str) {
        Arc::make_mut(&mut self.caps).remove(capability);
    }

    pub fn supports(&self, capability: &str) -> bool {
        self.caps.contains(capability)
    }

    pub fn capabilities(&self) -> Vec<String> {
        let mut v: Vec<String> = self.caps.iter().cloned().collect();
        v.sort();
        v
    }

    pub fn compile(&self, src: &str) -> Result<Script, CompileErrors> {
        self.compile_in(src, None)
    }

    /// Compiles a script and every script it includes by a constant name, as Pigeonhole
    /// does when a script is stored: a missing script (not `:optional`), one that does not
    /// compile, a circular include and the include limits are errors now rather than at
    /// delivery. Includes named by variables are left to run time.
    pub fn compile_with_includes(
        &self,
        src: &str,
        load: &mut Loader<'_>,
    ) -> Result<Script, CompileErrors> {
        let mut inc = Includes {
            load,
            stack: Vec::new(),
            count: 0,
        };
        self.compile_in(src, Some(&mut inc))
    }

    fn compile_in(
        &self,
        src: &str,
        inc: Option<&mut Includes<'_>>,
    ) -> Result<Script, CompileErrors> {
        let (toks, mut errors) = lexer::tokenize(src);
        // Lexical and syntax errors are reported together, in script order; a script that
        // does not parse is not validated (Pigeonhole's order too).
        let parsed = parser::parse(toks);
        let mut commands = match parsed {
            Ok(c) if errors.is_empty() => c,
            Ok(_) => {
                errors.truncate(MAX_ERRORS);
                return Err(CompileErrors::new(errors));
            }
            Err(mut more) => {
                errors.append(&mut more);
                errors.sort_by_key(|e| (e.line, e.col));
                errors.truncate(MAX_ERRORS);
                return Err(CompileErrors::new(errors));
            }
        };
        let mut v = Validator {
            c: self,
            required: HashSet::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            variables: HashSet::new(),
            unknown_tag: false,
            inc,
        };
        v.block(&mut commands, true);
        if v.errors.is_empty() {
            Ok(Script {
                commands,
                required: v.required,
                warnings: v.warnings,
            })
        } else {
            v.errors.truncate(MAX_ERRORS);
            Err(CompileErrors {
                errors: v.errors,
                warnings: v.warnings,
            })
        }
    }

    /// The errors of one include (by a constant name) and of what it includes.
    fn resolve_include(&self, n: &Node, inc: &mut Includes<'_>) -> Vec<CompileError> {
        let name = script_name(&n.string(0)).to_string();
        let global = n.has_tag("global");
        let err = |m: String| vec![CompileError::new(n.line, n.col, m)];
        inc.count += 1;
        if inc.count > self.max_includes {
            return err(format!(
                "include: more than {} included scripts",
                self.max_includes
            ));
        }
        if inc.stack.contains(&(global, name.clone())) {
            return err(format!("include: circular include of script '{name}'"));
        }
        if inc.stack.len() >= self.max_include_depth {
            return err(format!(
                "include: script '{name}' is nested deeper than {} levels",
                self.max_include_depth
            ));
        }
        let src = match (inc.load)(global, &name) {
            Ok(Some(s)) => s,
            Ok(None) if n.has_tag("optional") => return Vec::new(),
            Ok(None) => return err(format!("included script '{name}' does not exist")),
            Err(e) => return err(format!("included script '{name}': {e}")),
        };
        inc.stack.push((global, name.clone()));
        let r = self.compile_in(&src, Some(&mut *inc));
        inc.stack.pop();
        match r {
            Ok(_) => Vec::new(),
            Err(mut e) => {
                e.errors.push(CompileError::new(
                    n.line,
                    n.col,
                    format!("failed to compile included script '{name}'"),
                ));
                e.errors
            }
        }
    }
}

/// The state of [`Compiler::compile_with_includes`]: the loader, the scripts being
/// compiled (for circular includes and the depth) and how many were included.
struct Includes<'l> {
    load: &'l mut Loader<'l>,
    stack: Vec<(bool, String)>,
    count: usize,
}

/// An include's script name: a trailing ".sieve" is the file's extension, not the name.
pub fn script_name(raw: &str) -> &str {
    raw.strip_suffix(".sieve").unwrap_or(raw)
}

struct Validator<'a, 'l> {
    c: &'a Compiler,
    /// Set when included scripts are compiled along (see `compile_with_includes`).
    inc: Option<&'a mut Includes<'l>>,
    required: HashSet<String>,
    errors: Vec<CompileError>,
    warnings: Vec<Warning>,
    /// Variables the script sets, for the limit on their number.
    variables: HashSet<String>,
    /// The command being bound had an unknown tagged argument.
    unknown_tag: bool,
}

impl Validator<'_, '_> {
    fn err(&mut self, n: &Node, msg: impl Into<String>) {
        self.errors.push(CompileError::new(n.line, n.col, msg));
    }

    /// Decodes encoded characters, reporting an invalid Unicode value.
    fn decode(&mut self, s: &str, line: u32, col: u32) -> String {
        let (out, invalid) = decode_encoded_checked(s);
        if let Some(v) = invalid {
            self.errors.push(CompileError::new(
                line,
                col,
                format!("invalid unicode character 0x{v} in encoded character substitution"),
            ));
        }
        out
    }

    fn warn(&mut self, n: &Node, msg: impl Into<String>) {
        if self.warnings.len() < MAX_ERRORS {
            self.warnings.push(Warning {
                line: n.line,
                col: n.col,
                message: msg.into(),
            });
        }
    }

    fn block(&mut self, nodes: &mut [Node], top: bool) {
        let mut prev_if = false;
        let mut requires_allowed = top;
        for n in nodes.iter_mut() {
            if n.name == "require" {
                // A misplaced require is one error (its capabilities are not looked at).
                if !requires_allowed {
                    self.err(n, "require command can only be placed at top level at the beginning of the file");
                } else {
                    self.require(n);
                }
                continue;
            }
            requires_allowed = false;
            if matches!(n.name.as_str(), "elsif" | "else") && !prev_if {
                let msg = format!("{} command must follow an if or elseif command", n.name);
                self.err(n, msg);
            }
            prev_if = matches!(n.name.as_str(), "if" | "elsif");
            let _ = self.node(n, false);
        }
    }

    fn require(&mut self, n: &mut Node) {
        // Pigeonhole's order: the argument count, sub-tests, a block, then the argument.
        let list = match n.args.as_slice() {
            [_] if !n.tests.is_empty() => {
                self.err(
                    n,
                    "the require command accepts no sub-tests, but tests are specified",
                );
                return;
            }
            [_] if n.block.is_some() => {
                self.err(n, "the require command does not accept a block");
                return;
            }
            [a] => match &a.arg {
                Arg::Str(s) => vec![s.clone()],
                Arg::List(l) => l.clone(),
                other => {
                    let msg = format!(
                        "the require command accepts a single string or string list argument, \
                         but a {} was found",
                        other.kind()
                    );
                    self.err(n, msg);
                    return;
                }
            },
            _ => {
                self.err(n, "the require command expects one string list argument");
                return;
            }
        };
        for ext in list {
            if self.c.caps.contains(ext.as_str()) {
                self.required.insert(ext.clone());
                // vacation-seconds implies vacation; ereject shares reject's machinery.
                if ext == "vacation-seconds" {
                    self.required.insert("vacation".into());
                }
                if ext == "spamtestplus" {
                    self.required.insert("spamtest".into());
                }
            } else {
                self.err(
                    n,
                    format!("require command: unknown Sieve capability '{ext}'"),
                );
            }
        }
        n.pos = vec![Arg::List(self.required.iter().cloned().collect())];
    }

    /// Checks one command or test; true when its arguments were wrong (the caller then does
    /// not report what follows from that, as Pigeonhole does not).
    fn node(&mut self, n: &mut Node, as_test: bool) -> bool {
        let kind = if as_test { "test" } else { "command" };
        let Some(spec) = self.c.specs.get(n.name.as_str()).cloned() else {
            let msg = format!("unknown {kind} '{}' (perhaps a require is missing)", n.name);
            self.err(n, msg);
            return false;
        };
        if spec.is_test != as_test && !spec.both {
            let msg = format!(
                "attempted to use {} '{}' in {kind} context",
                if spec.is_test { "test" } else { "command" },
                n.name,
            );
            self.err(n, msg);
            return false;
        }
        if !spec.ext.is_empty() && !self.required.contains(spec.ext) {
            let msg = format!(
                "unknown {kind} '{}' (the '{}' extension is not required)",
                n.name, spec.ext
            );
            self.err(n, msg);
            return false;
        }
        if self.required.contains("encoded-character") {
            for a in &mut n.args {
                match &mut a.arg {
                    Arg::Str(s) => *s = self.decode(s, a.line, a.col),
                    Arg::List(l) => {
                        for s in l.iter_mut() {
                            *s = self.decode(s, a.line, a.col);
                        }
                    }
                    _ => {}
                }
            }
        }
        // One error per command or test, its first (as Pigeonhole reports them): the rest
        // are usually the same mistake seen again.
        let start = self.errors.len();
        self.unknown_tag = false;
        self.bind(n, &spec);
        // Pigeonhole's typo hints for a "sub-test" where none is taken: a tag written
        // without its colon, or the next command after a missing semicolon.
        let mut missing_colon = None;
        match (spec.tests, n.tests.len()) {
            (Tests::None, 0) | (Tests::One, 1) => {}
            (Tests::Many, k) if k > 0 => {}
            (Tests::None, _) => {
                let first = n.tests.first().map(|t| t.name.clone()).unwrap_or_default();
                let known_test = self.c.specs.get(first.as_str()).is_some_and(|s| s.is_test);
                if spec.tags.iter().any(|t| t.name == first) {
                    missing_colon = Some(format!(
                        "missing colon ':' before ':{first}' tag in {} {kind}",
                        n.name
                    ));
                } else if known_test {
                    let msg = format!(
                        "the {} {kind} accepts no sub-tests, but tests are specified",
                        n.name
                    );
                    self.err(n, msg);
                } else {
                    let msg = format!("missing semicolon ';' after {} {kind}", n.name);
                    self.err(n, msg);
                }
            }
            _ => {
                let msg = format!("the {} {kind} expects a test or test list", n.name);
                self.err(n, msg);
            }
        }
        self.errors.truncate(start + 1);
        if let Some(msg) = missing_colon.take() {
            // Its own mistake, reported after an argument error it causes; the "sub-test"
            // (the tag's name) is not looked at.
            self.err(n, msg);
            n.tests.clear();
        }
        let own_failed = self.errors.len() > start;
        // As Pigeonhole reports: the tests of a command that takes none are not looked at
        // (`keep` missing its semicolon before `redirect ...` is one mistake, not two), and
        // a test with an unknown tag spares its command the follow-up errors.
        let mut own_failed = own_failed;
        let args_failed = std::mem::take(&mut self.unknown_tag);
        if as_test || spec.tests != Tests::None || n.tests.is_empty() {
            for t in &mut n.tests {
                own_failed |= self.node(t, true);
            }
        }
        // RFC 5463 4: the block under `if ihave` is checked with those capabilities as if
        // required, or not at all when one is missing (it can never run then).
        let ihave = match n.tests.first() {
            Some(t) if t.name == "ihave" && matches!(n.name.as_str(), "if" | "elsif") => {
                Some(t.list(0))
            }
            _ => None,
        };
        if let (Some(caps), Some(b)) = (ihave, n.block.as_mut()) {
            if !caps.iter().all(|c| ihave_supports(self.c, c)) {
                b.clear();
                return args_failed;
            }
            let saved = self.required.clone();
            self.required.extend(caps);
            self.block(b, false);
            self.required = saved;
            return args_failed;
        }
        match (spec.block, n.block.as_mut()) {
            (Block::Yes, Some(b)) => self.block(b, false),
            (Block::Yes, None) if !own_failed => {
                let msg = format!("the {} command requires a command block", n.name);
                self.err(n, msg);
            }
            // A spurious block is a mistake of its own (Pigeonhole reports it after an
            // argument error too).
            (Block::No, Some(_)) => {
                let msg = format!("the {} {kind} does not accept a block", n.name);
                self.err(n, msg);
            }
            _ => {}
        }
        if !own_failed {
            let before = self.errors.len();
            self.check(n);
            self.errors.truncate(before + 1);
            if n.name == "include" && self.errors.len() == before && !n.string(0).contains("${") {
                if let Some(inc) = self.inc.take() {
                    let errors = self.c.resolve_include(n, inc);
                    self.inc = Some(inc);
                    self.errors.extend(errors);
                }
            }
        }
        args_failed
    }

    fn bind(&mut self, n: &mut Node, spec: &Spec) {
        let args = std::mem::take(&mut n.args);
        let mut it = args.into_iter().peekable();
        let mut groups: HashSet<&str> = HashSet::new();
        let mut tags = Vec::new();
        let mut pos = Vec::new();
        while let Some(a) = it.next() {
            let Arg::Tag(t) = &a.arg else {
                pos.push(a.arg);
                continue;
            };
            let Some(ts) = spec
                .tags
                .iter()
                .find(|ts| ts.name == t && (ts.ext.is_empty() || self.required.contains(ts.ext)))
            else {
                self.unknown_tag = true;
                self.errors.push(CompileError::new(
                    a.line,
                    a.col,
                    format!(
                        "unknown tagged argument ':{t}' for the {} {} \
                         (reported only once at first occurrence)",
                        n.name,
                        if spec.is_test { "test" } else { "command" }
                    ),
                ));
                continue;
            };
            if !pos.is_empty() {
                self.errors.push(CompileError::new(
                    a.line,
                    a.col,
                    format!(
                        "unexpected tagged argument ':{t}' after the positional arguments \
                         of the {} {}",
                        n.name,
                        if spec.is_test { "test" } else { "command" }
                    ),
                ));
            }
            if !ts.group.is_empty() && !groups.insert(ts.group) || tags.iter().any(|(x, _)| x == t)
            {
                self.errors.push(CompileError::new(
                    a.line,
                    a.col,
                    format!(
                        "tagged argument ':{t}' conflicts with an earlier {} argument of {}",
                        if ts.group.is_empty() { t } else { ts.group },
                        n.name
                    ),
                ));
                continue;
            }
            let value = match ts.arg {
                None => None,
                Some(ty) => match it.next() {
                    Some(v) if fits(&v.arg, ty) => Some(v.arg),
                    other => {
                        self.errors.push(CompileError::new(
                            a.line,
                            a.col,
                            format!(
                                "the :{t} tag of {} expects a {} argument, but {} was found",
                                n.name,
                                ty_name(ty),
                                other.map(|o| o.arg.kind()).unwrap_or("nothing")
                            ),
                        ));
                        continue;
                    }
                },
            };
            tags.push((t.clone(), value));
        }
        n.tags = tags;
        let max = spec.pos.len();
        let min = max - spec.optional_leading - spec.optional_trailing;
        if pos.len() < min || pos.len() > max {
            let msg = format!(
                "the {} {} requires {} positional argument(s), but {} were specified",
                n.name,
                if spec.is_test { "test" } else { "command" },
                max,
                pos.len()
            );
            self.err(n, msg);
            return;
        }
        // Optional leading arguments are left out: align from the end.
        let skip = if spec.optional_leading > 0 {
            max - pos.len()
        } else {
            0
        };
        for (i, a) in pos.iter().enumerate() {
            let ty = spec.pos[i + skip];
            if !fits(a, ty) {
                let msg = format!(
                    "the {} {} expects a {} as argument {} ({}), but a {} was found",
                    n.name,
                    if spec.is_test { "test" } else { "command" },
                    ty_name(ty),
                    i + 1,
                    arg_name(&n.name, i + skip).unwrap_or(ty_name(ty)),
                    a.kind()
                );
                self.err(n, msg);
            }
        }
        if skip > 0 {
            let mut full: Vec<Arg> = (0..skip).map(|_| Arg::Tag(String::new())).collect();
            full.extend(pos);
            n.pos = full;
        } else {
            n.pos = pos;
        }
    }

    /// What is wrong with a variable name the script sets or refers to: too long, a
    /// namespace other than `global` (RFC 6609, with include), or too many elements.
    fn var_problem(&self, name: &str) -> Option<String> {
        if name.len() > MAX_VARIABLE_NAME {
            return Some(format!(
                "variable name '{name}' is longer than {MAX_VARIABLE_NAME} characters"
            ));
        }
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 1 {
            // `tst.` is the namespace of Pigeonhole's test suite extension.
            let known = parts.len() == 2
                && (parts[0].eq_ignore_ascii_case("global") && self.required.contains("include")
                    || parts[0].eq_ignore_ascii_case("tst")
                        && self.required.contains("vnd.dovecot.testsuite"));
            if !known {
                return Some(format!("variable '{name}': unknown variable namespace"));
            }
        }
        None
    }

    /// Variable references in the strings of a command (when variables are required).
    fn check_references(&mut self, n: &Node) {
        if !self.required.contains("variables") {
            return;
        }
        let mut strings: Vec<String> = Vec::new();
        for a in n
            .pos
            .iter()
            .chain(n.tags.iter().filter_map(|(_, v)| v.as_ref()))
        {
            match a {
                Arg::Str(s) => strings.push(s.clone()),
                Arg::List(l) => strings.extend(l.iter().cloned()),
                _ => {}
            }
        }
        for s in strings {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let Some(end) = after.find('}') else { break };
                let inner = &after[..end];
                rest = &after[end..];
                if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                    if inner.trim_start_matches('0').len() > 2
                        || inner.parse::<usize>().is_ok_and(|i| i > MAX_MATCH_INDEX)
                    {
                        let msg = format!("match variable index {inner} is too large");
                        self.err(n, msg);
                        return;
                    }
                } else if crate::variables::valid_name(inner, true) {
                    if let Some(e) = self.var_problem(inner) {
                        self.err(n, e);
                        return;
                    }
                }
            }
        }
    }

    /// Checks of argument values the signature cannot express.
    fn check(&mut self, n: &Node) {
        self.check_references(n);
        if let Some(c) = n.tag_str("comparator").map(str::to_string) {
            let ok = match c.as_str() {
                "i;octet" | "i;ascii-casemap" | "i;unicode-casemap" => true,
                "i;ascii-numeric" => self.required.contains(&format!("comparator-{c}")),
                _ => false,
            };
            if !ok {
                self.err(n, format!("unknown comparator '{c}'"));
            } else if c == "i;ascii-numeric"
                && (n.has_tag("contains") || n.has_tag("matches") || n.has_tag("regex"))
            {
                self.err(
                    n,
                    format!("comparator '{c}' does not support the match type"),
                );
            }
        }
        for rel in ["value", "count"] {
            if let Some(op) = n.tag_str(rel) {
                if crate::matching::RelOp::parse(op).is_none() {
                    let msg = format!("invalid relational match type ':{rel} \"{op}\"'");
                    self.err(n, msg);
                }
            }
        }
        if n.has_tag("regex") && !n.pos.is_empty() {
            let keys = n.list(n.pos.len() - 1);
            for k in keys {
                if !self.required.contains("variables") || !k.contains("${") {
                    if let Err(e) = regex::RegexBuilder::new(&k).size_limit(1 << 20).build() {
                        let msg = format!("invalid regular expression '{k}': {e}");
                        self.err(n, msg);
                    }
                }
            }
        }
        if n.name == "envelope" {
            let bad = n.list(0).into_iter().find(|p| {
                !p.contains("${")
                    && !["from", "to", "auth"].contains(&p.to_ascii_lowercase().as_str())
            });
            if let Some(p) = bad {
                self.err(
                    n,
                    format!("specified envelope part '{p}' is not supported by the envelope test"),
                );
            }
        }
        if n.name == "address" {
            let bad = n.list(0).into_iter().find(|h| {
                !h.contains("${") && !ADDRESS_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h))
            });
            if let Some(h) = bad {
                self.err(
                    n,
                    format!("specified header '{h}' is not allowed for the address test"),
                );
            }
        }
        // RFC 5260 6: :last needs :index, and indexes count from 1.
        let indexed = matches!(
            n.name.as_str(),
            "header" | "address" | "date" | "deleteheader"
        );
        if indexed && n.has_tag("last") && !n.has_tag("index") {
            self.err(
                n,
                format!(
                    "{}: the :last tag cannot be specified without the :index tag",
                    n.name
                ),
            );
        }
        if indexed && n.tag_num("index") == Some(0) {
            self.err(n, format!("the :index of {} must be 1 or more", n.name));
        }
        match n.name.as_str() {
            "set" => {
                let name = n.string(0);
                if !crate::variables::valid_name(&name, true) {
                    self.err(n, format!("invalid variable name '{name}'"));
                } else if let Some(e) = self.var_problem(&name) {
                    self.err(n, e);
                } else if self.variables.insert(name.to_ascii_lowercase())
                    && self.variables.len() == MAX_SCRIPT_VARIABLES + 1
                {
                    let msg =
                        format!("set: the script uses more than {MAX_SCRIPT_VARIABLES} variables");
                    self.err(n, msg);
                }
            }
            "global" => {
                if !self.required.contains("variables") {
                    self.err(n, "global: the variables extension is not required");
                    return;
                }
                if let Some(v) = n
                    .list(0)
                    .into_iter()
                    .find(|v| self.variables.contains(&v.to_ascii_lowercase()))
                {
                    self.err(n, format!("global: '{v}' is already a local variable"));
                    return;
                }
                for name in n.list(0) {
                    if !crate::variables::valid_name(&name, false) {
                        self.err(n, format!("invalid variable name '{name}'"));
                    }
                }
            }
            "size" if !n.has_tag("over") && !n.has_tag("under") => {
                self.err(
                    n,
                    "the size test requires either the :under or the :over tag",
                );
            }
            "date" | "currentdate" => {
                let part = n.string(if n.name == "date" { 1 } else { 0 });
                if (!self.required.contains("variables") || !part.contains("${"))
                    && !crate::date::valid_part(&part)
                {
                    self.err(n, format!("invalid date part '{part}'"));
                }
            }
            "include" => {
                let name = n.string(0);
                // RFC 6609 3.2 (and Pigeonhole): the script name is a constant string.
                if name.contains("${") && self.required.contains("variables") {
                    self.err(n, "the include command requires a constant string for its script name argument");
                    return;
                }
                let bad =
                    |c: char| c.is_control() || c == '/' || matches!(c, '\u{2028}' | '\u{2029}');
                if name.is_empty() || name.chars().any(bad) {
                    self.err(n, format!("include: invalid script name '{name}'"));
                }
            }
            "vacation" => {
                if let Some(f) = n.tag_str("from") {
                    if !f.contains("${") && !crate::address::valid_mailbox(f) {
                        let msg =
                            format!("specified :from address '{f}' is invalid for vacation action");
                        self.err(n, msg);
                    }
                }
            }
            "addheader" | "deleteheader" => {
                let name = n.string(0);
                if !name.contains("${") && !crate::interp::valid_field_name(&name) {
                    self.err(n, format!("{}: field name '{name}' is invalid", n.name));
                    return;
                }
                if n.name == "addheader" {
                    let value = n.string(1);
                    if value.contains('\0') {
                        let shown = value.replace('\0', "\\0");
                        self.err(n, format!("addheader: value '{shown}' is invalid"));
                    } else if !value.contains("${") && value.len() > self.c.max_header_size {
                        let msg = format!(
                            "addheader: value is longer than {} bytes",
                            self.c.max_header_size
                        );
                        self.err(n, msg);
                    } else if value
                        .chars()
                        .any(|c| c.is_control() && !"\t\r\n".contains(c))
                    {
                        // RFC 5322 allows no control characters in a field body; Pigeonhole
                        // adds the header all the same and warns.
                        let shown: String = value.escape_default().collect();
                        self.warn(
                            n,
                            format!("addheader: value '{shown}' contains control characters"),
                        );
                    }
                }
            }
            "specialuse_exists" => {
                let flags = n.list(1);
                if let Some(f) = flags.iter().find(|f| !valid_special_use(f)) {
                    self.err(n, format!("invalid special-use flag '{f}'"));
                }
            }
            "fileinto" => {
                if let Some(f) = n.tag_str("specialuse") {
                    if !valid_special_use(f) {
                        self.err(n, format!("invalid special-use flag '{f}'"));
                        return;
                    }
                }
                let mailbox = n.string(0);
                if mailbox.contains('\u{fffd}') {
                    self.err(
                        n,
                        format!("invalid folder name '{mailbox}' (not UTF-8 text)"),
                    );
                }
            }
            "redirect" => {
                let a = n.string(0);
                if !a.contains("${") && !crate::address::valid_mailbox(&a) {
                    self.err(n, format!("specified redirect address '{a}' is invalid"));
                }
            }
            _ => {}
        }
    }
}

/// What `ihave` answers: encoded-character and variables change how a script is read, so
/// they cannot be taken up in the middle of one (Pigeonhole refuses them too).
pub fn ihave_supports(c: &Compiler, cap: &str) -> bool {
    c.supports(cap) && !matches!(cap, "encoded-character" | "variables")
}

/// RFC 8579 / RFC 6154: a special-use flag is a backslash and an atom (a string with a
/// variable in it is checked when it runs).
fn valid_special_use(f: &str) -> bool {
    f.contains("${")
        || f.strip_prefix('\\').is_some_and(|a| {
            !a.is_empty()
                && a.bytes().all(|b| {
                    b.is_ascii_graphic()
                        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
                })
        })
}

fn fits(a: &Arg, ty: Ty) -> bool {
    matches!(
        (a, ty),
        (Arg::Str(_), Ty::Str) | (Arg::Str(_) | Arg::List(_), Ty::List) | (Arg::Num(_), Ty::Num)
    )
}

/// The RFC's name of a positional argument of the common tests, for error messages.
fn arg_name(cmd: &str, i: usize) -> Option<&'static str> {
    let names: &[&str] = match cmd {
        "header" => &["header names", "key list"],
        "address" => &["header list", "key list"],
        "envelope" => &["envelope part", "key list"],
        "exists" => &["header names"],
        "string" => &["source", "key list"],
        _ => return None,
    };
    names.get(i).copied()
}

/// RFC 5228 5.1: the address test is restricted to headers that hold addresses; this is
/// Pigeonhole's list (the required ones, RFC 5322's others and common non-standard ones).
const ADDRESS_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "resent-from",
    "resent-to",
    "reply-to",
    "resent-reply-to",
    "resent-sender",
    "resent-cc",
    "resent-bcc",
    "for-approval",
    "for-handling",
    "for-comment",
    "apparently-to",
    "errors-to",
    "delivered-to",
    "return-receipt-to",
    "x-admin",
    "read-receipt-to",
    "x-confirm-reading-to",
    "return-receipt-requested",
    "registered-mail-reply-requested-to",
    "mail-followup-to",
    "mail-reply-to",
    "abuse-reports-to",
    "x-complaints-to",
    "x-report-abuse-to",
    "x-beenthere",
    "x-original-to",
];

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Str => "string",
        Ty::List => "string list",
        Ty::Num => "number",
    }
}

/// RFC 5228 2.4.2.4: `${hex: 41 42}` and `${unicode: 263a}` stand for the characters they
/// encode; anything malformed is left as it is.
pub fn decode_encoded(s: &str) -> String {
    decode_encoded_checked(s).0
}

/// [`decode_encoded`], and the first `${unicode:...}` whose value is no Unicode character (a
/// surrogate or past U+10FFFF): Pigeonhole reports it as an error, and the text stays as is.
pub fn decode_encoded_checked(s: &str) -> (String, Option<String>) {
    let mut invalid = None;
    let out = decode_inner(s, &mut invalid);
    (out, invalid)
}

fn decode_inner(s: &str, invalid: &mut Option<String>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let decoded = after.find('}').and_then(|end| {
            let inner = &after[..end];
            let (kind, body) = inner.split_once(':')?;
            let kind = kind.to_ascii_lowercase();
            if kind != "hex" && kind != "unicode" {
                return None;
            }
            let mut bytes = Vec::new();
            let mut text = String::new();
            let mut words = 0;
            for word in body
                .split([' ', '\t', '\r', '\n'])
                .filter(|w| !w.is_empty())
            {
                words += 1;
                if kind == "hex" {
                    if word.len() > 2 {
                        return None;
                    }
                    bytes.push(u8::from_str_radix(word, 16).ok()?);
                } else {
                    // Leading zeros are allowed (RFC 5228 2.4.2.4).
                    let digits = word.trim_start_matches('0');
                    if !word.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    let cp = if digits.is_empty() {
                        Some(0)
                    } else if digits.len() > 6 {
                        None
                    } else {
                        u32::from_str_radix(digits, 16).ok()
                    };
                    match cp.and_then(char::from_u32) {
                        Some(c) => text.push(c),
                        None => {
                            invalid.get_or_insert_with(|| word.to_string());
                            return None;
                        }
                    }
                }
            }
            if words == 0 {
                return None;
            }
            let value = if kind == "hex" {
                // Bytes that are not UTF-8 become U+FFFD: strings here are UTF-8, and what
                // uses them (a mailbox name) refuses the replacement character.
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                text
            };
            Some((value, end))
        });
        match decoded {
            Some((v, end)) => {
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(s: &str) -> Vec<String> {
        match Compiler::new().compile(s) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn typo_hints() {
        let e = errs("require \"fileinto\";\nfileinto \"a\"\nkeep;\nfileinto \"b\" true;");
        assert!(
            e[0].contains("missing semicolon ';' after fileinto command"),
            "{e:?}"
        );
        assert!(e[1].contains("accepts no sub-tests"), "{e:?}");
        let e = errs("if address matches \"from\" \"x\" { stop; }");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("requires 2 positional argument(s), but 0"),
            "{e:?}"
        );
        assert!(
            e[1].contains("missing colon ':' before ':matches' tag in address test"),
            "{e:?}"
        );
        // A spurious block is reported besides the argument error.
        assert_eq!(errs("stop \"x\" true { stop; }").len(), 2);
        assert_eq!(errs("if address :is \"frop\" \"x\" { stop; }").len(), 1);
        assert_eq!(errs("if true { require \"nope\"; }").len(), 1);
    }

    #[test]
    fn control_characters_in_addheader_warn() {
        let c = Compiler::new();
        let s = c
            .compile(
                "require \"editheader\";\naddheader \"X-a\" \"b\\x07\";\naddheader \"X-a\" \"b\";",
            )
            .unwrap();
        assert!(s.warnings.is_empty());
        let s = c
            .compile("require \"editheader\";\naddheader \"X-a\" \"b\x07\";\naddheader \"X-a\" \"b\tc\";")
            .unwrap();
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(s.warnings[0].line, 2);
        // Warnings found before an error come back with it.
        let e = c
            .compile("require \"editheader\";\naddheader \"X-a\" \"b\x07\";\nfrop;")
            .unwrap_err();
        assert_eq!((e.errors.len(), e.warnings.len()), (1, 1));
    }

    #[test]
    fn binds_tags_and_positionals() {
        let s = Compiler::new()
            .compile("require [\"fileinto\", \"relational\", \"comparator-i;ascii-numeric\"];\nif header :count \"ge\" :comparator \"i;ascii-numeric\" \"to\" \"2\" { fileinto \"x\"; }")
            .unwrap();
        let t = &s.commands[1].tests[0];
        assert_eq!(t.tag_str("count"), Some("ge"));
        assert_eq!(t.list(0), vec!["to".to_string()]);
    }

    #[test]
    fn reports_missing_require_and_bad_args() {
        assert!(errs("fileinto \"a\";")[0].contains("not required"));
        assert!(errs("keep \"a\";")[0].contains("positional"));
        assert!(errs("if header :is :contains \"a\" \"b\" {}")[0].contains("conflicts"));
        assert!(errs("if size 10 {}")[0].contains(":under"));
        assert!(errs("require \"nope\";")[0].contains("unknown Sieve capability"));
        assert!(errs("keep;\nrequire \"fileinto\";")[0].starts_with("line 2"));
        assert!(errs("else { keep; }")[0].contains("must follow"));
        assert!(errs("if header :comparator \"i;nope\" \"a\" \"b\" {}")[0].contains("comparator"));
        assert!(errs("").is_empty());
    }

    #[test]
    fn includes_are_checked_with_the_script() {
        let scripts = std::collections::HashMap::from([
            ("a", "require \"include\"; include \"b.sieve\";"),
            ("b", "require \"include\"; include \"a\";"),
            ("ok", "keep;"),
        ]);
        let mut load = |_g: bool, n: &str| -> Result<Option<String>, String> {
            Ok(scripts.get(n).map(|s| s.to_string()))
        };
        let c = Compiler::new();
        let e = c
            .compile_with_includes("require \"include\"; include \"a\";", &mut load)
            .unwrap_err();
        assert!(e.errors[0].message.contains("circular"), "{e}");
        assert!(e.errors.last().unwrap().message.contains("'a'"), "{e}");
        let e = c
            .compile_with_includes("require \"include\"; include \"nope\";", &mut load)
            .unwrap_err();
        assert!(e.errors[0].message.contains("does not exist"), "{e}");
        let src = "require \"include\"; include :optional \"nope\"; include \"ok\";";
        assert!(c.compile_with_includes(src, &mut load).is_ok());
        let mut shallow = Compiler::new();
        shallow.max_include_depth = 1;
        assert!(shallow
            .compile_with_includes("require \"include\"; include \"a\";", &mut load)
            .unwrap_err()
            .errors[0]
            .message
            .contains("nested deeper"));
    }

    #[test]
    fn encoded_characters() {
        assert_eq!(
            decode_encoded("${hex: 40 41}b${unicode:263a}"),
            "@Ab\u{263a}"
        );
        assert_eq!(decode_encoded("${hex:zz}${x}"), "${hex:zz}${x}");
        for bad in ["200000", "DF01", "33333333333333333"] {
            let (out, e) = decode_encoded_checked(&format!("a${{unicode:{bad}}}"));
            assert_eq!(
                (out, e),
                (format!("a${{unicode:{bad}}}"), Some(bad.to_string()))
            );
        }
        assert_eq!(decode_encoded_checked("${unicode:0010FFFF}").1, None);
    }
}
