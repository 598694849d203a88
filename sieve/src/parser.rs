//! RFC 5228 section 8.2: tokens to a tree of generic commands.

use crate::ast::{Arg, Node, PosArg};
use crate::error::CompileError;
use crate::lexer::{Tok, Token};

/// Pigeonhole's limits: command blocks and tests nest at most this deep, and a command takes at
/// most this many arguments (no stack overflow on input, and the same scripts are refused).
pub const MAX_BLOCK_NESTING: usize = 32;
pub const MAX_TEST_NESTING: usize = 32;
pub const MAX_ARGUMENTS: usize = 32;
/// Parsing stops after this many errors (the compiler's limit).
const MAX_ERRORS: usize = 100;

pub struct Parser {
    toks: Vec<Token>,
    pos: usize,
    blocks: usize,
    tests: usize,
    errors: Vec<CompileError>,
}

type PResult<T> = Result<T, CompileError>;

/// Parses a whole script. After an error the parser resynchronises at the end of the broken
/// command (its `;`, the end of its block, or the end of the enclosing block) and goes on, so
/// one compile reports every syntax error, as Pigeonhole does.
pub fn parse(toks: Vec<Token>) -> Result<Vec<Node>, Vec<CompileError>> {
    let mut p = Parser {
        toks,
        pos: 0,
        blocks: 0,
        tests: 0,
        errors: Vec::new(),
    };
    let mut cmds = p.commands();
    while p.pos < p.toks.len() && p.errors.len() < MAX_ERRORS {
        // A stray '}' at the top: report it, skip it and parse what follows.
        if let Some(t) = p.toks.get(p.pos) {
            let e = p.err_at(t, "unexpected '}'");
            p.errors.push(e);
        }
        p.pos += 1;
        cmds.extend(p.commands());
    }
    if p.errors.is_empty() {
        Ok(cmds)
    } else {
        p.errors.truncate(MAX_ERRORS);
        Err(p.errors)
    }
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

    /// Commands up to the end of the block (a '}', left for the caller) or of the script.
    fn commands(&mut self) -> Vec<Node> {
        let mut out = Vec::new();
        while let Some(tok) = self.peek() {
            if self.errors.len() >= MAX_ERRORS {
                self.pos = self.toks.len();
                break;
            }
            let r = match tok {
                Tok::RBrace => break,
                Tok::Ident(_) => {
                    let (blocks, tests) = (self.blocks, self.tests);
                    let r = self.command();
                    if r.is_err() {
                        (self.blocks, self.tests) = (blocks, tests);
                    }
                    r
                }
                _ => Err(self.err_here("expected a command")),
            };
            match r {
                Ok(n) => out.push(n),
                Err(e) => {
                    self.errors.push(e);
                    self.recover();
                }
            }
        }
        out
    }

    /// Skips the rest of a broken command: through its `;` or its whole `{ ... }` block, or up
    /// to (not through) the '}' that closes the enclosing block.
    fn recover(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Semi if depth == 0 => {
                    self.pos += 1;
                    return;
                }
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth == 0 => return,
                Tok::RBrace => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn command(&mut self) -> PResult<Node> {
        let mut node = self.test_or_command()?;
        match self.peek() {
            Some(Tok::Semi) => {
                self.pos += 1;
            }
            Some(Tok::LBrace) => {
                if self.blocks >= MAX_BLOCK_NESTING {
                    return Err(self.err_here(&format!(
                        "cannot nest command blocks deeper than {MAX_BLOCK_NESTING} levels"
                    )));
                }
                self.pos += 1;
                self.blocks += 1;
                let block = self.commands();
                self.blocks -= 1;
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

    fn enter_test(&mut self) -> PResult<()> {
        if self.tests >= MAX_TEST_NESTING {
            return Err(self.err_here(&format!(
                "cannot nest tests deeper than {MAX_TEST_NESTING} levels"
            )));
        }
        self.tests += 1;
        Ok(())
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
            if node.args.len() > MAX_ARGUMENTS {
                return Err(self.err_at(
                    &Token {
                        tok: Tok::Comma,
                        line,
                        col,
                    },
                    &format!(
                        "too many arguments for '{}' (at most {MAX_ARGUMENTS})",
                        node.name
                    ),
                ));
            }
        }
        match self.peek() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.enter_test()?;
                loop {
                    node.tests.push(self.test_or_command()?);
                    match self.peek() {
                        Some(Tok::Comma) => self.pos += 1,
                        Some(Tok::RParen) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err(self.err_here("expected ',' or ')' in test list")),
                    }
                }
                self.tests -= 1;
            }
            Some(Tok::Ident(_)) => {
                self.enter_test()?;
                node.tests.push(self.test_or_command()?);
                self.tests -= 1;
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
        Tok::Invalid => "invalid characters".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn p(s: &str) -> Result<Vec<Node>, CompileError> {
        parse(tokenize(s).0).map_err(|mut e| e.remove(0))
    }

    fn count(s: &str) -> usize {
        parse(tokenize(s).0).err().map_or(0, |e| e.len())
    }

    #[test]
    fn recovers_and_reports_later_errors() {
        // Missing ';' inside blocks: each reported once, the blocks still close.
        let s = "if true { if true { keep } }\nif true { keep, keep }\nkeep;\nif true { discard }";
        assert_eq!(count(s), 3);
        // A spurious comma in a test list: the broken command's block is skipped whole.
        let s = "if true { if anyof(true,) { keep; } }\nif anyof(true,) { if true { stop; } }";
        assert_eq!(count(s), 2);
        // A stray '}' at the top and a garbage argument, then a good command.
        let (toks, lex) = tokenize("keep; } friep $$$; keep;");
        assert_eq!(lex.len(), 1);
        assert_eq!(parse(toks).unwrap_err().len(), 2);
    }

    #[test]
    fn pigeonhole_limits() {
        let deep = format!("{}stop;{}", "if true {".repeat(40), "}".repeat(40));
        assert_eq!(count(&deep), 1);
        let ok = format!("{}stop;{}", "if true {".repeat(32), "}".repeat(32));
        assert_eq!(count(&ok), 0);
        let args = format!("frop {};", "\"a\" ".repeat(MAX_ARGUMENTS + 1));
        assert_eq!(count(&args), 1);
        let tests = format!("if {} true {{ stop; }} keep;", "not ".repeat(40));
        assert_eq!(count(&tests), 1);
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
