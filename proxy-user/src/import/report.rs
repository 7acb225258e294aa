//! What became of each directive: one line per directive that was not
//! translated, `file:line: kind: directive: why`, as `nginx -t` reports.

use serde::Serialize;

use super::emit::comment;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Translated,
    NotNeeded,
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `file:line` of the directive.
    pub at: String,
    pub directive: String,
    pub kind: Kind,
    pub message: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Translated => "translated",
            Kind::NotNeeded => "not needed",
            Kind::Unsupported => "unsupported",
        };
        // One line each, whatever the file held: control characters (a
        // quoted name or argument may hold a newline) are shown escaped,
        // and an empty name as "".
        let directive = if self.directive.is_empty() {
            "\"\"".to_string()
        } else {
            comment(&self.directive)
        };
        write!(
            f,
            "{}: {kind}: {directive}: {}",
            comment(&self.at),
            comment(&self.message)
        )
    }
}
