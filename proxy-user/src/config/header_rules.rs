//! `request_headers`, `response_headers`, `hsts` and `security_headers`, in
//! `[http]` (defaults for every route) and in a `[[route]]` (applied after
//! the defaults): compiled into [`HeaderRules`] once per route.

use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileHeaderOps, template::template};
use crate::template::Template;

/// A header value: fixed (converted once) or filled in per request.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Fixed(HeaderValue),
    Template(Template),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Replace every value of the header; an empty value removes it
    /// (nginx `proxy_set_header X ""`).
    Set(HeaderName, Value),
    /// Append a value beside those already there.
    Add(HeaderName, Value),
    /// Set only when the header is absent (the security preset: an
    /// application's own stricter value is kept).
    Default(HeaderName, Value),
    Remove(HeaderName),
}

/// A response rule and when it applies.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseOp {
    pub op: Op,
    /// Also on error responses (nginx `always`); without it only on 200,
    /// 201, 204, 206, 301, 302, 303, 304, 307 and 308, as nginx.
    pub always: bool,
    /// Only over TLS (HSTS: RFC 6797 §7.2, a UA ignores it over http).
    pub https_only: bool,
}

/// One route's rules, in the order they apply (`[http]` ones first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderRules {
    pub request: Vec<Op>,
    pub response: Vec<ResponseOp>,
}

fn needs_headers(op: &Op) -> bool {
    match op {
        Op::Set(_, Value::Template(t))
        | Op::Add(_, Value::Template(t))
        | Op::Default(_, Value::Template(t)) => t.needs_headers(),
        _ => false,
    }
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    /// Whether a response rule reads the request's headers (`$http_*`,
    /// `$cookie_*`), which must then be kept until the response.
    pub fn response_needs_headers(&self) -> bool {
        self.response.iter().any(|r| needs_headers(&r.op))
    }

    /// Whether a request rule reads the request's headers.
    pub fn request_needs_headers(&self) -> bool {
        self.request.iter().any(needs_headers)
    }

    /// One line per rule, in order, as `config show` lists them.
    pub fn describe(&self) -> Vec<String> {
        let op = |o: &Op| match o {
            Op::Set(n, v) => format!("set {n}: {}", text(v)),
            Op::Add(n, v) => format!("add {n}: {}", text(v)),
            Op::Default(n, v) => format!("set if absent {n}: {}", text(v)),
            Op::Remove(n) => format!("remove {n}"),
        };
        let request = self.request.iter().map(|o| format!("request {}", op(o)));
        let response = self.response.iter().map(|r| {
            let when = match (r.always, r.https_only) {
                (_, true) => " (always, https only)",
                (true, false) => " (always)",
                (false, false) => "",
            };
            format!("response {}{when}", op(&r.op))
        });
        request.chain(response).collect()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Fixed(h) => String::from_utf8_lossy(h.as_bytes()).into_owned(),
        Value::Template(t) => t.source().to_string(),
    }
}

/// The four keys, as `[http]` and `[[route]]` both have them.
#[derive(Debug, Default)]
pub struct FileHeaderKeys {
    pub request_headers: Option<Spanned<FileHeaderOps>>,
    pub response_headers: Option<Spanned<FileHeaderOps>>,
    pub hsts: Option<Spanned<String>>,
    pub security_headers: Option<bool>,
}

macro_rules! take_keys {
    ($from:expr) => {
        FileHeaderKeys {
            request_headers: $from.request_headers.take(),
            response_headers: $from.response_headers.take(),
            hsts: $from.hsts.take(),
            security_headers: $from.security_headers.take(),
        }
    };
}

impl super::file::FileHttp {
    pub(super) fn header_keys(&mut self) -> FileHeaderKeys {
        take_keys!(self)
    }
}

impl super::file::FileRoute {
    pub(super) fn header_keys(&mut self) -> FileHeaderKeys {
        take_keys!(self)
    }
}

/// What `[http]` sets for every route.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderDefaults {
    rules: HeaderRules,
    hsts: Option<HeaderValue>,
    security: bool,
    /// The rules of a response given without a route (404 for no route, a
    /// `redirect_https` listener, a refused request head).
    pub unrouted: Option<Arc<HeaderRules>>,
}

/// `security_headers = true`: what nginx hardening guides add with
/// `add_header ... always`. Each is set only when the response has none.
const SECURITY: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

pub(super) fn defaults(loc: &Locator, keys: FileHeaderKeys) -> Result<HeaderDefaults, ConfigError> {
    let rules = ops(loc, &keys)?;
    let hsts = hsts(loc, keys.hsts.as_ref())?.flatten();
    let mut d = HeaderDefaults {
        rules,
        hsts,
        security: keys.security_headers.unwrap_or(false),
        unrouted: None,
    };
    d.unrouted = finish(&d, HeaderRules::default(), None, None);
    Ok(d)
}

/// A route's rules: the defaults', then its own; its `hsts` and
/// `security_headers` replace the defaults' (`hsts = "off"` drops it).
pub(super) fn route(
    loc: &Locator,
    defaults: &HeaderDefaults,
    keys: FileHeaderKeys,
) -> Result<Option<Arc<HeaderRules>>, ConfigError> {
    let own = ops(loc, &keys)?;
    let hsts = hsts(loc, keys.hsts.as_ref())?;
    Ok(finish(defaults, own, hsts, keys.security_headers))
}

fn finish(
    d: &HeaderDefaults,
    own: HeaderRules,
    hsts: Option<Option<HeaderValue>>,
    security: Option<bool>,
) -> Option<Arc<HeaderRules>> {
    let mut rules = d.rules.clone();
    rules.request.extend(own.request);
    rules.response.extend(own.response);
    if security.unwrap_or(d.security) {
        for (name, value) in SECURITY {
            rules.response.push(ResponseOp {
                op: Op::Default(
                    HeaderName::from_static(name),
                    Value::Fixed(HeaderValue::from_static(value)),
                ),
                always: true,
                https_only: false,
            });
        }
    }
    if let Some(v) = hsts.unwrap_or_else(|| d.hsts.clone()) {
        rules.response.push(ResponseOp {
            op: Op::Set(
                HeaderName::from_static("strict-transport-security"),
                Value::Fixed(v),
            ),
            always: true,
            https_only: true,
        });
    }
    (!rules.is_empty()).then(|| Arc::new(rules))
}

fn ops(loc: &Locator, keys: &FileHeaderKeys) -> Result<HeaderRules, ConfigError> {
    let mut rules = HeaderRules::default();
    if let Some(req) = &keys.request_headers {
        if let Some(a) = &req.get_ref().always {
            return Err(loc.error(
                a.span(),
                "request_headers: `always` is for response_headers (error responses do not go to the upstream)",
            ));
        }
        rules.request = list(loc, req.get_ref(), "request_headers")?;
    }
    if let Some(resp) = &keys.response_headers {
        let always = resp.get_ref().always.as_ref().is_some_and(|a| *a.get_ref());
        rules.response = list(loc, resp.get_ref(), "response_headers")?
            .into_iter()
            .map(|op| ResponseOp {
                // A removal (nginx proxy_hide_header) applies to every response.
                always: always || matches!(op, Op::Remove(_)),
                op,
                https_only: false,
            })
            .collect();
    }
    Ok(rules)
}

/// Removals first, then `set`, then `add`, each in name order.
fn list(loc: &Locator, f: &FileHeaderOps, key: &str) -> Result<Vec<Op>, ConfigError> {
    let mut out = Vec::new();
    for n in f.remove.iter().flatten() {
        out.push(Op::Remove(name(loc, n.get_ref(), n.span(), key)?));
    }
    for (kind, map) in [("set", &f.set), ("add", &f.add)] {
        for (n, v) in map.iter().flatten() {
            let key = format!("{key}.{kind}.{n:?}");
            let name = name(loc, n, v.span(), &key)?;
            let t = template(loc, v, 0, &key)?;
            let value = match t.literal() {
                Some(lit) => Value::Fixed(HeaderValue::from_str(lit).map_err(|_| {
                    loc.error(
                        v.span(),
                        format!("{key}: not a header value (control characters or line breaks)"),
                    )
                })?),
                None => Value::Template(t),
            };
            out.push(if kind == "set" {
                Op::Set(name, value)
            } else {
                Op::Add(name, value)
            });
        }
    }
    Ok(out)
}

fn name(
    loc: &Locator,
    n: &str,
    span: std::ops::Range<usize>,
    key: &str,
) -> Result<HeaderName, ConfigError> {
    let name = HeaderName::from_bytes(n.as_bytes())
        .map_err(|_| loc.error(span.clone(), format!("{key}: `{n}` is not a header name")))?;
    // Headers that carry the connection's framing: rampart owns them.
    if crate::h1::hop_by_hop::frames_the_connection(name.as_str()) {
        return Err(loc.error(
            span,
            format!("{key}: `{n}` carries the connection's framing; rampart sets it"),
        ));
    }
    Ok(name)
}

/// `hsts = "max-age=N[; includeSubDomains][; preload]"`, or `"off"`
/// (`Some(None)`).
fn hsts(
    loc: &Locator,
    v: Option<&Spanned<String>>,
) -> Result<Option<Option<HeaderValue>>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let text = v.get_ref().trim();
    if text == "off" {
        return Ok(Some(None));
    }
    let mut max_age = false;
    for d in text.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let lower = d.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("max-age=") {
            let n = n.trim_matches('"');
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(loc.error(v.span(), format!("hsts: max-age `{n}` is not seconds")));
            }
            max_age = true;
        } else if lower != "includesubdomains" && lower != "preload" {
            return Err(loc.error(
                v.span(),
                format!("hsts: unknown directive `{d}` (expected max-age=SECONDS, includeSubDomains, preload)"),
            ));
        }
    }
    if !max_age {
        return Err(loc.error(
            v.span(),
            "hsts needs max-age=SECONDS (RFC 6797), e.g. \"max-age=31536000; includeSubDomains\", or \"off\"",
        ));
    }
    Ok(Some(Some(HeaderValue::from_str(text).map_err(|_| {
        loc.error(v.span(), "hsts: not a header value")
    })?)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_names_values_and_hsts_are_placed() {
        for (text, want) in [
            (
                "[http]\nresponse_headers = { set = { \"bad name\" = \"x\" } }\n",
                "t.toml:2:43: response_headers.set.\"bad name\": `bad name` is not a header name",
            ),
            (
                "[http]\nrequest_headers = { remove = [\"Content-Length\"] }\n",
                "t.toml:2:31: request_headers: `Content-Length` carries the connection's framing",
            ),
            (
                "[http]\nrequest_headers = { set = { X-Real-IP = \"$remote_adr\" } }\n",
                "t.toml:2:42: request_headers.set.\"X-Real-IP\": unknown variable `$remote_adr`",
            ),
            (
                "[http]\nrequest_headers = { always = true }\n",
                "t.toml:2:30: request_headers: `always` is for response_headers",
            ),
            (
                "[http]\nhsts = \"max-age=1y\"\n",
                "t.toml:2:8: hsts: max-age `1y`",
            ),
            (
                "[http]\nhsts = \"includeSubDomains\"\n",
                "t.toml:2:8: hsts needs max-age",
            ),
            (
                "[[route]]\nrespond = 200\nresponse_headers = { sett = {} }\n",
                "t.toml:3:",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(want), "{text}: {e}");
        }
    }

    #[test]
    fn routes_add_to_the_defaults_and_may_drop_hsts() {
        let cfg = parse(
            "[http]\nhsts = \"max-age=60\"\nsecurity_headers = true\nresponse_headers = { remove = [\"Server\"] }\n\
             [[route]]\npath = \"/a\"\nrespond = 200\nhsts = \"off\"\n\
             [[route]]\nrespond = 200\nresponse_headers = { set = { X-A = \"1\" } }\n",
        )
        .unwrap();
        let a = cfg.routes[0].headers.as_ref().unwrap();
        assert_eq!(a.response.len(), 4, "remove + 3 security, no hsts: {a:?}");
        let b = cfg.routes[1].headers.as_ref().unwrap();
        assert_eq!(
            b.describe(),
            [
                "response remove server (always)",
                "response set x-a: 1",
                "response set if absent x-content-type-options: nosniff (always)",
                "response set if absent x-frame-options: SAMEORIGIN (always)",
                "response set if absent referrer-policy: strict-origin-when-cross-origin (always)",
                "response set strict-transport-security: max-age=60 (always, https only)",
            ]
        );
        assert!(
            parse("[[route]]\nrespond = 200\n").unwrap().routes[0]
                .headers
                .is_none()
        );
    }
}
