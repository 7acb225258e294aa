//! The rampart configuration being written: tables of keys whose values
//! are already TOML literals, each with the nginx lines it came from.

use std::fmt::Write;

/// One TOML table (`[http]`, `[[route]]`, `[upstream.app]`, ...).
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// `[http]` or `[[route]]`.
    pub header: String,
    /// What it is, for its comment (`location /api/`).
    pub what: String,
    /// `file:line` of the nginx directives it came from.
    pub from: Vec<String>,
    pub keys: Vec<(String, String)>,
}

impl Table {
    pub fn new(header: impl Into<String>, what: impl Into<String>) -> Table {
        Table {
            header: header.into(),
            what: what.into(),
            ..Table::default()
        }
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(&mut self, key: &str, value: String) {
        match self.keys.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.keys.push((key.to_string(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn from(&mut self, at: String) {
        if !self.from.contains(&at) {
            self.from.push(at);
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# {}", comment(&self.what));
        if !self.from.is_empty() {
            let mut from = self.from.clone();
            // File order: by file, then by line number.
            from.sort_by_key(|at| {
                let (file, line) = at.rsplit_once(':').unwrap_or((at, "0"));
                (file.to_string(), line.parse::<usize>().unwrap_or(0))
            });
            let _ = writeln!(out, "# from {}", comment(&from.join(", ")));
        }
        let _ = writeln!(out, "{}", self.header);
        for (k, v) in &self.keys {
            let _ = writeln!(out, "{k} = {v}");
        }
        out.push('\n');
    }
}

/// Text fit for a TOML comment: control characters (a newline from a
/// quoted nginx argument, DEL) are shown escaped, as TOML forbids them.
pub fn comment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A TOML string literal.
pub fn s(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The whole file, in the order rampart's documentation lists sections.
pub fn render(source: &str, tables: &[&[Table]]) -> String {
    let source = comment(source);
    let mut out = format!(
        "# Imported from nginx by `rampart config import nginx {source}`.\n\
         # Each table names the nginx lines it came from; see docs/import.md.\n\n"
    );
    for group in tables {
        for t in *group {
            if !t.keys.is_empty() || t.header.starts_with("[[") || t.header.starts_with("[upstream")
            {
                t.render(&mut out);
            }
        }
    }
    out
}
