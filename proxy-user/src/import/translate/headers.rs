//! `add_header`, `proxy_set_header` and `proxy_hide_header` as a route's
//! `response_headers`, `request_headers` and `hsts` (docs/configuration.md,
//! Headers). Each is an array directive: a location sees the innermost
//! level that has any, so every route gets its own whole list, and
//! `[http]` gets none (rampart's route rules add to `[http]`'s, where
//! nginx's replace them).

use std::collections::BTreeMap;

use super::{Chain, Translator, find_all, vars};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

/// Headers rampart keeps for the connection's framing: never set or removed.
const FRAMING: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// A header name rampart accepts (an HTTP token, not a framing header).
fn usable(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !FRAMING.contains(&name.to_ascii_lowercase().as_str())
}

/// `max-age=N[; includeSubDomains][; preload]`, as rampart's `hsts` reads it.
/// `proxy_set_header NAME VALUE` forms that restate what rampart sends
/// to upstreams anyway.
pub(super) fn builtin(name: &str, value: &str) -> bool {
    let v = value;
    match name.to_ascii_lowercase().as_str() {
        "host" | "x-forwarded-host" => matches!(v, "$host" | "$http_host"),
        "x-real-ip" => v == "$remote_addr",
        "x-forwarded-for" => matches!(v, "$proxy_add_x_forwarded_for" | "$remote_addr"),
        "x-forwarded-proto" => v == "$scheme",
        "upgrade" => v == "$http_upgrade",
        "connection" => matches!(
            v,
            "" | "upgrade" | "Upgrade" | "$connection_upgrade" | "close"
        ),
        _ => false,
    }
}

fn hsts(value: &str) -> bool {
    let mut max_age = false;
    for d in value.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let lower = d.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("max-age=") {
            let n = n.trim_matches('"');
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            max_age = true;
        } else if lower != "includesubdomains" && lower != "preload" {
            return false;
        }
    }
    max_age
}

/// `{ "Name" = "value", ... }`.
fn inline(map: &BTreeMap<String, String>) -> String {
    let kv: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{} = {}", emit::s(k), emit::s(v)))
        .collect();
    format!("{{ {} }}", kv.join(", "))
}

fn list(names: &[String]) -> String {
    let v: Vec<String> = names.iter().map(|n| emit::s(n)).collect();
    format!("[{}]", v.join(", "))
}

impl<'a> Translator<'a> {
    /// The route's header keys from the directives `chain` gives it.
    /// `proxied`: the route forwards to an upstream (request headers and
    /// hidden upstream headers only mean something there).
    pub(super) fn headers(
        &mut self,
        t: &mut Table,
        chain: &Chain<'a>,
        names: &[String],
        proxied: bool,
    ) {
        self.response_headers(t, chain, names, proxied);
        if proxied {
            self.request_headers(t, chain, names);
        }
    }

    fn response_headers(
        &mut self,
        t: &mut Table,
        chain: &Chain<'a>,
        names: &[String],
        proxied: bool,
    ) {
        let mut add = BTreeMap::new();
        let mut always: Vec<(&'a Directive, bool)> = Vec::new();
        // A static route's first Cache-Control went to `cache_control`.
        let mut cache_control = t.get("cache_control").is_some();
        for d in find_all(chain, "add_header") {
            let (name, value, on_all) = match d.args.as_slice() {
                [n, v] => (n, v, false),
                [n, v, a] if a == "always" => (n, v, true),
                _ => {
                    self.unsupported(d, "expected `add_header NAME VALUE [always]`");
                    continue;
                }
            };
            t.from(d.at());
            if cache_control
                && name.eq_ignore_ascii_case("cache-control")
                && !on_all
                && t.get("cache_control") == Some(emit::s(value).as_str())
            {
                cache_control = false;
                continue;
            }
            if value.is_empty() {
                self.note(d, Kind::NotNeeded, "an empty value: nginx adds no header");
                continue;
            }
            if name.eq_ignore_ascii_case("strict-transport-security") {
                if hsts(value) && t.get("hsts").is_none() {
                    t.set("hsts", emit::s(value));
                    self.take(d);
                } else {
                    self.unsupported(
                        d,
                        "rampart's hsts takes one `max-age=N[; includeSubDomains][; preload]`",
                    );
                }
                continue;
            }
            if !usable(name) {
                self.unsupported(
                    d,
                    format!("`{name}` is not a header rampart lets a configuration set"),
                );
                continue;
            }
            let value = match vars::template(value, names, false) {
                Ok(v) => v,
                Err(var) => {
                    self.unsupported(d, format!("in a header value, {}", vars::refused(&var)));
                    continue;
                }
            };
            if add.keys().any(|k: &String| k.eq_ignore_ascii_case(name)) {
                self.unsupported(
                    d,
                    "a second value for one header: rampart adds one per name",
                );
                continue;
            }
            add.insert(name.clone(), value);
            always.push((d, on_all));
            self.take(d);
        }
        let mut remove = Vec::new();
        for d in find_all(chain, "proxy_hide_header") {
            if !proxied {
                continue;
            }
            t.from(d.at());
            match d.args.as_slice() {
                [n] if usable(n) => {
                    remove.push(n.clone());
                    self.take(d);
                }
                _ => self.unsupported(d, "expected `proxy_hide_header NAME` of a header rampart lets a configuration remove"),
            }
        }
        let on_all = always.iter().any(|(_, a)| *a);
        if on_all {
            for (d, _) in always.iter().filter(|(_, a)| !a) {
                self.note(d, Kind::Unsupported, "rampart's `always` covers the route's whole response_headers: this header is also sent on error responses");
            }
        }
        let mut parts = Vec::new();
        if !remove.is_empty() {
            parts.push(format!("remove = {}", list(&remove)));
        }
        if !add.is_empty() {
            parts.push(format!("add = {}", inline(&add)));
            if on_all {
                parts.push("always = true".into());
            }
        }
        if !parts.is_empty() {
            t.set("response_headers", format!("{{ {} }}", parts.join(", ")));
        }
    }

    /// `proxy_set_header`s: those that restate what rampart sends anyway
    /// are built in, the others are `request_headers`.
    fn request_headers(&mut self, t: &mut Table, chain: &Chain<'a>, names: &[String]) {
        let mut set = BTreeMap::new();
        let mut remove = Vec::new();
        for d in find_all(chain, "proxy_set_header") {
            let (Some(name), Some(value)) = (d.args.first(), d.args.get(1)) else {
                self.unsupported(d, "expected `proxy_set_header NAME VALUE`");
                continue;
            };
            if d.args.len() > 2 {
                self.unsupported(d, "expected `proxy_set_header NAME VALUE`");
                continue;
            }
            let builtin = builtin(name, value);
            t.from(d.at());
            if builtin {
                self.note(d, Kind::Translated, "built in: rampart sends this header itself (docs/configuration.md, [upstream.NAME])");
                continue;
            }
            if !usable(name) {
                self.unsupported(
                    d,
                    format!("`{name}` is not a header rampart lets a configuration set"),
                );
                continue;
            }
            if set
                .keys()
                .chain(remove.iter())
                .any(|k: &String| k.eq_ignore_ascii_case(name))
            {
                self.unsupported(
                    d,
                    "a second proxy_set_header for one header: nginx sends both, rampart one",
                );
                continue;
            }
            if value.is_empty() {
                remove.push(name.clone());
                self.take(d);
                continue;
            }
            match vars::template(value, names, false) {
                Ok(v) => {
                    set.insert(name.clone(), v);
                    self.take(d);
                }
                Err(var) => {
                    self.unsupported(d, format!("in a header value, {}", vars::refused(&var)))
                }
            }
        }
        let mut parts = Vec::new();
        if !remove.is_empty() {
            parts.push(format!("remove = {}", list(&remove)));
        }
        if !set.is_empty() {
            parts.push(format!("set = {}", inline(&set)));
        }
        if !parts.is_empty() {
            t.set("request_headers", format!("{{ {} }}", parts.join(", ")));
        }
    }
}

impl Translator<'_> {
    /// `proxy_redirect` anywhere: `off` is what rampart does (the
    /// upstream's `Location` and `Refresh` pass unchanged); `default` and
    /// `A B` rewrite them, which rampart cannot (left to the table's
    /// report).
    pub(super) fn proxy_redirects(&mut self, block: &[Directive]) {
        for d in block {
            if d.name == "proxy_redirect" && d.args == ["off"] {
                self.note(
                    d,
                    Kind::NotNeeded,
                    "rampart passes the upstream's Location and Refresh headers unchanged, as `proxy_redirect off`",
                );
            }
            self.proxy_redirects(d.children());
        }
    }
}
