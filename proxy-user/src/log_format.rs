//! The access log's line format: nginx's `combined`, JSON, or a custom
//! template built from nginx's `log_format` variables (`$remote_addr -
//! [$time_local] "$request" $status ...`). A custom template is compiled
//! once, at configuration load, into literal text and variables; an unknown
//! variable is a configuration error that points at it. Rendering a line
//! only walks the compiled pieces.
//!
//! Variable values are escaped as nginx's `escape=default` does: `"`, `\`
//! and bytes outside printable ASCII become `\xHH`, so a client cannot
//! forge a field or a line. An empty value prints as `-`, as nginx does.

use std::{fmt::Write, sync::Arc, time::SystemTime};

use crate::{
    access_log::{self, Entry},
    http::request_var::RequestVar,
};

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
    /// The line for `e`, newline included.
    pub fn line(&self, e: &Entry) -> String {
        match self {
            LineFormat::Combined => access_log::combined(e),
            LineFormat::Json => access_log::json(e),
            LineFormat::Custom(f) => f.render(e, SystemTime::now()),
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

    /// As written in the configuration.
    pub fn name(&self) -> &str {
        match self {
            LineFormat::Combined => "combined",
            LineFormat::Json => "json",
            LineFormat::Custom(f) => &f.source,
        }
    }
}

/// A variable a template may use, named as nginx names it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Var {
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

#[derive(Clone, Debug, PartialEq)]
enum Piece {
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

    /// The line for `e` at `now`, newline included.
    pub fn render(&self, e: &Entry, now: SystemTime) -> String {
        let mut out = String::with_capacity(self.source.len() + 128);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => value(&mut out, v, e, now),
            }
        }
        out
    }
}

/// Appends `s` escaped as nginx's `escape=default`, `-` when empty.
fn escaped(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    for b in s.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

fn value(out: &mut String, v: &Var, e: &Entry, now: SystemTime) {
    let (path, query) = e.target.split_once('?').unwrap_or((e.target, ""));
    let secs = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64());
    match v {
        Var::RemoteAddr => {
            let _ = write!(out, "{}", e.client);
        }
        Var::RemoteUser => out.push('-'),
        Var::TimeLocal => out.push_str(&access_log::time_local(now)),
        Var::TimeIso8601 => out.push_str(&time_iso8601(now)),
        Var::Msec => {
            let d = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
        }
        Var::Request => escaped(out, &format!("{} {} {}", e.method, e.target, e.version)),
        Var::RequestMethod => escaped(out, e.method),
        Var::RequestUri => escaped(out, e.target),
        Var::Uri => escaped(out, path),
        Var::Args => escaped(out, query),
        Var::ServerProtocol => escaped(out, e.version),
        Var::Scheme => out.push_str(if e.https { "https" } else { "http" }),
        Var::Host => escaped(out, e.host),
        Var::Status => {
            let _ = write!(out, "{}", e.status);
        }
        Var::BodyBytesSent => match e.bytes {
            Some(b) => {
                let _ = write!(out, "{b}");
            }
            None => out.push('-'),
        },
        Var::HttpReferer => escaped(out, e.referer),
        Var::HttpUserAgent => escaped(out, e.user_agent),
        Var::RequestTime => out.push_str(&secs(e.request_time)),
        Var::UpstreamAddr => match e.upstream {
            Some((a, _)) => {
                let _ = write!(out, "{a}");
            }
            None => out.push('-'),
        },
        Var::UpstreamResponseTime => match e.upstream {
            Some((_, t)) => out.push_str(&secs(t)),
            None => out.push('-'),
        },
        Var::RequestId => escaped(out, e.request_id),
        Var::PerRequest(r) => escaped(
            out,
            r.lookup(e.headers, e.target.split_once('?').map(|(_, q)| q))
                .as_deref()
                .unwrap_or(""),
        ),
    }
}

/// nginx's `$time_iso8601`, `2026-12-06T19:14:09+00:00`, in UTC; cut from
/// httpdate's fixed-width IMF-fixdate as [`access_log::time_local`] is.
pub fn time_iso8601(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = httpdate::fmt_http_date(t);
    let month = MONTHS.iter().position(|m| *m == &d[8..11]).unwrap_or(0) + 1;
    format!(
        "{}-{month:02}-{}T{}+00:00",
        &d[12..16],
        &d[5..7],
        &d[17..25]
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            user_agent: "curl/8 \"x\"",
            ..crate::access_log::sample_entry()
        }
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_584_449_042)
    }

    #[test]
    fn nginx_combined_as_a_template_matches_the_builtin_prefix() {
        let f = LogFormat::parse(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
        )
        .unwrap();
        assert_eq!(
            f.render(&entry(), at()),
            "192.0.2.1 - - [06/Dec/2026:19:14:09 +0000] \"GET /api/x?y=1 HTTP/1.1\" 200 123 \"-\" \"curl/8 \\x22x\\x22\"\n"
        );
    }

    #[test]
    fn every_variable_renders() {
        let f = LogFormat::parse(
            "${host}|$scheme|$uri|$args|$query_string|$request_method|$request_uri|$server_protocol|$request_time|$upstream_addr|$upstream_response_time|$request_id|$time_iso8601|$msec",
        )
        .unwrap();
        assert_eq!(
            f.render(&entry(), at()),
            "example.com|http|/api/x|y=1|y=1|GET|/api/x?y=1|HTTP/1.1|0.012|127.0.0.1:8001|0.010|abc|2026-12-06T19:14:09+00:00|1796584449.042\n"
        );
        let mut none = entry();
        none.upstream = None;
        none.bytes = None;
        none.target = "/";
        let f = LogFormat::parse("$upstream_addr $upstream_response_time $body_bytes_sent $args")
            .unwrap();
        assert_eq!(f.render(&none, at()), "- - - -\n");
    }

    #[test]
    fn request_variables_render_escaped() {
        let mut h = hyper::HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.4, 10.0.0.1".parse().unwrap());
        h.insert("cookie", "sid=\"q\"".parse().unwrap());
        let f = LogFormat::parse("$http_x_forwarded_for|$cookie_sid|$arg_y|$http_x_none").unwrap();
        assert!(LineFormat::Custom(Arc::new(f.clone())).needs_headers());
        let e = Entry {
            headers: Some(&h),
            ..entry()
        };
        assert_eq!(
            f.render(&e, at()),
            "198.51.100.4, 10.0.0.1|\\x22q\\x22|1|-\n"
        );
        assert_eq!(f.render(&entry(), at()), "-|-|1|-\n");
        let plain = LogFormat::parse("$arg_y $http_user_agent").unwrap();
        assert!(!LineFormat::Custom(Arc::new(plain)).needs_headers());
    }

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

    #[test]
    fn iso8601_pads_fields() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        assert_eq!(time_iso8601(t), "2026-01-02T03:04:05+00:00");
    }
}
