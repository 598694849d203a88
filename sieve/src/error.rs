//! Errors of compiling and of running a script.

use std::fmt;

/// One compile error, with the place in the script it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl CompileError {
    pub fn new(line: u32, col: u32, message: impl Into<String>) -> CompileError {
        CompileError {
            line,
            col,
            message: message.into(),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}: {}", self.line, self.col, self.message)
    }
}

/// All errors of one compilation.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct CompileErrors(pub Vec<CompileError>);

/// A running script stopped with an error: the message is kept (implicit keep) by the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RuntimeError {
    pub line: u32,
    pub message: String,
}

impl RuntimeError {
    pub fn new(line: u32, message: impl Into<String>) -> RuntimeError {
        RuntimeError {
            line,
            message: message.into(),
        }
    }
}
