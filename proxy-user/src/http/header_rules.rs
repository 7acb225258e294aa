//! Operator header rules: set, add and remove headers on the request to the
//! upstream (nginx `proxy_set_header`) and on the response to the client
//! (nginx `add_header`, `add_header ... always`, `proxy_hide_header`), plus
//! HSTS and a preset of security headers. Built once per route at config
//! load ([`crate::config::header_rules`] merges the `[http]` defaults with
//! the route's); a route with none has `None` and costs a request nothing.
//! This is the request side: the rules applied to a head.

use hyper::{HeaderMap, StatusCode, header::HeaderValue};

use crate::{
    config::header_rules::{HeaderRules, Op, Value},
    template::Vars,
};

/// The statuses nginx's `add_header` (without `always`) applies to.
fn success(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

// === impl HeaderRules: applying the rules ===

impl HeaderRules {
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
    use hyper::header::HeaderName;

    use super::*;
    use crate::config::header_rules::ResponseOp;

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
