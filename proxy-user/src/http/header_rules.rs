//! Operator header rules: set, add and remove headers on the request to the
//! upstream (nginx `proxy_set_header`) and on the response to the client
//! (nginx `add_header`, `add_header ... always`, `proxy_hide_header`), plus
//! HSTS and a preset of security headers. Built once per route at config
//! load ([`crate::config`] merges the `[http]` defaults with the route's);
//! a route with none has `None` and costs a request nothing.

use hyper::{
    HeaderMap, StatusCode,
    header::{HeaderName, HeaderValue},
};

use super::template::{Template, Vars};

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

impl HeaderRules {
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

/// The statuses nginx's `add_header` (without `always`) applies to.
fn success(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
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

    /// Applies the request rules to the head going to the upstream (after
    /// rampart's own `X-Forwarded-*`, which they may therefore replace).
    pub fn on_request(&self, head: &mut HeaderMap, vars: &Vars) {
        for op in &self.request {
            apply(op, head, vars);
        }
    }

    /// Applies the response rules to a response of `status` to the client.
    pub fn on_response(&self, head: &mut HeaderMap, status: StatusCode, vars: &Vars) {
        let ok = success(status);
        for r in &self.response {
            if (r.always || ok) && (vars.https || !r.https_only) {
                apply(&r.op, head, vars);
            }
        }
    }
}

/// Applies `rules`' request rules to the head going to the upstream, with
/// the variables of this exchange.
pub(super) fn on_request(
    rules: &HeaderRules,
    head: &mut HeaderMap,
    down: &super::proxy::Downstream<'_>,
    host: Option<&HeaderValue>,
    uri: &hyper::Uri,
) {
    // `$http_*` in a request rule reads the client's headers as they came,
    // before any rule changed them (nginx's proxy_set_header does).
    let needs = rules.request.iter().any(needs_headers);
    let original = needs.then(|| head.clone());
    let vars = Vars {
        headers: original.as_ref(),
        host: host
            .and_then(|h| h.to_str().ok())
            .map_or("", super::template::bare_host),
        https: down.https,
        remote_addr: down.client.ip(),
        request_id: down.request_id.to_str().unwrap_or(""),
        server_port: down.server_port,
        request_uri: down
            .request_uri
            .or(uri.path_and_query())
            .map_or("/", |p| p.as_str()),
        uri: uri.path(),
        args: uri.query(),
    };
    rules.on_request(head, &vars);
}

fn value(v: &Value, vars: &Vars) -> Option<HeaderValue> {
    match v {
        Value::Fixed(h) => Some(h.clone()),
        // A variable may bring bytes no header can carry (a control
        // character in a request id cannot; a host cannot either, hyper
        // refuses them): such a value is left out rather than sent broken.
        Value::Template(t) => HeaderValue::from_str(&t.render(vars)).ok(),
    }
}

fn apply(op: &Op, head: &mut HeaderMap, vars: &Vars) {
    match op {
        Op::Set(name, v) => match value(v, vars) {
            Some(h) if !h.is_empty() => {
                head.insert(name.clone(), h);
            }
            _ => {
                head.remove(name);
            }
        },
        Op::Add(name, v) => {
            if let Some(h) = value(v, vars) {
                head.append(name.clone(), h);
            }
        }
        Op::Default(name, v) => {
            if !head.contains_key(name)
                && let Some(h) = value(v, vars)
            {
                head.insert(name.clone(), h);
            }
        }
        Op::Remove(name) => {
            head.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(https: bool) -> Vars<'static> {
        Vars {
            host: "example.com",
            https,
            remote_addr: "192.0.2.1".parse().unwrap(),
            request_id: "id1",
            server_port: 443,
            request_uri: "/",
            uri: "/",
            args: None,
            headers: None,
        }
    }

    #[test]
    fn always_and_https_only_decide_where_a_rule_applies() {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        let fixed = |v: &'static str| Value::Fixed(HeaderValue::from_static(v));
        let rules = HeaderRules {
            request: vec![],
            response: vec![
                ResponseOp {
                    op: Op::Set(name("x-plain"), fixed("1")),
                    always: false,
                    https_only: false,
                },
                ResponseOp {
                    op: Op::Set(name("x-always"), fixed("1")),
                    always: true,
                    https_only: false,
                },
                ResponseOp {
                    op: Op::Set(name("strict-transport-security"), fixed("max-age=1")),
                    always: true,
                    https_only: true,
                },
            ],
        };
        let names = |status: u16, https: bool| {
            let mut h = HeaderMap::new();
            rules.on_response(&mut h, StatusCode::from_u16(status).unwrap(), &vars(https));
            let mut n: Vec<String> = h.keys().map(|k| k.to_string()).collect();
            n.sort();
            n.join(",")
        };
        assert_eq!(names(200, false), "x-always,x-plain");
        assert_eq!(names(502, false), "x-always");
        assert_eq!(names(404, true), "strict-transport-security,x-always");
    }
}
