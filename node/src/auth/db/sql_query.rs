//! Turns a Dovecot SQL query (`... WHERE userid = '%u'`) into a prepared statement with
//! bound parameters: a quoted literal holding variables (`'%n@%d'`) becomes one parameter
//! whose value is the expanded literal, a bare variable becomes a parameter too. A user
//! name therefore never becomes SQL text, whatever it contains.

use super::vars::{self, Piece};
use super::Request;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Pg,
    MySql,
    Sqlite,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The statement with `$1`/`?` placeholders.
    pub sql: String,
    /// One template per placeholder, in order.
    pub params: Vec<Vec<Piece>>,
}

impl Prepared {
    pub fn new(query: &str, dialect: Dialect) -> Result<Prepared, String> {
        let mut sql = String::new();
        let mut params: Vec<Vec<Piece>> = Vec::new();
        let placeholder = |sql: &mut String, params: &mut Vec<Vec<Piece>>, t: Vec<Piece>| {
            params.push(t);
            match dialect {
                Dialect::Pg => sql.push_str(&format!("${}", params.len())),
                Dialect::MySql | Dialect::Sqlite => sql.push('?'),
            }
        };
        let chars: Vec<char> = query.chars().collect();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            // MySQL reads "..." as a string; elsewhere it quotes an identifier.
            let string_quote = c == '\'' || (c == '"' && dialect == Dialect::MySql);
            if string_quote {
                let (content, next) = literal(&chars, i, c, dialect)?;
                i = next;
                let pieces = vars::parse(&content).map_err(|e| format!("query: {e}"))?;
                if pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
                    placeholder(&mut sql, &mut params, pieces);
                } else {
                    // No variable: the literal as written (with `%%` made `%`, as Dovecot).
                    let text: String = pieces
                        .iter()
                        .map(|p| match p {
                            Piece::Lit(s) => s.as_str(),
                            Piece::Var(_) => "",
                        })
                        .collect();
                    sql.push('\'');
                    sql.push_str(&text.replace('\'', "''"));
                    sql.push('\'');
                }
                continue;
            }
            if c == '"' {
                // A quoted identifier: copied through; a variable in it is refused.
                let (content, next) = literal(&chars, i, c, dialect)?;
                if content.contains('%') {
                    return Err(format!(
                        "query: a variable inside the quoted identifier \"{content}\" cannot be bound"
                    ));
                }
                sql.push('"');
                sql.push_str(&content.replace('"', "\"\""));
                sql.push('"');
                i = next;
                continue;
            }
            if c == '%' {
                // A bare variable: up to the end of the variable token.
                let mut j = i + 1;
                while matches!(chars.get(j), Some('L' | 'U')) {
                    j += 1;
                }
                match chars.get(j) {
                    Some('{') => {
                        while chars.get(j).is_some_and(|&c| c != '}') {
                            j += 1;
                        }
                    }
                    Some('%') if j == i + 1 => {
                        sql.push('%');
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
                let token: String = chars.get(i..=j).unwrap_or_default().iter().collect();
                let pieces = vars::parse(&token).map_err(|e| format!("query: {e}"))?;
                placeholder(&mut sql, &mut params, pieces);
                i = j + 1;
                continue;
            }
            if dialect == Dialect::Pg && c == '$' {
                return Err("query: '$' placeholders of its own are not supported; use Dovecot's %variables".into());
            }
            if c == '?' && dialect != Dialect::Pg {
                return Err("query: '?' placeholders of its own are not supported; use Dovecot's %variables".into());
            }
            sql.push(c);
            i += 1;
        }
        Ok(Prepared { sql, params })
    }

    /// The parameter values for one request.
    pub fn values(&self, req: &Request) -> Result<Vec<String>, String> {
        self.params
            .iter()
            .map(|p| vars::expand(p, req, &|_| None, &|s| s.to_string()))
            .collect()
    }
}

/// The content of the quoted literal starting at `start` and the index after it. A doubled
/// quote is one quote; MySQL also takes a backslash escape.
fn literal(
    chars: &[char],
    start: usize,
    quote: char,
    dialect: Dialect,
) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(format!("query: unterminated {quote}...{quote}")),
            Some('\\') if dialect == Dialect::MySql => {
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                }
                i += 2;
            }
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    out.push(quote);
                    i += 2;
                } else {
                    return Ok((out, i + 1));
                }
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str) -> Request {
        Request {
            user: user.into(),
            rip: Some("192.0.2.7".parse().unwrap()),
            ..Request::default()
        }
    }

    #[test]
    fn variables_become_parameters() {
        let q =
            "SELECT username AS user, password FROM mailbox WHERE username = '%u' AND active = '1'";
        let p = Prepared::new(q, Dialect::Pg).unwrap();
        assert_eq!(
            p.sql,
            "SELECT username AS user, password FROM mailbox WHERE username = $1 AND active = '1'"
        );
        let evil = req("x' OR '1'='1");
        assert_eq!(p.values(&evil).unwrap(), vec!["x' OR '1'='1".to_string()]);
        let m = Prepared::new(
            "SELECT \"x\" AS a FROM users WHERE userid = \"%n\" AND domain = '%d' AND ip <> %r",
            Dialect::MySql,
        )
        .unwrap();
        assert_eq!(
            m.sql,
            "SELECT 'x' AS a FROM users WHERE userid = ? AND domain = ? AND ip <> ?"
        );
        assert_eq!(
            m.values(&req("bob@example.com")).unwrap(),
            vec!["bob", "example.com", "192.0.2.7"]
        );
        let both = Prepared::new(
            "SELECT 1 FROM t WHERE email = '%n@%d' AND n LIKE 'a%%'",
            Dialect::Sqlite,
        )
        .unwrap();
        assert_eq!(both.sql, "SELECT 1 FROM t WHERE email = ? AND n LIKE 'a%'");
        assert_eq!(both.values(&req("a@b")).unwrap(), vec!["a@b"]);
        let long = Prepared::new("SELECT 1 FROM t WHERE u = %{user}", Dialect::Pg).unwrap();
        assert_eq!(long.sql, "SELECT 1 FROM t WHERE u = $1");
        // Quoted identifiers stay identifiers in PostgreSQL.
        let ident =
            Prepared::new("SELECT \"home dir\" FROM t WHERE u = '%Lu'", Dialect::Pg).unwrap();
        assert_eq!(ident.sql, "SELECT \"home dir\" FROM t WHERE u = $1");
        assert_eq!(ident.values(&req("A@B")).unwrap(), vec!["a@b"]);
        assert!(Prepared::new("SELECT '%u", Dialect::Pg).is_err());
        assert!(Prepared::new("SELECT 1 WHERE a = $1", Dialect::Pg).is_err());
        assert!(Prepared::new("SELECT '%q'", Dialect::Pg).is_err());
    }
}
