//! RFC 5228 section 8.2: tokens to a tree of generic commands.

use crate::ast::{Arg, Node, PosArg};
use crate::error::CompileError;
use crate::lexer::{Tok, Token};

/// Nesting of blocks and tests past which a script is refused (no stack overflow on input).
pub const MAX_NESTING: usize = 64;

pub struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, CompileError>;

pub fn parse(toks: Vec<Token>) -> Result<Vec<Node>, CompileError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let cmds = p.commands()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(p.err_at(t, "unexpected '}'"));
    }
    Ok(cmds)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn err_at(&self, t: &Token, msg: &str) -> CompileError {
        CompileError::new(t.line, t.col, msg)
    }

    fn err_here(&self, msg: &str) -> CompileError {
        match self.toks.get(self.pos) {
            Some(t) => self.err_at(t, &format!("{msg}, found {}", describe(&t.tok))),
            None => {
                let (line, col) = self.toks.last().map(|t| (t.line, t.col)).unwrap_or((1, 1));
                CompileError::new(line, col, format!("{msg}, found end of script"))
            }
        }
    }

    fn commands(&mut self) -> PResult<Vec<Node>> {
        let mut out = Vec::new();
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Ident(_) => out.push(self.command()?),
                Tok::RBrace => break,
                _ => return Err(self.err_here("expected a command")),
            }
        }
        Ok(out)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.err_here("nesting too deep"));
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Node> {
        let mut node = self.test_or_command()?;
        match self.peek() {
            Some(Tok::Semi) => {
                self.pos += 1;
            }
            Some(Tok::LBrace) => {
                self.pos += 1;
                self.enter()?;
                let block = self.commands()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::RBrace) {
                    return Err(self.err_here("expected '}'"));
                }
                self.pos += 1;
                node.block = Some(block);
            }
            _ => return Err(self.err_here("expected ';' or '{'")),
        }
        Ok(node)
    }

    /// identifier arguments: shared by commands and tests.
    fn test_or_command(&mut self) -> PResult<Node> {
        let Some(t) = self.toks.get(self.pos) else {
            return Err(self.err_here("expected an identifier"));
        };
        let Tok::Ident(name) = &t.tok else {
            return Err(self.err_here("expected an identifier"));
        };
        let mut node = Node {
            name: name.clone(),
            line: t.line,
            col: t.col,
            ..Node::default()
        };
        self.pos += 1;
        while let Some(t) = self.toks.get(self.pos) {
            let (line, col) = (t.line, t.col);
            let arg = match &t.tok {
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Number(n) => Arg::Num(*n),
                Tok::Tag(s) => Arg::Tag(s.clone()),
                Tok::LBracket => {
                    self.pos += 1;
                    let list = self.string_list()?;
                    node.args.push(PosArg {
                        arg: Arg::List(list),
                        line,
                        col,
                    });
                    continue;
                }
                _ => break,
            };
            self.pos += 1;
            node.args.push(PosArg { arg, line, col });
        }
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.enter()?;
                loop {
                    node.tests.push(self.test_or_command()?);
                    match self.peek() {
                        Some(Tok::Comma) => self.pos += 1,
                        Some(Tok::RParen) => {
                            self.pos += 1;
                            break;
                        }
                        _ => {
                            self.depth -= 1;
                            return Err(self.err_here("expected ',' or ')' in test list"));
                        }
                    }
                }
                self.depth -= 1;
            }
            Some(Tok::Ident(_)) => {
                self.enter()?;
                node.tests.push(self.test_or_command()?);
                self.depth -= 1;
            }
            _ => {}
        }
        Ok(node)
    }

    fn string_list(&mut self) -> PResult<Vec<String>> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Str(s)) => out.push(s.clone()),
                _ => return Err(self.err_here("expected a string in string list")),
            }
            self.pos += 1;
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::RBracket) => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(self.err_here("expected ',' or ']' in string list")),
            }
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("identifier '{s}'"),
        Tok::Tag(s) => format!("tag ':{s}'"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Str(_) => "string".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Semi => "';'".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn p(s: &str) -> Result<Vec<Node>, CompileError> {
        parse(tokenize(s).0)
    }

    #[test]
    fn nested_structure() {
        let cmds =
            p("if anyof (true, header :is \"a\" \"b\") { keep; } else { discard; }").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].tests[0].tests.len(), 2);
        assert_eq!(cmds[0].tests[0].tests[1].args.len(), 3);
        assert_eq!(cmds[1].name, "else");
    }

    #[test]
    fn errors_with_line() {
        let e = p("keep;\nfileinto \"a\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(p("if true { keep;").is_err());
        assert!(p("keep; }").is_err());
        assert!(p("x [\"a\",];").is_err());
    }

    #[test]
    fn deep_nesting_refused() {
        let s = "not ".repeat(10_000);
        assert!(p(&format!("if {s} true {{ keep; }}")).is_err());
        let s = "if true {".repeat(10_000);
        assert!(p(&s).is_err());
    }
}
