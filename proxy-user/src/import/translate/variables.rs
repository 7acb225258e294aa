//! nginx's `map` and `set` before translation: the forms whose value is
//! known when the file is read are written out where they are used, so
//! the translator sees literals.
//!
//! - `map $http_upgrade $NAME { default upgrade; '' close; }` (the
//!   WebSocket idiom) with `proxy_set_header Connection $NAME`: rampart
//!   forwards `Upgrade`/`Connection` for WebSockets itself, so the header
//!   is the built-in `Connection "upgrade"` and the `map` is translated.
//! - `set $NAME VALUE` at server or location level, set once there and
//!   never inside an `if`: `$NAME` is replaced by VALUE in the directives
//!   of that block and the blocks inside it (a location's own `set` hides
//!   the server's, as it runs after it). nginx evaluates `set` per
//!   request, but VALUE's own variables (`$host` ...) are the request's
//!   either way, so the text is the same.
//!
//! A `set` or `map` not of these forms is left for the translator, which
//! reports it (and the directives still naming its variable).

use std::collections::{HashMap, HashSet};

use super::{
    super::{
        nginx::Directive,
        report::{Kind, Report},
    },
    vars::{name_at, substitute},
};

/// The tree with the known variables written out, and what became of
/// the `map`s and `set`s that were.
pub(super) struct Resolved {
    pub directives: Vec<Directive>,
    pub notes: Vec<(usize, Report)>,
    /// Directives the pass made (accounted for already).
    pub made: Vec<usize>,
}

/// Directives whose arguments are never rewritten: they name variables
/// (or patterns) rather than use them.
const KEEP: &[&str] = &[
    "set",
    "if",
    "map",
    "geo",
    "split_clients",
    "location",
    "server_name",
    "log_format",
    "limit_req_zone",
    "limit_conn_zone",
];

pub(super) fn resolve(top: &[Directive]) -> Resolved {
    let mut notes = Vec::new();
    let ws = websocket_maps(top, &mut notes);
    let mut directives = top.to_vec();
    super::rewrite::server_returns(&mut directives);
    let made = super::host_map::expand(&mut directives, &mut notes);
    let conditional = conditional_sets(top);
    walk(
        &mut directives,
        &HashMap::new(),
        &ws,
        &conditional,
        &mut notes,
    );
    Resolved {
        directives,
        notes,
        made,
    }
}

/// `map $http_upgrade $NAME { default upgrade; '' close; }` anywhere in
/// the http level: the names of the maps of that form.
fn websocket_maps(top: &[Directive], notes: &mut Vec<(usize, Report)>) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut stack: Vec<&Directive> = top.iter().collect();
    while let Some(d) = stack.pop() {
        if d.name == "http" {
            stack.extend(d.children());
        }
        if d.name != "map" || d.block.is_none() {
            continue;
        }
        let (Some("$http_upgrade"), Some(var), 2) = (
            d.args.first().map(String::as_str),
            d.args.get(1).and_then(|v| v.strip_prefix('$')),
            d.args.len(),
        ) else {
            continue;
        };
        let mut default_upgrade = false;
        let mut idiom = true;
        for e in d.children() {
            match (e.name.as_str(), e.args.as_slice()) {
                ("default", [v]) if v.eq_ignore_ascii_case("upgrade") => default_upgrade = true,
                ("", [v]) if !v.eq_ignore_ascii_case("upgrade") => {}
                _ => idiom = false,
            }
        }
        if idiom && default_upgrade {
            names.insert(var.to_string());
            notes.push((
                d.id,
                Report {
                    at: d.at(),
                    directive: d.name.clone(),
                    kind: Kind::Translated,
                    message: "the WebSocket `Connection` idiom: built in (rampart forwards Upgrade and Connection for WebSockets itself)".into(),
                },
            ));
        }
    }
    names
}

/// Variables some `set` inside an `if` assigns: never written out.
fn conditional_sets(top: &[Directive]) -> HashSet<String> {
    fn inside(ds: &[Directive], in_if: bool, out: &mut HashSet<String>) {
        for d in ds {
            if d.name == "set"
                && in_if
                && let Some(v) = d.args.first().and_then(|v| v.strip_prefix('$'))
            {
                out.insert(v.to_string());
            }
            inside(d.children(), in_if || d.name == "if", out);
        }
    }
    let mut out = HashSet::new();
    inside(top, false, &mut out);
    out
}

/// Writes out the variables known in `block` (its own sets and
/// `outer`'s) and in the blocks inside it. Returns the names of `outer`
/// it wrote out.
fn walk(
    block: &mut [Directive],
    outer: &HashMap<String, String>,
    ws: &HashSet<String>,
    conditional: &HashSet<String>,
    notes: &mut Vec<(usize, Report)>,
) -> HashSet<String> {
    // This block's own sets, each once and unconditional.
    let mut scope = outer.clone();
    let mut count: HashMap<String, usize> = HashMap::new();
    for d in block.iter() {
        if let Some(v) = d.args.first().and_then(|v| v.strip_prefix('$'))
            && d.name == "set"
        {
            *count.entry(v.to_string()).or_default() += 1;
        }
    }
    let mut sets: Vec<(usize, String)> = Vec::new();
    for d in block.iter() {
        let (true, [var, value]) = (d.name == "set", d.args.as_slice()) else {
            continue;
        };
        let Some(name) = var.strip_prefix('$') else {
            continue;
        };
        scope.remove(name);
        if count[name] == 1 && !conditional.contains(name) && !ws.contains(name) {
            let value = substitute(value, &scope).unwrap_or_else(|| value.clone());
            scope.insert(name.to_string(), value);
            sets.push((d.id, name.to_string()));
        } else {
            let why = if count[name] > 1 {
                "set more than once in one block"
            } else {
                "also set inside an `if` or by a `map`"
            };
            notes.push((
                d.id,
                Report {
                    at: d.at(),
                    directive: "set".into(),
                    kind: Kind::Unsupported,
                    message: format!(
                        "${name} is {why}: its value depends on the request, no rampart key"
                    ),
                },
            ));
        }
    }
    let mut substituted: HashSet<String> = HashSet::new();
    for d in block.iter_mut() {
        if !KEEP.contains(&d.name.as_str()) {
            rewrite_args(d, &scope, ws, &mut substituted);
        }
        // An `if` block sees the variables of the block it is in.
        if let Some(children) = d.block.as_mut()
            && d.name != "map"
        {
            substituted.extend(walk(children, &scope, ws, conditional, notes));
        }
    }
    let own: HashSet<String> = sets.iter().map(|(_, n)| n.clone()).collect();
    for (id, name) in sets {
        if substituted.contains(&name) {
            let d = block
                .iter()
                .find(|d| d.id == id)
                .expect("a set of this block");
            notes.push((
                id,
                Report {
                    at: d.at(),
                    directive: "set".into(),
                    kind: Kind::Translated,
                    message: format!("${name} is written out where it is used"),
                },
            ));
        }
    }
    substituted.retain(|n| !own.contains(n));
    substituted
}

/// Writes the block's known variables into `d`'s arguments.
fn rewrite_args(
    d: &mut Directive,
    scope: &HashMap<String, String>,
    ws: &HashSet<String>,
    substituted: &mut HashSet<String>,
) {
    if d.name == "proxy_set_header"
        && let [name, value] = d.args.as_mut_slice()
        && name.eq_ignore_ascii_case("connection")
        && let Some(var) = value.strip_prefix('$')
        && ws.contains(var)
    {
        *value = "upgrade".into();
        return;
    }
    for (i, arg) in d.args.iter_mut().enumerate() {
        // A rewrite's regex is a pattern, not a value.
        if d.name == "rewrite" && i == 0 {
            continue;
        }
        let Some(new) = substitute(arg, scope) else {
            continue;
        };
        // proxy_pass with a variable and a URI part replaces the whole
        // request URI in nginx: leave it for the translator to report.
        if d.name == "proxy_pass" && has_uri_part(&new) {
            continue;
        }
        for name in names_in(arg) {
            if scope.contains_key(&name) {
                substituted.insert(name);
            }
        }
        *arg = new;
    }
}

/// `http://host[:port]/...`: a URI part after the address.
fn has_uri_part(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    if let Some(path) = rest.strip_prefix("unix:") {
        return path.split_once(':').is_some_and(|(_, uri)| !uri.is_empty());
    }
    rest.contains('/')
}

/// The variable names `text` uses (`$name` or `${name}`).
fn names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (name, next) = name_at(text, i + 1);
            if !name.is_empty() {
                out.push(name.to_string());
            }
            i = next;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_braced_and_plain_names_only_when_known() {
        let scope: HashMap<String, String> = [("up".to_string(), "app:8000".to_string())].into();
        assert_eq!(
            substitute("http://$up", &scope).as_deref(),
            Some("http://app:8000")
        );
        assert_eq!(
            substitute("${up}x$upx$host", &scope).as_deref(),
            Some("app:8000x$upx$host")
        );
        assert_eq!(substitute("$host$request_uri", &scope), None);
        assert!(has_uri_part("http://app/x"));
        assert!(!has_uri_part("http://app:80"));
        assert!(has_uri_part("http://unix:/run/a.sock:/x"));
        assert!(!has_uri_part("http://unix:/run/a.sock:"));
    }
}
