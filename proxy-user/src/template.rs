//! Values with nginx-style variables (`https://$host:8443$request_uri`),
//! compiled once when the configuration is loaded: a request only walks
//! the parts and copies, it never parses.
//!
//! Variables (as nginx names them): `$host` (the request's host, without
//! its port), `$scheme` (`http` or `https`), `$remote_addr` (the client's
//! address), `$request_id` (the `X-Request-Id` rampart answers with),
//! `$server_port` (the port the request came in on), `$request_uri` (the
//! request target as received: path and query, undecoded), `$uri` (the
//! normalised path, after a rewrite), `$args` / `$query_string` (the query
//! without `?`) and `$is_args` (`?` when there is a query, else nothing).
//! `$http_NAME` (a request header), `$cookie_NAME` and `$arg_NAME` (a
//! query argument) as nginx names them ([`crate::request_var`]).
//! `${name}` delimits a name (`${host}x`), `$$` is a literal `$`, and in a
//! `rewrite` target `$1`..`$9` are the regex's captures.

use std::{fmt, net::IpAddr};

use hyper::HeaderMap;

use crate::request_var::RequestVar;

/// A variable a template may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    Host,
    Scheme,
    RemoteAddr,
    RequestId,
    ServerPort,
    RequestUri,
    Uri,
    Args,
    IsArgs,
    /// `$http_*`, `$cookie_*`, `$arg_*`.
    Request(RequestVar),
}

const NAMES: [(&str, Var); 10] = [
    ("host", Var::Host),
    ("scheme", Var::Scheme),
    ("remote_addr", Var::RemoteAddr),
    ("request_id", Var::RequestId),
    ("server_port", Var::ServerPort),
    ("request_uri", Var::RequestUri),
    ("uri", Var::Uri),
    ("args", Var::Args),
    ("query_string", Var::Args),
    ("is_args", Var::IsArgs),
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
    /// A regex capture group (1-9) of a rewrite.
    Capture(usize),
}

/// A compiled value: text and variables, in order.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why a value does not compile, and where in it (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: usize,
    pub message: String,
}

/// What the variables stand for in one request.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub host: &'a str,
    pub https: bool,
    pub remote_addr: IpAddr,
    pub request_id: &'a str,
    pub server_port: u16,
    pub request_uri: &'a str,
    pub uri: &'a str,
    pub args: Option<&'a str>,
    /// The request's headers (`$http_*`, `$cookie_*`); `None` where they
    /// are not kept (their values are then empty).
    pub headers: Option<&'a HeaderMap>,
}

impl<'a> Vars<'a> {
    /// These variables with the request's headers.
    pub fn with(self, headers: &'a HeaderMap) -> Vars<'a> {
        Vars {
            headers: Some(headers),
            ..self
        }
    }
}

impl Template {
    /// Compiles `text`; `captures` is how many `$N` groups exist (0 outside
    /// a rewrite), and a `$N` past it is an error.
    pub fn parse(text: &str, captures: usize) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let Some(off) = text[i..].find('$') else {
                lit.push_str(&text[i..]);
                break;
            };
            lit.push_str(&text[i..i + off]);
            let at = i + off;
            let rest = &text[at + 1..];
            if rest.starts_with('$') {
                lit.push('$');
                i = at + 2;
                continue;
            }
            let (name, used) = if let Some(braced) = rest.strip_prefix('{') {
                let Some(end) = braced.find('}') else {
                    return Err(TemplateError {
                        at,
                        message: "`${` without its `}`".into(),
                    });
                };
                (&braced[..end], end + 2)
            } else {
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                // `$1abc` is capture 1 then `abc`, as in nginx.
                let len = if rest.starts_with(|c: char| c.is_ascii_digit()) {
                    1
                } else {
                    len
                };
                (&rest[..len], len)
            };
            if name.is_empty() {
                return Err(TemplateError {
                    at,
                    message: "`$` without a variable name (write `$$` for a `$`)".into(),
                });
            }
            let part = if let Ok(n) = name.parse::<usize>() {
                if n == 0 || n > captures {
                    return Err(TemplateError {
                        at,
                        message: if captures == 0 {
                            format!("`${n}`: captures only exist in a rewrite target")
                        } else {
                            format!("`${n}`: the regex has {captures} capture group(s)")
                        },
                    });
                }
                Part::Capture(n)
            } else if let Some((_, v)) = NAMES.iter().find(|(n, _)| *n == name) {
                Part::Var(v.clone())
            } else if let Some(r) = RequestVar::parse(name) {
                Part::Var(Var::Request(r))
            } else {
                let known: Vec<String> = NAMES.iter().map(|(n, _)| format!("${n}")).collect();
                return Err(TemplateError {
                    at,
                    message: format!(
                        "unknown variable `${name}` (known: {}, $http_NAME, $cookie_NAME, $arg_NAME)",
                        known.join(", ")
                    ),
                });
            };
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(part);
            i = at + 1 + used;
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// Whether rendering reads the request's headers (`$http_*`,
    /// `$cookie_*`): they must then be kept for [`Vars::headers`].
    pub fn needs_headers(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Request(r)) if r.needs_headers()))
    }

    /// The value as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value when it has no variables (with `$$` already a `$`).
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    pub fn render(&self, vars: &Vars) -> String {
        self.render_with(vars, None)
    }

    /// As [`Template::render`], with a rewrite's captures for `$N`.
    pub fn render_with(&self, vars: &Vars, captures: Option<&regex::Captures>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Capture(n) => {
                    if let Some(m) = captures.and_then(|c| c.get(*n)) {
                        out.push_str(m.as_str());
                    }
                }
                Part::Var(v) => {
                    use fmt::Write;
                    let _ = match v {
                        Var::Host => out.write_str(vars.host),
                        Var::Scheme => out.write_str(if vars.https { "https" } else { "http" }),
                        Var::RemoteAddr => write!(out, "{}", vars.remote_addr),
                        Var::RequestId => out.write_str(vars.request_id),
                        Var::ServerPort => write!(out, "{}", vars.server_port),
                        Var::RequestUri => out.write_str(vars.request_uri),
                        Var::Uri => out.write_str(vars.uri),
                        Var::Args => out.write_str(vars.args.unwrap_or("")),
                        Var::IsArgs => out.write_str(if vars.args.is_some() { "?" } else { "" }),
                        Var::Request(r) => out
                            .write_str(r.lookup(vars.headers, vars.args).as_deref().unwrap_or("")),
                    };
                }
            }
        }
        out
    }
}

/// `$host` of a Host header value: without its port (a bracketed IPv6
/// literal keeps its colons).
pub fn bare_host(raw: &str) -> &str {
    match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => raw,
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            host: "example.com",
            https: false,
            remote_addr: "192.0.2.7".parse().unwrap(),
            request_id: "abc",
            server_port: 8080,
            request_uri: "/a/../b?x=1",
            uri: "/b",
            args: Some("x=1"),
            headers: None,
        }
    }

    #[test]
    fn request_variables_read_headers_cookies_and_args() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.4".parse().unwrap());
        h.insert("cookie", "lang=fr; sid=z".parse().unwrap());
        let t =
            Template::parse("$http_x_forwarded_for|${cookie_lang}|$arg_x|$http_none.", 0).unwrap();
        assert!(t.needs_headers());
        assert!(!Template::parse("$arg_x", 0).unwrap().needs_headers());
        let with = Vars {
            headers: Some(&h),
            ..vars()
        };
        assert_eq!(t.render(&with), "198.51.100.4|fr|1|.");
        assert_eq!(t.render(&vars()), "||1|.");
    }

    #[test]
    fn renders_every_variable() {
        let t = Template::parse(
            "$scheme://${host}:8443$request_uri|$remote_addr|$request_id|$server_port|$uri$is_args$args|$query_string|$$5",
            0,
        )
        .unwrap();
        assert_eq!(
            t.render(&vars()),
            "http://example.com:8443/a/../b?x=1|192.0.2.7|abc|8080|/b?x=1|x=1|$5"
        );
        let none = Vars {
            args: None,
            https: true,
            ..vars()
        };
        assert_eq!(
            Template::parse("$scheme $uri$is_args$args.", 0)
                .unwrap()
                .render(&none),
            "https /b."
        );
    }

    #[test]
    fn literal_values_are_kept_whole() {
        assert_eq!(
            Template::parse("max-age=3; a$$b", 0).unwrap().literal(),
            Some("max-age=3; a$b")
        );
        assert_eq!(Template::parse("$host", 0).unwrap().literal(), None);
    }

    #[test]
    fn errors_say_where() {
        for (text, at, msg) in [
            ("https://$hots/", 8, "unknown variable `$hots`"),
            ("x $", 2, "without a variable name"),
            ("x ${host", 2, "without its `}`"),
            ("/new/$1", 5, "captures only exist in a rewrite"),
        ] {
            let e = Template::parse(text, 0).unwrap_err();
            assert_eq!(e.at, at, "{text}");
            assert!(e.message.contains(msg), "{text}: {}", e.message);
        }
        let e = Template::parse("/n/$2", 1).unwrap_err();
        assert!(e.message.contains("1 capture group"), "{}", e.message);
    }

    #[test]
    fn captures_fill_a_rewrite_target() {
        let re = regex::Regex::new("^/old/(.*)$").unwrap();
        let t = Template::parse("/new/$1x", re.captures_len() - 1).unwrap();
        let caps = re.captures("/old/a/b").unwrap();
        assert_eq!(t.render_with(&vars(), Some(&caps)), "/new/a/bx");
    }
}
