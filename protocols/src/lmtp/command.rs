//! LMTP command lines (RFC 2033, RFC 5321 4.1, RFC 3030 BDAT), parsed into [`Command`].

/// BODY= of MAIL FROM (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Lhlo(String),
    /// `MAIL FROM:<path>`; an empty path is the null sender `<>`.
    MailFrom {
        path: String,
        size: Option<u64>,
        body: Option<BodyType>,
    },
    RcptTo(String),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    /// HELO/EHLO: LMTP requires LHLO.
    Helo,
}

/// Why a line is not a command we accept, with the reply it gets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("500 5.5.1 Unknown command")]
    Unknown,
    #[error("501 5.5.4 {0}")]
    Syntax(&'static str),
    #[error("555 5.5.4 Unsupported parameter {0}")]
    UnsupportedParam(String),
}

impl ParseError {
    pub fn reply(&self) -> String {
        self.to_string()
    }
}

/// Splits the verb (case-insensitive) from its arguments.
fn verb(line: &str) -> (String, &str) {
    let line = line.trim_end();
    match line.find(' ') {
        Some(i) => (line[..i].to_ascii_uppercase(), line[i + 1..].trim_start()),
        None => (line.to_ascii_uppercase(), ""),
    }
}

/// Strips a case-insensitive prefix such as `FROM:`.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start())
}

/// Takes a `<path>` (or a bare address, as some clients send) and returns (path, rest).
/// A source route (`<@a,@b:user@d>`) is dropped as RFC 5321 says.
fn path(s: &str) -> Result<(String, &str), ParseError> {
    if let Some(inner) = s.strip_prefix('<') {
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '>' if !quoted => {
                    let addr = &inner[..i];
                    let addr = if addr.starts_with('@') {
                        addr.split_once(':').map(|(_, a)| a).unwrap_or("")
                    } else {
                        addr
                    };
                    return Ok((addr.to_string(), inner[i + 1..].trim_start()));
                }
                _ => {}
            }
        }
        Err(ParseError::Syntax("Invalid address: missing '>'"))
    } else {
        let end = s.find(' ').unwrap_or(s.len());
        if end == 0 {
            return Err(ParseError::Syntax("Missing address"));
        }
        Ok((s[..end].to_string(), s[end..].trim_start()))
    }
}

fn check_address(addr: &str) -> Result<(), ParseError> {
    if addr.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(ParseError::Syntax("Invalid address: control characters"));
    }
    if addr.len() > 512 {
        return Err(ParseError::Syntax("Invalid address: too long"));
    }
    Ok(())
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("Invalid UTF-8"))?;
    let (verb, args) = verb(line);
    let no_args = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax("Unexpected parameters"))
        }
    };
    match verb.as_str() {
        "LHLO" => {
            if args.is_empty() {
                return Err(ParseError::Syntax("Missing hostname"));
            }
            Ok(Command::Lhlo(args.to_string()))
        }
        "HELO" | "EHLO" => Ok(Command::Helo),
        "MAIL" => {
            let rest = strip_prefix_ci(args, "FROM:").ok_or(ParseError::Syntax(
                "Invalid parameters, expected FROM:<address>",
            ))?;
            let (path, params) = path(rest)?;
            check_address(&path)?;
            let (mut size, mut body) = (None, None);
            for param in params.split_ascii_whitespace() {
                let (key, value) = param.split_once('=').unwrap_or((param, ""));
                match key.to_ascii_uppercase().as_str() {
                    "SIZE" => {
                        size = Some(
                            value
                                .parse::<u64>()
                                .map_err(|_| ParseError::Syntax("Invalid SIZE parameter"))?,
                        )
                    }
                    "BODY" => {
                        body = Some(match value.to_ascii_uppercase().as_str() {
                            "7BIT" => BodyType::SevenBit,
                            "8BITMIME" => BodyType::EightBitMime,
                            "BINARYMIME" => BodyType::BinaryMime,
                            _ => return Err(ParseError::Syntax("Invalid BODY parameter")),
                        })
                    }
                    _ => return Err(ParseError::UnsupportedParam(key.to_string())),
                }
            }
            Ok(Command::MailFrom { path, size, body })
        }
        "RCPT" => {
            let rest = strip_prefix_ci(args, "TO:").ok_or(ParseError::Syntax(
                "Invalid parameters, expected TO:<address>",
            ))?;
            let (path, params) = path(rest)?;
            check_address(&path)?;
            if path.is_empty() {
                return Err(ParseError::Syntax("Invalid recipient: empty address"));
            }
            if let Some(param) = params.split_ascii_whitespace().next() {
                let key = param.split_once('=').map(|(k, _)| k).unwrap_or(param);
                return Err(ParseError::UnsupportedParam(key.to_string()));
            }
            Ok(Command::RcptTo(path))
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => {
            let mut it = args.split_ascii_whitespace();
            let size = it
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(ParseError::Syntax("Invalid chunk size"))?;
            let last = match it.next() {
                None => false,
                Some(s) if s.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax("Invalid BDAT parameter")),
            };
            if it.next().is_some() {
                return Err(ParseError::Syntax("Unexpected parameters"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => no_args(Command::Rset),
        // NOOP may carry a string (RFC 5321 4.1.1.9).
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy),
        _ => Err(ParseError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes())
    }

    #[test]
    fn mail_from_variants() {
        assert_eq!(
            p("MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME"),
            Ok(Command::MailFrom {
                path: "a@b".into(),
                size: Some(100),
                body: Some(BodyType::EightBitMime)
            })
        );
        assert_eq!(
            p("mail from: <>"),
            Ok(Command::MailFrom {
                path: String::new(),
                size: None,
                body: None
            })
        );
        assert_eq!(
            p("MAIL FROM:<@relay:a@b>").unwrap(),
            Command::MailFrom {
                path: "a@b".into(),
                size: None,
                body: None
            }
        );
        assert!(matches!(
            p("MAIL FROM:<a@b> SIZE=x"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            p("MAIL FROM:<a@b> RET=FULL"),
            Err(ParseError::UnsupportedParam(_))
        ));
        assert!(matches!(p("MAIL TO:<a@b>"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("MAIL FROM:<a@b"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn rcpt_to_with_quotes_and_brackets() {
        assert_eq!(
            p("RCPT TO:<\"a>b\"@x>"),
            Ok(Command::RcptTo("\"a>b\"@x".into()))
        );
        assert_eq!(
            p("rcpt to:user+box@x"),
            Ok(Command::RcptTo("user+box@x".into()))
        );
        assert!(matches!(p("RCPT TO:<>"), Err(ParseError::Syntax(_))));
        assert!(matches!(p("RCPT TO:<a\x01@x>"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn bdat() {
        assert_eq!(
            p("BDAT 10"),
            Ok(Command::Bdat {
                size: 10,
                last: false
            })
        );
        assert_eq!(
            p("bdat 0 last"),
            Ok(Command::Bdat {
                size: 0,
                last: true
            })
        );
        assert!(p("BDAT").is_err());
        assert!(p("BDAT -1").is_err());
        assert!(p("BDAT 1 LAST x").is_err());
    }

    #[test]
    fn simple_verbs() {
        assert_eq!(p("LHLO host"), Ok(Command::Lhlo("host".into())));
        assert!(p("LHLO").is_err());
        assert_eq!(p("data"), Ok(Command::Data));
        assert_eq!(p("NOOP hi"), Ok(Command::Noop));
        assert_eq!(p("VRFY x"), Ok(Command::Vrfy));
        assert_eq!(p("EHLO x"), Ok(Command::Helo));
        assert_eq!(p("XYZZY"), Err(ParseError::Unknown));
        assert!(parse(b"\xff\xfe").is_err());
        assert_eq!(p(""), Err(ParseError::Unknown));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_line_parses_or_errors(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&line);
        }

        #[test]
        fn verbs_with_random_arguments(
            verb in prop::sample::select(vec!["MAIL FROM:", "RCPT TO:", "BDAT ", "LHLO ", "mail from:<"]),
            rest in "[ -~]{0,80}",
        ) {
            let _ = parse(format!("{verb}{rest}").as_bytes());
        }
    }
}
