//! Dovecot's `%` variables in driver templates: `%u %n %d %s %l %r %h %p`, the long forms
//! `%{user}`, `%{username}`, `%{domain}`, `%{service}`, `%{lip}`, `%{rip}`, `%{home}`,
//! `%{pid}`, driver-specific ones such as `%{ldap:attr}`, the `L` (lower) and `U` (upper)
//! modifiers (`%Lu`, `%L{user}`) and `%%`. A template is parsed once (at start-up: a typo is
//! a configuration error) and expanded per request; the caller decides what a value becomes
//! (SQL: a bound parameter; LDAP: an RFC 4515-escaped filter value).

use super::Request;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Var(Var),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Var {
    /// The long name (`user`, `ldap:mail`, ...).
    pub name: String,
    pub case: Case,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Keep,
    Lower,
    Upper,
}

fn long_name(short: char) -> Option<&'static str> {
    Some(match short {
        'u' => "user",
        'n' => "username",
        'd' => "domain",
        's' => "service",
        'l' => "lip",
        'r' => "rip",
        'h' => "home",
        'p' => "pid",
        _ => return None,
    })
}

/// Parses a template; an unknown short variable or an unclosed `%{` is an error.
pub fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let mut case = Case::Keep;
        loop {
            match chars.peek() {
                Some('L') => case = Case::Lower,
                Some('U') => case = Case::Upper,
                _ => break,
            }
            chars.next();
        }
        let name = match chars.next() {
            Some('%') if case == Case::Keep => {
                lit.push('%');
                continue;
            }
            Some('{') => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("{template:?}: unclosed %{{")),
                    }
                }
                // Dovecot 2.3 also accepts the modifier inside: %{L:user}.
                if let Some(rest) = name.strip_prefix("L:") {
                    case = Case::Lower;
                    name = rest.to_string();
                } else if let Some(rest) = name.strip_prefix("U:") {
                    case = Case::Upper;
                    name = rest.to_string();
                }
                if name.is_empty() {
                    return Err(format!("{template:?}: empty %{{}}"));
                }
                name
            }
            Some(c) => long_name(c)
                .ok_or_else(|| format!("{template:?}: unknown variable %{c}"))?
                .to_string(),
            None => return Err(format!("{template:?}: a lone % at the end")),
        };
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Var(Var { name, case }));
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// The value of a request variable; None for a name this module does not know (a driver
/// may know it: `ldap:...`).
pub fn request_value(req: &Request, name: &str) -> Option<String> {
    let (local, domain) = match req.user.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (req.user.as_str(), ""),
    };
    Some(match name {
        "user" | "orig_user" => req.user.clone(),
        "username" | "orig_username" => local.to_string(),
        "domain" | "orig_domain" => domain.to_string(),
        "service" => req.service.clone(),
        "lip" | "local_ip" => req.lip.map(|i| i.to_string()).unwrap_or_default(),
        "rip" | "remote_ip" | "real_rip" => req.rip.map(|i| i.to_string()).unwrap_or_default(),
        "pid" => std::process::id().to_string(),
        _ => return None,
    })
}

impl Var {
    /// The value with the case modifier applied; `extra` resolves names the request does not.
    pub fn value(
        &self,
        req: &Request,
        extra: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        let v = extra(&self.name)
            .or_else(|| request_value(req, &self.name))
            .ok_or_else(|| format!("unknown variable %{{{}}}", self.name))?;
        Ok(match self.case {
            Case::Keep => v,
            Case::Lower => v.to_lowercase(),
            Case::Upper => v.to_uppercase(),
        })
    }
}

/// Expands parsed pieces, passing each variable's value through `escape`.
pub fn expand(
    pieces: &[Piece],
    req: &Request,
    extra: &dyn Fn(&str) -> Option<String>,
    escape: &dyn Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Var(v) => out.push_str(&escape(&v.value(req, extra)?)),
        }
    }
    Ok(out)
}

/// Expands a template without escaping.
#[cfg(test)]
pub fn expand_plain(template: &str, req: &Request) -> Result<String, String> {
    expand(&parse(template)?, req, &|_| None, &|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            user: "Alice@Example.com".into(),
            service: "imap".into(),
            rip: Some("192.0.2.1".parse().unwrap()),
            ..Request::default()
        }
    }

    #[test]
    fn short_long_and_modifiers() {
        let r = req();
        let x = |t: &str| expand_plain(t, &r).unwrap();
        assert_eq!(x("/var/vmail/%d/%n"), "/var/vmail/Example.com/Alice");
        assert_eq!(x("%Lu"), "alice@example.com");
        assert_eq!(x("%L{username}-%U{domain}"), "alice-EXAMPLE.COM");
        assert_eq!(x("%{L:user}"), "alice@example.com");
        assert_eq!(x("%s from %r 100%%"), "imap from 192.0.2.1 100%");
        assert!(parse("%q").is_err());
        assert!(parse("%{user").is_err());
        assert!(parse("50%").is_err());
        assert!(expand_plain("%{nonsense}", &r).is_err());
        let pieces = parse("(uid=%{ldap:uid})").unwrap();
        let got = expand(
            &pieces,
            &r,
            &|n| (n == "ldap:uid").then(|| "a*".to_string()),
            &|s| s.replace('*', "\\2a"),
        )
        .unwrap();
        assert_eq!(got, "(uid=a\\2a)");
    }
}
