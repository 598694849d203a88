//! The syntax tree: generic commands and tests as RFC 5228 section 8.2 defines them. The
//! validator binds each node's tagged arguments (`tags`) and positional arguments (`pos`).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    List(Vec<String>),
    Num(u64),
    Tag(String),
}

impl Arg {
    pub fn kind(&self) -> &'static str {
        match self {
            Arg::Str(_) => "string",
            Arg::List(_) => "string list",
            Arg::Num(_) => "number",
            Arg::Tag(_) => "tag",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PosArg {
    pub arg: Arg,
    pub line: u32,
    pub col: u32,
}

/// One command or test.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub line: u32,
    pub col: u32,
    /// Arguments in script order, as parsed.
    pub args: Vec<PosArg>,
    pub tests: Vec<Node>,
    pub block: Option<Vec<Node>>,
    /// Filled by the validator: tagged arguments (with their value) and positional ones.
    pub tags: Vec<(String, Option<Arg>)>,
    pub pos: Vec<Arg>,
}

impl Node {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|(t, _)| t == tag)
    }

    pub fn tag(&self, tag: &str) -> Option<&Arg> {
        self.tags
            .iter()
            .find(|(t, _)| t == tag)
            .and_then(|(_, a)| a.as_ref())
    }

    pub fn tag_str(&self, tag: &str) -> Option<&str> {
        match self.tag(tag) {
            Some(Arg::Str(s)) => Some(s),
            Some(Arg::List(l)) => l.first().map(String::as_str),
            _ => None,
        }
    }

    pub fn tag_num(&self, tag: &str) -> Option<u64> {
        match self.tag(tag) {
            Some(Arg::Num(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn tag_list(&self, tag: &str) -> Option<Vec<String>> {
        match self.tag(tag) {
            Some(Arg::Str(s)) => Some(vec![s.clone()]),
            Some(Arg::List(l)) => Some(l.clone()),
            _ => None,
        }
    }

    /// The positional argument `i` as a string list (a single string is a list of one).
    pub fn list(&self, i: usize) -> Vec<String> {
        match self.pos.get(i) {
            Some(Arg::Str(s)) => vec![s.clone()],
            Some(Arg::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    pub fn string(&self, i: usize) -> String {
        match self.pos.get(i) {
            Some(Arg::Str(s)) => s.clone(),
            Some(Arg::List(l)) => l.first().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    pub fn num(&self, i: usize) -> u64 {
        match self.pos.get(i) {
            Some(Arg::Num(n)) => *n,
            _ => 0,
        }
    }
}
