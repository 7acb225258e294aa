//! The access log's line format (`[http] access_log_format`): nginx's
//! `combined`, JSON, or a custom template built from nginx's `log_format`
//! variables (`$remote_addr - [$time_local] "$request" $status ...`). A
//! custom template is compiled here, once, at configuration load, into
//! literal text and variables; an unknown variable is a configuration
//! error that points at it. [`crate::access_log`] renders the lines.

use std::sync::Arc;

use crate::request_var::RequestVar;

/// How each access line is written (`[http] access_log_format`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LineFormat {
    /// nginx's `combined`, plus timing, upstream and id fields.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
    /// A template of nginx `log_format` variables.
    Custom(Arc<LogFormat>),
}

impl LineFormat {
    /// As written in the configuration.
    pub fn name(&self) -> &str {
        match self {
            LineFormat::Combined => "combined",
            LineFormat::Json => "json",
            LineFormat::Custom(f) => &f.source,
        }
    }

    /// Whether a line reads the request's headers beyond Referer and
    /// User-Agent (`$http_*`, `$cookie_*`): they must then be kept.
    pub fn needs_headers(&self) -> bool {
        match self {
            LineFormat::Custom(f) => f
                .pieces
                .iter()
                .any(|p| matches!(p, Piece::Var(Var::PerRequest(r)) if r.needs_headers())),
            _ => false,
        }
    }
}

/// A variable a template may use, named as nginx names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    RemoteAddr,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    ServerProtocol,
    Scheme,
    Host,
    Status,
    BodyBytesSent,
    HttpReferer,
    HttpUserAgent,
    RequestTime,
    UpstreamAddr,
    UpstreamResponseTime,
    RequestId,
    /// `$http_*` (other than the two above), `$cookie_*`, `$arg_*`.
    PerRequest(RequestVar),
}

const VARS: &[(&str, Var)] = &[
    ("remote_addr", Var::RemoteAddr),
    ("remote_user", Var::RemoteUser),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("uri", Var::Uri),
    ("args", Var::Args),
    ("query_string", Var::Args),
    ("server_protocol", Var::ServerProtocol),
    ("scheme", Var::Scheme),
    ("host", Var::Host),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("http_referer", Var::HttpReferer),
    ("http_user_agent", Var::HttpUserAgent),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("request_id", Var::RequestId),
];

/// A compiled piece of a custom format, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Text(String),
    Var(Var),
}

/// A compiled custom format.
#[derive(Clone, Debug, PartialEq)]
pub struct LogFormat {
    source: String,
    pieces: Vec<Piece>,
}

/// Why a template does not compile; `at` is the byte offset in the template.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error(
        "unknown access log variable `${name}`; known: {}, $http_NAME, $cookie_NAME, $arg_NAME",
        known()
    )]
    Unknown { name: String, at: usize },
    #[error("`$` without a variable name (write `$remote_addr` or `${{remote_addr}}`)")]
    Empty { at: usize },
    #[error("`${{` without its closing `}}`")]
    Unclosed { at: usize },
}

impl FormatError {
    pub fn at(&self) -> usize {
        match self {
            FormatError::Unknown { at, .. }
            | FormatError::Empty { at }
            | FormatError::Unclosed { at } => *at,
        }
    }
}

fn known() -> String {
    VARS.iter()
        .map(|(n, _)| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl LogFormat {
    /// Compiles `$name` and `${name}` variables (nginx's syntax) and the
    /// text between them.
    pub fn parse(source: &str) -> Result<LogFormat, FormatError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let at = source.len() - rest.len() + i;
            let after = &rest[i + 1..];
            let (name, used) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or(FormatError::Unclosed { at })?;
                (&braced[..end], end + 2)
            } else {
                let end = after.find(|c| !is_name(c)).unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                return Err(FormatError::Empty { at });
            }
            let var = VARS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| RequestVar::parse(name).map(Var::PerRequest))
                .ok_or_else(|| FormatError::Unknown {
                    name: name.to_string(),
                    at,
                })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Var(var));
            rest = &after[used..];
        }
        text.push_str(rest);
        text.push('\n');
        pieces.push(Piece::Text(text));
        Ok(LogFormat {
            source: source.to_string(),
            pieces,
        })
    }

    /// The compiled pieces, in order (the last one ends with the newline).
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_templates_say_where() {
        assert_eq!(
            LogFormat::parse("$remote_addr $nope x").unwrap_err(),
            FormatError::Unknown {
                name: "nope".into(),
                at: 13
            }
        );
        assert_eq!(
            LogFormat::parse("a $ b").unwrap_err(),
            FormatError::Empty { at: 2 }
        );
        assert_eq!(
            LogFormat::parse("a ${status").unwrap_err(),
            FormatError::Unclosed { at: 2 }
        );
        let e = LogFormat::parse("$nope").unwrap_err().to_string();
        assert!(e.contains("$remote_addr"), "{e}");
    }
}
