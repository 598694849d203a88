//! ManageSieve command lines (RFC 5804 section 4): an atom, then strings (quoted, or literals
//! `{n+}` / `{n}`) and numbers, up to CRLF. Pure: works on the input buffer, never panics.

/// One argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Str(Vec<u8>),
    Num(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    StartTls,
    Logout,
    Capability,
    Noop(Option<String>),
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    CheckScript(Vec<u8>),
    ListScripts,
    SetActive(String),
    GetScript(String),
    DeleteScript(String),
    RenameScript {
        from: String,
        to: String,
    },
    Unauthenticate,
    /// Dovecot's `XCLIENT ADDR=.. PORT=.. SESSION=..` from a trusted proxy: the raw arguments
    /// (atoms, which RFC 5804's argument grammar has no room for).
    Xclient(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Error in MANAGESIEVE command: {0}")]
    Syntax(&'static str),
    #[error("Unknown command.")]
    Unknown,
    #[error("Wrong number or type of arguments.")]
    Arguments,
    #[error("Command line too long.")]
    TooLong,
    #[error("Literal too large.")]
    LiteralTooLarge,
}

/// What the parser made of the buffer's start.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// More input is needed.
    Incomplete,
    /// A value and the bytes it used.
    Done(T, usize),
    /// A bad command; `usize` bytes (through its line end) are to be dropped.
    Bad(ParseError, usize),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    max_literal: usize,
}

enum Step<T> {
    More,
    Err(ParseError),
    Ok(T),
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn at_line_end(&self) -> Step<bool> {
        match self.peek() {
            None => Step::More,
            Some(b'\n') => Step::Ok(true),
            Some(b'\r') => match self.buf.get(self.pos + 1) {
                None => Step::More,
                Some(b'\n') => Step::Ok(true),
                Some(_) => Step::Err(ParseError::Syntax("stray CR")),
            },
            Some(_) => Step::Ok(false),
        }
    }

    fn skip_line_end(&mut self) {
        if self.peek() == Some(b'\r') {
            self.pos += 1;
        }
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }
    }

    fn atom(&mut self) -> Step<String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.pos += 1;
        }
        if self.pos == self.buf.len() {
            return Step::More;
        }
        if self.pos == start {
            return Step::Err(ParseError::Syntax("expected a command name"));
        }
        Step::Ok(String::from_utf8_lossy(&self.buf[start..self.pos]).to_ascii_uppercase())
    }

    fn arg(&mut self) -> Step<Arg> {
        match self.peek() {
            None => Step::More,
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None => return Step::More,
                        Some(b'"') => {
                            self.pos += 1;
                            return Step::Ok(Arg::Str(out));
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            match self.peek() {
                                None => return Step::More,
                                Some(c @ (b'"' | b'\\')) => out.push(c),
                                Some(_) => {
                                    return Step::Err(ParseError::Syntax(
                                        "bad escape in quoted string",
                                    ))
                                }
                            }
                            self.pos += 1;
                        }
                        Some(b'\r' | b'\n') => {
                            return Step::Err(ParseError::Syntax("line end in quoted string"))
                        }
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                    if out.len() > 1024 * 1024 {
                        return Step::Err(ParseError::TooLong);
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let digits = &self.buf[start..self.pos];
                if self.peek() == Some(b'+') {
                    self.pos += 1;
                }
                match self.peek() {
                    None => return Step::More,
                    Some(b'}') => self.pos += 1,
                    Some(_) => return Step::Err(ParseError::Syntax("bad literal")),
                }
                let Some(n) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                else {
                    return Step::Err(ParseError::Syntax("bad literal length"));
                };
                if n > self.max_literal {
                    return Step::Err(ParseError::LiteralTooLarge);
                }
                match self.at_line_end() {
                    Step::More => return Step::More,
                    Step::Err(e) => return Step::Err(e),
                    Step::Ok(false) => {
                        return Step::Err(ParseError::Syntax("literal without line end"))
                    }
                    Step::Ok(true) => self.skip_line_end(),
                }
                let Some(bytes) = self.buf.get(self.pos..self.pos + n) else {
                    return Step::More;
                };
                self.pos += n;
                Step::Ok(Arg::Str(bytes.to_vec()))
            }
            Some(b'0'..=b'9') => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                if self.pos == self.buf.len() {
                    return Step::More;
                }
                match std::str::from_utf8(&self.buf[start..self.pos])
                    .ok()
                    .and_then(|d| d.parse().ok())
                {
                    Some(n) => Step::Ok(Arg::Num(n)),
                    None => Step::Err(ParseError::Syntax("number out of range")),
                }
            }
            Some(_) => Step::Err(ParseError::Syntax("expected a string or a number")),
        }
    }
}

/// Bytes through the first line end at or after `from`, or all of `buf` when over `max_line`.
fn bad(buf: &[u8], from: usize, e: ParseError, max_line: usize) -> Parsed<Command> {
    match buf
        .get(from..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        Some(i) => Parsed::Bad(e, from + i + 1),
        None if buf.len() > max_line => Parsed::Bad(ParseError::TooLong, buf.len()),
        None => Parsed::Incomplete,
    }
}

/// Parses one command from the start of `buf`.
pub fn parse(buf: &[u8], max_literal: usize, max_line: usize) -> Parsed<Command> {
    let mut c = Cursor {
        buf,
        pos: 0,
        max_literal,
    };
    let name = match c.atom() {
        Step::More if buf.len() > max_line => return Parsed::Bad(ParseError::TooLong, buf.len()),
        Step::More => return Parsed::Incomplete,
        Step::Err(e) => return bad(buf, 0, e, max_line),
        Step::Ok(n) => n,
    };
    if name == "XCLIENT" {
        return xclient(buf, c.pos, max_line);
    }
    let mut args = Vec::new();
    loop {
        match c.at_line_end() {
            Step::More if buf.len() > max_line + max_literal => {
                return Parsed::Bad(ParseError::TooLong, buf.len())
            }
            Step::More => return Parsed::Incomplete,
            Step::Err(e) => return bad(buf, c.pos, e, max_line),
            Step::Ok(true) => {
                c.skip_line_end();
                break;
            }
            Step::Ok(false) => {}
        }
        if c.peek() != Some(b' ') {
            return bad(buf, c.pos, ParseError::Syntax("expected a space"), max_line);
        }
        c.pos += 1;
        match c.arg() {
            Step::More if buf.len() > max_line + max_literal => {
                return Parsed::Bad(ParseError::TooLong, buf.len())
            }
            Step::More => return Parsed::Incomplete,
            Step::Err(e) => return bad(buf, c.pos, e, max_line),
            Step::Ok(a) => args.push(a),
        }
        if args.len() > 4 {
            return bad(buf, c.pos, ParseError::Arguments, max_line);
        }
    }
    match command(&name, args) {
        Ok(cmd) => Parsed::Done(cmd, c.pos),
        Err(e) => Parsed::Bad(e, c.pos),
    }
}

/// XCLIENT's arguments: the rest of the line, as text.
fn xclient(buf: &[u8], from: usize, max_line: usize) -> Parsed<Command> {
    let rest = buf.get(from..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(p) if from + p > max_line => Parsed::Bad(ParseError::TooLong, from + p + 1),
        Some(p) => {
            let line = rest.get(..p).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let args = String::from_utf8_lossy(line).trim().to_string();
            Parsed::Done(Command::Xclient(args), from + p + 1)
        }
        None if buf.len() > max_line => Parsed::Bad(ParseError::TooLong, buf.len()),
        None => Parsed::Incomplete,
    }
}

fn text(a: Arg) -> Result<String, ParseError> {
    match a {
        Arg::Str(b) => String::from_utf8(b).map_err(|_| ParseError::Syntax("string is not UTF-8")),
        Arg::Num(_) => Err(ParseError::Arguments),
    }
}

fn command(name: &str, args: Vec<Arg>) -> Result<Command, ParseError> {
    let mut it = args.into_iter();
    let mut next = || it.next();
    let cmd = match name {
        "AUTHENTICATE" => Command::Authenticate {
            mechanism: text(next().ok_or(ParseError::Arguments)?)?,
            initial: next().map(text).transpose()?,
        },
        "STARTTLS" => Command::StartTls,
        "LOGOUT" => Command::Logout,
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop(next().map(text).transpose()?),
        "HAVESPACE" => {
            let name = text(next().ok_or(ParseError::Arguments)?)?;
            match next() {
                Some(Arg::Num(size)) => Command::HaveSpace { name, size },
                _ => return Err(ParseError::Arguments),
            }
        }
        "PUTSCRIPT" => {
            let name = text(next().ok_or(ParseError::Arguments)?)?;
            match next() {
                Some(Arg::Str(script)) => Command::PutScript { name, script },
                _ => return Err(ParseError::Arguments),
            }
        }
        "CHECKSCRIPT" => match next() {
            Some(Arg::Str(s)) => Command::CheckScript(s),
            _ => return Err(ParseError::Arguments),
        },
        "LISTSCRIPTS" => Command::ListScripts,
        "SETACTIVE" => Command::SetActive(text(next().ok_or(ParseError::Arguments)?)?),
        "GETSCRIPT" => Command::GetScript(text(next().ok_or(ParseError::Arguments)?)?),
        "DELETESCRIPT" => Command::DeleteScript(text(next().ok_or(ParseError::Arguments)?)?),
        "RENAMESCRIPT" => Command::RenameScript {
            from: text(next().ok_or(ParseError::Arguments)?)?,
            to: text(next().ok_or(ParseError::Arguments)?)?,
        },
        "UNAUTHENTICATE" => Command::Unauthenticate,
        _ => return Err(ParseError::Unknown),
    };
    if next().is_some() {
        return Err(ParseError::Arguments);
    }
    Ok(cmd)
}

/// A SASL response line during AUTHENTICATE: a string, or `*` to cancel (`None`).
pub fn parse_response(buf: &[u8], max: usize) -> Parsed<Option<String>> {
    if buf.starts_with(b"*") {
        return match buf.iter().position(|&b| b == b'\n') {
            Some(i) => Parsed::Done(None, i + 1),
            None => Parsed::Incomplete,
        };
    }
    let mut c = Cursor {
        buf,
        pos: 0,
        max_literal: max,
    };
    let s = match c.arg() {
        Step::More if buf.len() > max => return Parsed::Bad(ParseError::TooLong, buf.len()),
        Step::More => return Parsed::Incomplete,
        Step::Err(e) => {
            return match buf.iter().position(|&b| b == b'\n') {
                Some(i) => Parsed::Bad(e, i + 1),
                None => Parsed::Bad(e, buf.len()),
            }
        }
        Step::Ok(Arg::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
        Step::Ok(Arg::Num(n)) => n.to_string(),
    };
    match c.at_line_end() {
        Step::More => Parsed::Incomplete,
        Step::Ok(true) => {
            c.skip_line_end();
            Parsed::Done(Some(s), c.pos)
        }
        _ => Parsed::Bad(ParseError::Syntax("expected line end"), buf.len()),
    }
}

/// A string as the server sends it: quoted when it can be, else a literal.
pub fn quote(s: &str) -> String {
    if s.contains(['\r', '\n']) || s.len() > 1024 {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parsed<Command> {
        parse(s.as_bytes(), 1000, 200)
    }

    #[test]
    fn commands() {
        assert_eq!(p("CAPABILITY\r\n"), Parsed::Done(Command::Capability, 12));
        assert_eq!(
            p("putscript \"a\" {5+}\r\nkeep;\r\n"),
            Parsed::Done(
                Command::PutScript {
                    name: "a".into(),
                    script: b"keep;".to_vec()
                },
                27
            )
        );
        assert_eq!(
            p("HAVESPACE \"x\\\"y\" 100\r\n"),
            Parsed::Done(
                Command::HaveSpace {
                    name: "x\"y".into(),
                    size: 100
                },
                22
            )
        );
        assert_eq!(
            p("Authenticate \"PLAIN\" \"AGEAYg==\"\r\n"),
            Parsed::Done(
                Command::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial: Some("AGEAYg==".into())
                },
                33
            )
        );
    }

    #[test]
    fn xclient_takes_the_rest_of_the_line() {
        let line = "XCLIENT ADDR=192.0.2.7 PORT=5 SESSION=a+/= TTL=4\r\nNOOP\r\n";
        assert_eq!(
            p(line),
            Parsed::Done(
                Command::Xclient("ADDR=192.0.2.7 PORT=5 SESSION=a+/= TTL=4".into()),
                line.len() - 6
            )
        );
        assert_eq!(p("xclient ADDR=1"), Parsed::Incomplete);
        assert!(matches!(
            parse(
                format!("XCLIENT {}\r\n", "A".repeat(100)).as_bytes(),
                10,
                50
            ),
            Parsed::Bad(ParseError::TooLong, _)
        ));
    }

    #[test]
    fn incomplete_and_bad() {
        assert_eq!(p("PUTSCRIPT \"a\" {5+}\r\nke"), Parsed::Incomplete);
        assert_eq!(p("CAPABIL"), Parsed::Incomplete);
        assert!(matches!(
            p("FROB\r\nNOOP\r\n"),
            Parsed::Bad(ParseError::Unknown, 6)
        ));
        assert!(matches!(p("NOOP x\r\nNOOP\r\n"), Parsed::Bad(_, 8)));
        assert!(matches!(
            p("GETSCRIPT\r\n"),
            Parsed::Bad(ParseError::Arguments, 11)
        ));
        assert!(matches!(
            p("PUTSCRIPT \"a\" {99999}\r\n"),
            Parsed::Bad(ParseError::LiteralTooLarge, 23)
        ));
        let long = "NOOP ".to_string() + &"a".repeat(300);
        assert!(matches!(p(&long), Parsed::Bad(_, _)));
    }

    #[test]
    fn responses_and_quoting() {
        assert_eq!(
            parse_response(b"\"abc\"\r\n", 100),
            Parsed::Done(Some("abc".into()), 7)
        );
        assert_eq!(parse_response(b"*\r\n", 100), Parsed::Done(None, 3));
        assert_eq!(
            parse_response(b"{3+}\r\nabc\r\n", 100),
            Parsed::Done(Some("abc".into()), 11)
        );
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("a\r\nb"), "{4}\r\na\r\nb");
    }
}
