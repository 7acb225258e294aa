//! nginx's configuration language: a tokenizer ([`lexer`]), a tree of
//! directives with includes expanded ([`tree`]) and include globs ([`glob`]).
//!
//! Written here rather than taken from crates.io: `nginx-config` (0.13,
//! last released 2019, on combine 3 and `failure`) parses only the
//! directives it models into a typed AST and refuses the rest, and does not
//! follow `include`; no other crate on the index parses nginx files. The
//! grammar is small (words, `;`, blocks), and owning it lets every
//! directive carry its file and line.

pub mod glob;
pub mod lexer;
pub mod tree;

use std::path::{Path, PathBuf};

pub use tree::{Directive, Parsed, parse_file, parse_text};

/// A file that is not valid nginx syntax: `file:line: message` (`file:
/// message` when the file itself cannot be read, `line` 0).
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn at(line: usize, message: &str) -> ParseError {
        ParseError {
            file: PathBuf::new(),
            line,
            message: message.into(),
        }
    }

    fn in_file(mut self, file: &Path) -> ParseError {
        self.file = file.to_path_buf();
        self
    }
}
