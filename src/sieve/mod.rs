//! Sieve mail filtering (RFC 5228) with the extensions listed in `validate::EXTENSIONS`.
//! Sans-IO: `compile` turns script text into a `Script`; `run` takes a message view and the
//! envelope and returns the actions to perform plus any runtime error. Performing them
//! (storing, queueing a redirect, sending a vacation reply) is the caller's business.
//!
//! Written from the RFCs; no code from other Sieve implementations.

pub mod ast;
mod display;
mod encoded;
pub mod interp;
pub mod lexer;
pub mod matching;
pub mod message;
pub mod parse;
pub mod scripts;
pub mod validate;
mod validate_test;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

pub use interp::{Action, Outcome, Vacation, run};
pub use message::{Envelope, MessageView};

/// Resource limits: a script that exceeds them fails to compile or fails at run time (then
/// the message is kept in INBOX). A bad script never blocks delivery.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_script_bytes: usize,
    pub max_actions: usize,
    pub max_redirects: usize,
    /// Longest value a variable may hold (RFC 5229 §6), in bytes.
    pub max_variable_len: usize,
    pub max_variables: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_bytes: 64 * 1024,
            max_actions: 32,
            max_redirects: 4,
            max_variable_len: 4096,
            max_variables: 128,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub message: String,
}

impl CompileError {
    pub fn new(line: usize, message: &str) -> Self {
        CompileError {
            line,
            message: message.to_string(),
        }
    }
}

/// A compiled script.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) commands: Vec<ast::Cmd>,
    pub(crate) capabilities: HashSet<String>,
}

impl Script {
    pub fn requires(&self, ext: &str) -> bool {
        self.capabilities.contains(ext)
    }
}

/// Lexes, parses and validates `src`.
pub fn compile(src: &str, limits: &Limits) -> Result<Script, CompileError> {
    if src.len() > limits.max_script_bytes {
        return Err(CompileError::new(
            1,
            &format!("script is larger than {} bytes", limits.max_script_bytes),
        ));
    }
    let toks = lexer::lex(src)?;
    let tree = parse::parse(&toks)?;
    let (commands, capabilities) = validate::validate(&tree)?;
    Ok(Script {
        commands,
        capabilities,
    })
}

/// Compiles bytes that may not be UTF-8 (§8.1 requires UTF-8).
pub fn compile_bytes(src: &[u8], limits: &Limits) -> Result<Script, CompileError> {
    let s = std::str::from_utf8(src).map_err(|e| {
        let line = 1 + src[..e.valid_up_to()]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        CompileError::new(line, "script is not UTF-8")
    })?;
    compile(s, limits)
}
