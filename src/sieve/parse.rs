//! The generic Sieve grammar (RFC 5228 §8.2): commands with arguments, tests and blocks.
//! Nothing here knows what a command means; `validate` turns this tree into the typed one.

use super::CompileError;
use super::lexer::{Tok, Token};

/// Deepest nesting of blocks and test lists accepted; deeper scripts are refused at compile
/// time, so neither the parser nor the interpreter can exhaust the stack.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Tag(String),
    Number(u64),
    /// A single string (`"x"`) or a string list (`["x", "y"]`); `list` tells which.
    Strings {
        items: Vec<String>,
        list: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub name: String,
    pub line: usize,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub line: usize,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
    /// `Some` when the command ends in a block rather than ";".
    pub block: Option<Vec<Command>>,
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
}

pub fn parse(toks: &[Token]) -> Result<Vec<Command>, CompileError> {
    let mut p = Parser { toks, pos: 0 };
    let cmds = p.commands(0)?;
    if let Some(t) = p.peek() {
        return Err(CompileError::new(t.line, "unexpected '}'"));
    }
    Ok(cmds)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn line(&self) -> usize {
        self.peek()
            .or(self.toks.last())
            .map(|t| t.line)
            .unwrap_or(1)
    }
    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().is_some_and(|t| &t.tok == tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn commands(&mut self, depth: usize) -> Result<Vec<Command>, CompileError> {
        let mut out = Vec::new();
        while let Some(t) = self.peek() {
            match &t.tok {
                Tok::RBrace => break,
                Tok::Ident(name) => {
                    let (name, line) = (name.clone(), t.line);
                    self.pos += 1;
                    out.push(self.command(name, line, depth)?);
                }
                other => {
                    return Err(CompileError::new(
                        t.line,
                        &format!("expected a command, found {}", describe(other)),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn command(
        &mut self,
        name: String,
        line: usize,
        depth: usize,
    ) -> Result<Command, CompileError> {
        let (args, tests) = self.arguments(depth)?;
        let block = if self.eat(&Tok::Semi) {
            None
        } else if self.eat(&Tok::LBrace) {
            if depth + 1 > MAX_NESTING {
                return Err(CompileError::new(line, "blocks nested too deeply"));
            }
            let body = self.commands(depth + 1)?;
            if !self.eat(&Tok::RBrace) {
                return Err(CompileError::new(
                    self.line(),
                    &format!("missing '}}' to close the block of '{name}' on line {line}"),
                ));
            }
            Some(body)
        } else {
            return Err(CompileError::new(
                self.line(),
                &format!("missing ';' after command '{name}'"),
            ));
        };
        Ok(Command {
            name,
            line,
            args,
            tests,
            block,
        })
    }

    /// `*argument [ test / test-list ]`.
    fn arguments(&mut self, depth: usize) -> Result<(Vec<Arg>, Vec<Test>), CompileError> {
        let mut args = Vec::new();
        while let Some(t) = self.peek() {
            match &t.tok {
                Tok::Tag(s) => {
                    args.push(Arg::Tag(s.clone()));
                    self.pos += 1;
                }
                Tok::Number(n) => {
                    args.push(Arg::Number(*n));
                    self.pos += 1;
                }
                Tok::Str(s) => {
                    args.push(Arg::Strings {
                        items: vec![s.clone()],
                        list: false,
                    });
                    self.pos += 1;
                }
                Tok::LBracket => {
                    self.pos += 1;
                    args.push(Arg::Strings {
                        items: self.string_list()?,
                        list: true,
                    });
                }
                _ => break,
            }
        }
        let mut tests = Vec::new();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Ident(_)) => tests.push(self.test(depth + 1)?),
            Some(Tok::LParen) => {
                self.pos += 1;
                loop {
                    tests.push(self.test(depth + 1)?);
                    if self.eat(&Tok::Comma) {
                        continue;
                    }
                    if self.eat(&Tok::RParen) {
                        break;
                    }
                    return Err(CompileError::new(
                        self.line(),
                        "expected ',' or ')' in a test list",
                    ));
                }
            }
            _ => {}
        }
        Ok((args, tests))
    }

    fn string_list(&mut self) -> Result<Vec<String>, CompileError> {
        let mut items = Vec::new();
        loop {
            match self.peek().map(|t| t.tok.clone()) {
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    items.push(s);
                }
                _ => {
                    return Err(CompileError::new(
                        self.line(),
                        "expected a string in a string list",
                    ));
                }
            }
            if self.eat(&Tok::Comma) {
                continue;
            }
            if self.eat(&Tok::RBracket) {
                return Ok(items);
            }
            return Err(CompileError::new(
                self.line(),
                "expected ',' or ']' in a string list",
            ));
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, CompileError> {
        let line = self.line();
        if depth > MAX_NESTING {
            return Err(CompileError::new(line, "tests nested too deeply"));
        }
        let Some(Token {
            tok: Tok::Ident(name),
            ..
        }) = self.peek().cloned()
        else {
            return Err(CompileError::new(line, "expected a test"));
        };
        self.pos += 1;
        let (args, tests) = self.arguments(depth)?;
        Ok(Test {
            name,
            line,
            args,
            tests,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Tag(s) => format!("':{s}'"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Str(_) => "a string".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Semi => "';'".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
    }
}
