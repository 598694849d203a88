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

/// A compile warning: the script compiles and runs, but a part of it is probably not what its
/// author meant (Pigeonhole reports these too; ManageSieve and delivery pass them on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}:{}: warning: {}",
            self.line, self.col, self.message
        )
    }
}

/// All errors of one compilation, and the warnings found before it stopped.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct CompileErrors {
    pub errors: Vec<CompileError>,
    pub warnings: Vec<Warning>,
}

impl CompileErrors {
    pub fn new(errors: Vec<CompileError>) -> CompileErrors {
        CompileErrors {
            errors,
            warnings: Vec::new(),
        }
    }
}

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
