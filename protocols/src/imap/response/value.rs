//! IMAP values (RFC 9051 4) and the one rule that decides how a string goes on the wire.

use std::borrow::Cow;

/// The longest string sent as a quoted string; longer ones go as literals. One limit for every
/// string the server sends, so a value's form never depends on which code wrote it.
pub const QUOTED_MAX: usize = 4096;

/// One IMAP value. Strings say what they are (a string, an astring, a mailbox name) and the
/// encoder picks their form: an atom when that is safe, a quoted string when the bytes can be
/// quoted, a literal otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Nil,
    Number(u64),
    /// Written as it is: only for words that are atoms by construction (flags and keywords,
    /// capability and item names, list attributes), never for arbitrary data.
    Atom(Cow<'a, str>),
    /// `string`: quoted when it can be, else a literal.
    String(Cow<'a, [u8]>),
    /// `astring`: an atom when it is safe as one, else as [`Value::String`].
    AString(Cow<'a, [u8]>),
    /// A mailbox name (the store's UTF-8), as an astring in the client's encoding: modified
    /// UTF-7, or UTF-8 once the client enabled UTF8=ACCEPT (RFC 6855 3).
    Mailbox(Cow<'a, str>),
    /// Always a literal: message content. NUL, which no literal may hold (RFC 9051 4.3), is
    /// sent as 0x80, as Dovecot does.
    Literal(Cow<'a, [u8]>),
    /// `~{n}` literal8 (RFC 3516): binary content, sent unchanged.
    Literal8(Cow<'a, [u8]>),
    /// `(a b c)`.
    List(Vec<Value<'a>>),
    /// Values one after another with no space between: body-type-mpart's `1*body`.
    Adjacent(Vec<Value<'a>>),
    /// A sequence or UID set, ascending runs written as ranges: `1:3,7`.
    Set(Cow<'a, [u32]>),
}

impl<'a> Value<'a> {
    pub fn atom(s: impl Into<Cow<'a, str>>) -> Self {
        Value::Atom(s.into())
    }
    pub fn string(s: impl Into<Cow<'a, [u8]>>) -> Self {
        Value::String(s.into())
    }
    pub fn astring(s: impl Into<Cow<'a, [u8]>>) -> Self {
        Value::AString(s.into())
    }
    /// `nstring`: NIL for None.
    pub fn nstring(s: Option<impl Into<Cow<'a, [u8]>>>) -> Self {
        s.map_or(Value::Nil, |s| Value::String(s.into()))
    }
    /// A list of atoms (flags, attributes).
    pub fn atoms<S: Into<Cow<'a, str>>>(words: impl IntoIterator<Item = S>) -> Self {
        Value::List(words.into_iter().map(Value::atom).collect())
    }
    /// The same value owning all its data, for one built from something that goes away
    /// before it is sent.
    pub fn into_owned(self) -> Value<'static> {
        fn own<T: ToOwned + ?Sized>(c: Cow<'_, T>) -> Cow<'static, T> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Value::Nil => Value::Nil,
            Value::Number(n) => Value::Number(n),
            Value::Atom(a) => Value::Atom(own(a)),
            Value::String(s) => Value::String(own(s)),
            Value::AString(s) => Value::AString(own(s)),
            Value::Mailbox(m) => Value::Mailbox(own(m)),
            Value::Literal(b) => Value::Literal(own(b)),
            Value::Literal8(b) => Value::Literal8(own(b)),
            Value::List(v) => Value::List(v.into_iter().map(Value::into_owned).collect()),
            Value::Adjacent(v) => Value::Adjacent(v.into_iter().map(Value::into_owned).collect()),
            Value::Set(s) => Value::Set(own(s)),
        }
    }
}

/// How the session encodes: what the client enabled that changes the syntax.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoder {
    /// UTF8=ACCEPT (or IMAP4rev2): mailbox names in UTF-8, which may then be quoted.
    pub utf8: bool,
}

/// Whether `b` may appear in an atom that we send (ATOM-CHAR, conservatively: `]` too is
/// left out, so an atom never ends a response code early).
fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// Printable 7-bit or tab: what a quoted string carries without surprising anyone (control
/// characters, though TEXT-CHARs, go as literals).
fn is_quoted_char(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

/// The form a string takes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Atom,
    Quoted,
    Literal,
}

/// THE quoting rule. `astring`: an atom is allowed. `utf8`: 8-bit bytes may be quoted when
/// they are valid UTF-8 (mailbox names for UTF8=ACCEPT clients; every other string keeps
/// 8-bit bytes in literals, as Dovecot does).
pub fn form(s: &[u8], astring: bool, utf8: bool) -> Form {
    if astring
        && !s.is_empty()
        && s.iter().all(|&b| is_atom_char(b))
        && !s.eq_ignore_ascii_case(b"NIL")
    {
        return Form::Atom;
    }
    let seven_bit = s.iter().all(|&b| is_quoted_char(b));
    let quotable = seven_bit
        || (utf8
            && s.iter().all(|&b| b >= 0x80 || is_quoted_char(b))
            && std::str::from_utf8(s).is_ok());
    if s.len() <= QUOTED_MAX && quotable {
        Form::Quoted
    } else {
        Form::Literal
    }
}

impl Encoder {
    /// Appends `v` to `out`.
    pub fn value(&self, out: &mut Vec<u8>, v: &Value<'_>) {
        match v {
            Value::Nil => out.extend_from_slice(b"NIL"),
            Value::Number(n) => number(out, *n),
            Value::Atom(a) => out.extend_from_slice(a.as_bytes()),
            Value::String(s) => self.string(out, s, false, false),
            Value::AString(s) => self.string(out, s, true, false),
            Value::Mailbox(name) => {
                if self.utf8 {
                    self.string(out, name.as_bytes(), true, true)
                } else {
                    let name = super::super::mutf7::encode(name);
                    self.string(out, name.as_bytes(), true, false)
                }
            }
            Value::Literal(s) => literal(out, s),
            Value::Literal8(s) => {
                out.push(b'~');
                literal_header(out, s.len());
                out.extend_from_slice(s);
            }
            Value::List(items) => {
                out.push(b'(');
                self.spaced(out, items);
                out.push(b')');
            }
            Value::Adjacent(items) => {
                for i in items {
                    self.value(out, i);
                }
            }
            Value::Set(nums) => set(out, nums),
        }
    }

    /// Values separated by single spaces.
    pub fn spaced(&self, out: &mut Vec<u8>, items: &[Value<'_>]) {
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            self.value(out, v);
        }
    }

    fn string(&self, out: &mut Vec<u8>, s: &[u8], astring: bool, utf8: bool) {
        match form(s, astring, utf8) {
            Form::Atom => out.extend_from_slice(s),
            Form::Quoted => {
                out.push(b'"');
                for &b in s {
                    if b == b'"' || b == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
            Form::Literal => literal(out, s),
        }
    }
}

pub(super) fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

fn literal_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'{');
    number(out, len as u64);
    out.extend_from_slice(b"}\r\n");
}

fn literal(out: &mut Vec<u8>, s: &[u8]) {
    literal_header(out, s.len());
    let start = out.len();
    out.extend_from_slice(s);
    for b in out.iter_mut().skip(start).filter(|b| **b == 0) {
        *b = 0x80;
    }
}

/// `1:3,7`: ascending runs as ranges, everything else in the given order.
pub(super) fn set(out: &mut Vec<u8>, nums: &[u32]) {
    let mut i = 0;
    let mut first = true;
    while let Some(&start) = nums.get(i) {
        let mut end = start;
        while let Some(&next) = nums.get(i + 1) {
            if Some(next) != end.checked_add(1) {
                break;
            }
            end = next;
            i += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        number(out, u64::from(start));
        if end != start {
            out.push(b':');
            number(out, u64::from(end));
        }
        i += 1;
    }
}
