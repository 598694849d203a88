//! POP3 command lines (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The rest of the line: passwords may contain spaces.
    Pass(String),
    /// `AUTH` alone lists mechanisms; else the mechanism and an optional initial response.
    Auth(Option<(String, Option<String>)>),
    /// APOP name digest (RFC 1939).
    Apop(String, String),
    Capa,
    Stls,
    /// `XCLIENT ADDR=... PORT=... SESSION=...` from a proxy (the arguments as given).
    Xclient(String),
    Stat,
    List(Option<u32>),
    Retr(u32),
    Top(u32, u32),
    Dele(u32),
    Rset,
    Uidl(Option<u32>),
    Noop,
    Quit,
}

// Never print a password or an initial response.
impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass(<hidden>)"),
            Command::Auth(Some((mech, _))) => write!(f, "Auth({mech})"),
            Command::Auth(None) => f.write_str("Auth"),
            Command::Apop(u, _) => write!(f, "Apop({u:?})"),
            Command::User(u) => write!(f, "User({u:?})"),
            Command::Capa => f.write_str("Capa"),
            Command::Stls => f.write_str("Stls"),
            Command::Xclient(a) => write!(f, "Xclient({a:?})"),
            Command::Stat => f.write_str("Stat"),
            Command::List(n) => write!(f, "List({n:?})"),
            Command::Retr(n) => write!(f, "Retr({n})"),
            Command::Top(n, m) => write!(f, "Top({n}, {m})"),
            Command::Dele(n) => write!(f, "Dele({n})"),
            Command::Rset => f.write_str("Rset"),
            Command::Uidl(n) => write!(f, "Uidl({n:?})"),
            Command::Noop => f.write_str("Noop"),
            Command::Quit => f.write_str("Quit"),
        }
    }
}

/// A line that is not a command we accept; `Display` is the `-ERR` reply text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Unknown command: {0}")]
    Unknown(String),
    #[error("{0}")]
    Syntax(&'static str),
    #[error("Invalid message number: {0}")]
    InvalidNumber(String),
    #[error("Invalid number of lines: {0}")]
    InvalidLines(String),
}

fn number(arg: Option<&str>) -> Result<u32, ParseError> {
    let arg = arg.ok_or(ParseError::Syntax("Message number missing."))?;
    arg.parse::<u32>()
        .map_err(|_| ParseError::InvalidNumber(arg.chars().take(32).collect()))
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let mut args = rest.split_ascii_whitespace();
    let verb = verb.to_ascii_uppercase();
    let no_more = |mut args: std::str::SplitAsciiWhitespace<'_>, cmd: Command| {
        if args.next().is_some() {
            Err(ParseError::Syntax("Too many arguments."))
        } else {
            Ok(cmd)
        }
    };
    match verb.as_str() {
        "USER" => match args.next() {
            Some(user) => no_more(args, Command::User(user.to_string())),
            None => Err(ParseError::Syntax("No username given.")),
        },
        "PASS" => Ok(Command::Pass(rest.to_string())),
        "AUTH" => {
            Ok(Command::Auth(args.next().map(|mech| {
                (mech.to_string(), args.next().map(str::to_string))
            })))
        }
        "APOP" => {
            let (Some(user), Some(digest)) = (args.next(), args.next()) else {
                return Err(ParseError::Syntax("APOP needs a name and a digest."));
            };
            no_more(args, Command::Apop(user.to_string(), digest.to_string()))
        }
        "CAPA" => no_more(args, Command::Capa),
        "STLS" => no_more(args, Command::Stls),
        "XCLIENT" => Ok(Command::Xclient(rest.to_string())),
        "STAT" => no_more(args, Command::Stat),
        "LIST" => match args.next() {
            None => Ok(Command::List(None)),
            Some(n) => no_more(args, Command::List(Some(number(Some(n))?))),
        },
        "RETR" => {
            let n = number(args.next())?;
            no_more(args, Command::Retr(n))
        }
        "TOP" => {
            let n = number(args.next())?;
            let lines = args
                .next()
                .ok_or(ParseError::Syntax("Number of lines missing."))?;
            let lines = lines
                .parse::<u32>()
                .map_err(|_| ParseError::InvalidLines(lines.chars().take(32).collect()))?;
            no_more(args, Command::Top(n, lines))
        }
        "DELE" => {
            let n = number(args.next())?;
            no_more(args, Command::Dele(n))
        }
        "RSET" => no_more(args, Command::Rset),
        "UIDL" => match args.next() {
            None => Ok(Command::Uidl(None)),
            Some(n) => no_more(args, Command::Uidl(Some(number(Some(n))?))),
        },
        "NOOP" => no_more(args, Command::Noop),
        "QUIT" => no_more(args, Command::Quit),
        _ => Err(ParseError::Unknown(
            verb.chars().filter(|c| !c.is_control()).take(32).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn commands() {
        assert_eq!(p("user demo"), Ok(Command::User("demo".into())));
        assert_eq!(p("PASS a b  c"), Ok(Command::Pass("a b  c".into())));
        assert_eq!(p("AUTH"), Ok(Command::Auth(None)));
        assert_eq!(
            p("AUTH PLAIN AGRlbW8AZGVtbw=="),
            Ok(Command::Auth(Some((
                "PLAIN".into(),
                Some("AGRlbW8AZGVtbw==".into())
            ))))
        );
        assert_eq!(p("list"), Ok(Command::List(None)));
        assert_eq!(p("LIST 3"), Ok(Command::List(Some(3))));
        assert_eq!(p("TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(p("UIDL 2 "), Ok(Command::Uidl(Some(2))));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
    }

    #[test]
    fn errors() {
        assert_eq!(p("RETR x"), Err(ParseError::InvalidNumber("x".into())));
        assert_eq!(p("RETR -1"), Err(ParseError::InvalidNumber("-1".into())));
        assert_eq!(
            p("RETR 99999999999"),
            Err(ParseError::InvalidNumber("99999999999".into()))
        );
        assert!(matches!(p("RETR"), Err(ParseError::Syntax(_))));
        assert_eq!(p("TOP 1 x"), Err(ParseError::InvalidLines("x".into())));
        assert!(matches!(p("TOP 1"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("DELE 1 2"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("USER"), Err(ParseError::Syntax(_))));
        assert_eq!(p("XTND"), Err(ParseError::Unknown("XTND".into())));
        assert_eq!(p(""), Err(ParseError::Unknown(String::new())));
        assert!(parse(b"\xff\x00 1").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let s = format!("{:?}", p("PASS hunter2").unwrap());
        assert!(!s.contains("hunter2"));
        let s = format!("{:?}", p("AUTH PLAIN c2VjcmV0").unwrap());
        assert!(!s.contains("c2VjcmV0"));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_line_parses_or_errors(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(e) = parse(&line) {
                // Error texts go back to the client on one line.
                prop_assert!(!e.to_string().contains(['\r', '\n']));
            }
        }
    }
}
