//! The signature of every command and test: which extension brings it, its tags (with the type
//! of their argument and the group of mutually exclusive tags), its positional arguments, and
//! whether it takes tests and a block.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Str,
    /// A string list; a single string is a list of one.
    List,
    Num,
}

#[derive(Clone, Debug)]
pub struct TagSpec {
    pub name: &'static str,
    pub arg: Option<Ty>,
    /// Tags of one non-empty group exclude each other (match type, comparator, ...).
    pub group: &'static str,
    /// The extension the tag needs, "" for none.
    pub ext: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tests {
    None,
    One,
    Many,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    No,
    Yes,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub is_test: bool,
    /// The extension that brings it; "" for the base language.
    pub ext: &'static str,
    pub tags: Vec<TagSpec>,
    pub pos: Vec<Ty>,
    /// How many leading positional arguments may be left out (hasflag, setflag, ...).
    pub optional_leading: usize,
    /// How many trailing positional arguments may be left out (deleteheader's values).
    pub optional_trailing: usize,
    pub tests: Tests,
    pub block: Block,
    /// Usable both as a command and as a test (the test suite's test_message).
    pub both: bool,
}

const fn tag(
    name: &'static str,
    arg: Option<Ty>,
    group: &'static str,
    ext: &'static str,
) -> TagSpec {
    TagSpec {
        name,
        arg,
        group,
        ext,
    }
}

pub fn match_tags() -> Vec<TagSpec> {
    vec![
        tag("is", None, "match", ""),
        tag("contains", None, "match", ""),
        tag("matches", None, "match", ""),
        tag("value", Some(Ty::Str), "match", "relational"),
        tag("count", Some(Ty::Str), "match", "relational"),
        tag("regex", None, "match", "regex"),
        tag("comparator", Some(Ty::Str), "comparator", ""),
    ]
}

fn address_tags() -> Vec<TagSpec> {
    vec![
        tag("all", None, "addresspart", ""),
        tag("localpart", None, "addresspart", ""),
        tag("domain", None, "addresspart", ""),
        tag("user", None, "addresspart", "subaddress"),
        tag("detail", None, "addresspart", "subaddress"),
    ]
}

fn index_tags() -> Vec<TagSpec> {
    vec![
        tag("index", Some(Ty::Num), "index", "index"),
        tag("last", None, "last", "index"),
    ]
}

impl Spec {
    pub fn new(name: &'static str, is_test: bool, ext: &'static str) -> Spec {
        Spec {
            name,
            is_test,
            ext,
            tags: Vec::new(),
            pos: Vec::new(),
            optional_leading: 0,
            optional_trailing: 0,
            tests: Tests::None,
            block: Block::No,
            both: false,
        }
    }

    pub fn tags(mut self, tags: Vec<TagSpec>) -> Spec {
        self.tags.extend(tags);
        self
    }

    pub fn tag(
        mut self,
        name: &'static str,
        arg: Option<Ty>,
        group: &'static str,
        ext: &'static str,
    ) -> Spec {
        self.tags.push(tag(name, arg, group, ext));
        self
    }

    pub fn pos(mut self, pos: &[Ty]) -> Spec {
        self.pos = pos.to_vec();
        self
    }

    pub fn tests(mut self, t: Tests) -> Spec {
        self.tests = t;
        self
    }

    pub fn block(mut self) -> Spec {
        self.block = Block::Yes;
        self
    }
}

/// Every command and test the interpreter implements.
pub fn builtin() -> Vec<Spec> {
    use Ty::*;
    let m = match_tags;
    vec![
        // RFC 5228 control and actions.
        Spec::new("require", false, "").pos(&[List]),
        Spec::new("if", false, "").tests(Tests::One).block(),
        Spec::new("elsif", false, "").tests(Tests::One).block(),
        Spec::new("else", false, "").block(),
        Spec::new("stop", false, ""),
        Spec::new("keep", false, "").tag("flags", Some(List), "", "imap4flags"),
        Spec::new("discard", false, ""),
        Spec::new("redirect", false, "")
            .tag("copy", None, "", "copy")
            .pos(&[Str]),
        // RFC 5228 tests.
        Spec::new("address", true, "")
            .tags(m())
            .tags(address_tags())
            .tags(index_tags())
            .pos(&[List, List]),
        Spec::new("header", true, "")
            .tags(m())
            .tags(index_tags())
            .pos(&[List, List]),
        Spec::new("envelope", true, "envelope")
            .tags(m())
            .tags(address_tags())
            .pos(&[List, List]),
        Spec::new("exists", true, "").pos(&[List]),
        Spec::new("size", true, "")
            .tag("over", None, "size", "")
            .tag("under", None, "size", "")
            .pos(&[Num]),
        Spec::new("allof", true, "").tests(Tests::Many),
        Spec::new("anyof", true, "").tests(Tests::Many),
        Spec::new("not", true, "").tests(Tests::One),
        Spec::new("true", true, ""),
        Spec::new("false", true, ""),
        // RFC 5228 fileinto, RFC 3894 copy, RFC 5490 mailbox, RFC 8579 special-use.
        Spec::new("fileinto", false, "fileinto")
            .tag("copy", None, "", "copy")
            .tag("flags", Some(List), "", "imap4flags")
            .tag("create", None, "", "mailbox")
            .tag("specialuse", Some(Str), "", "special-use")
            .pos(&[Str]),
        Spec::new("mailboxexists", true, "mailbox").pos(&[List]),
        Spec {
            optional_leading: 1,
            ..Spec::new("specialuse_exists", true, "special-use").pos(&[Str, List])
        },
        // RFC 5429.
        Spec::new("reject", false, "reject").pos(&[Str]),
        Spec::new("ereject", false, "ereject").pos(&[Str]),
        // RFC 5230 and 6131.
        Spec::new("vacation", false, "vacation")
            .tag("days", Some(Num), "period", "")
            .tag("seconds", Some(Num), "period", "vacation-seconds")
            .tag("subject", Some(Str), "", "")
            .tag("from", Some(Str), "", "")
            .tag("addresses", Some(List), "", "")
            .tag("mime", None, "", "")
            .tag("handle", Some(Str), "", "")
            .pos(&[Str]),
        // RFC 5232.
        Spec {
            optional_leading: 1,
            ..Spec::new("setflag", false, "imap4flags").pos(&[Str, List])
        },
        Spec {
            optional_leading: 1,
            ..Spec::new("addflag", false, "imap4flags").pos(&[Str, List])
        },
        Spec {
            optional_leading: 1,
            ..Spec::new("removeflag", false, "imap4flags").pos(&[Str, List])
        },
        Spec {
            optional_leading: 1,
            ..Spec::new("hasflag", true, "imap4flags")
                .tags(m())
                .pos(&[List, List])
        },
        // RFC 5229.
        Spec::new("set", false, "variables")
            .tag("lower", None, "case", "")
            .tag("upper", None, "case", "")
            .tag("lowerfirst", None, "casefirst", "")
            .tag("upperfirst", None, "casefirst", "")
            .tag("quotewildcard", None, "quote", "")
            .tag("quoteregex", None, "quote", "regex")
            .tag("length", None, "length", "")
            .pos(&[Str, Str]),
        Spec::new("string", true, "variables")
            .tags(m())
            .pos(&[List, List]),
        // RFC 5173.
        Spec::new("body", true, "body")
            .tags(m())
            .tag("raw", None, "transform", "")
            .tag("content", Some(List), "transform", "")
            .tag("text", None, "transform", "")
            .pos(&[List]),
        // RFC 5260.
        Spec::new("date", true, "date")
            .tags(m())
            .tags(index_tags())
            .tag("zone", Some(Str), "zone", "")
            .tag("originalzone", None, "zone", "")
            .pos(&[Str, Str, List]),
        Spec::new("currentdate", true, "date")
            .tags(m())
            .tag("zone", Some(Str), "zone", "")
            .pos(&[Str, List]),
        // RFC 5183.
        Spec::new("environment", true, "environment")
            .tags(m())
            .pos(&[Str, List]),
        // RFC 6609.
        Spec::new("include", false, "include")
            .tag("personal", None, "location", "")
            .tag("global", None, "location", "")
            .tag("once", None, "", "")
            .tag("optional", None, "", "")
            .pos(&[Str]),
        Spec::new("return", false, "include"),
        Spec::new("global", false, "include").pos(&[List]),
        // RFC 5463.
        Spec::new("ihave", true, "ihave").pos(&[List]),
        Spec::new("error", false, "ihave").pos(&[Str]),
        // RFC 5293.
        Spec::new("addheader", false, "editheader")
            .tag("last", None, "", "")
            .pos(&[Str, Str]),
        Spec {
            optional_trailing: 1,
            ..Spec::new("deleteheader", false, "editheader")
                .tags(m())
                .tag("index", Some(Num), "index", "")
                .tag("last", None, "last", "")
                .pos(&[Str, List])
        },
        // RFC 5235 (`:percent` with spamtestplus).
        Spec::new("spamtest", true, "spamtest")
            .tags(m())
            .tag("percent", None, "", "spamtestplus")
            .pos(&[Str]),
        Spec::new("virustest", true, "virustest")
            .tags(m())
            .pos(&[Str]),
        // RFC 7352.
        Spec::new("duplicate", true, "duplicate")
            .tag("handle", Some(Str), "", "")
            .tag("header", Some(Str), "id", "")
            .tag("uniqueid", Some(Str), "id", "")
            .tag("seconds", Some(Num), "", "")
            .tag("last", None, "", ""),
    ]
}

/// The capabilities this interpreter claims (`require` accepts them; ManageSieve lists them).
pub const CAPABILITIES: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "vacation",
    "vacation-seconds",
    "subaddress",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;unicode-casemap",
    "relational",
    "regex",
    "imap4flags",
    "copy",
    "include",
    "body",
    "variables",
    "environment",
    "mailbox",
    "date",
    "index",
    "ihave",
    "duplicate",
    "editheader",
    "special-use",
    "spamtest",
    "spamtestplus",
    "virustest",
];
