//! `rampart config import nginx FILE`: an nginx configuration translated
//! into a rampart one, every directive accounted for.
//!
//! ```text
//! nginx.conf ─ nginx::lexer ─ nginx::tree (includes) ─ translate ─┬─ rampart.toml (emit)
//!                                                                 └─ reports (file:line, directives.rs)
//! ```

pub mod directives;
pub mod emit;
pub mod nginx;
pub mod report;
pub mod translate;

use std::path::Path;

pub use nginx::ParseError;
pub use report::{Kind, Report};

/// A translated configuration and what could not be translated.
#[derive(Debug)]
pub struct Import {
    pub toml: String,
    pub reports: Vec<Report>,
}

impl Import {
    /// True when every directive was translated or is not needed.
    pub fn complete(&self) -> bool {
        !self.reports.iter().any(|r| r.kind == Kind::Unsupported)
    }
}

/// Imports the nginx configuration at `path` (and what it includes).
pub fn nginx_file(path: &Path) -> Result<Import, ParseError> {
    let parsed = nginx::parse_file(path)?;
    Ok(finish(&parsed, path))
}

/// Imports nginx configuration text, as the file `path`; includes are
/// resolved against `path`'s directory.
pub fn nginx_text(text: &str, path: &Path) -> Result<Import, ParseError> {
    let prefix = path.parent().unwrap_or(Path::new("."));
    let parsed = nginx::parse_text(text, path, prefix)?;
    Ok(finish(&parsed, path))
}

fn finish(parsed: &nginx::Parsed, path: &Path) -> Import {
    let out = translate::translate(parsed, &path.display().to_string());
    Import {
        toml: out.toml,
        reports: out.reports,
    }
}
