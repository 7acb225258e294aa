//! `try_files` in a location that serves files: the static route's
//! `try_files` key. A fallback URI is written when nginx would hand it to
//! the same location (rampart serves it from the same route); a named
//! location is written as `@UPSTREAM` when it only proxies.

use super::{Chain, Mode, Translator, find};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

/// The path of a fallback URI rampart's `try_files` can name: a plain
/// path, with at most the request's own query after it (`?$args`,
/// `?$query_string`, `$is_args$args`: what a file does not read).
fn fallback_path(last: &str) -> Option<&str> {
    let path = [
        "?$args",
        "?$query_string",
        "$is_args$args",
        "$is_args$query_string",
    ]
    .iter()
    .find_map(|q| last.strip_suffix(q))
    .unwrap_or(last);
    (path.starts_with('/') && !path.contains(['$', '?'])).then_some(path)
}

/// The location directive with id `id` under `block`.
fn location_by_id(block: &[Directive], id: usize) -> Option<&Directive> {
    block.iter().find_map(|d| {
        if d.id == id {
            Some(d)
        } else {
            location_by_id(d.children(), id)
        }
    })
}

impl<'a> Translator<'a> {
    /// Why rampart cannot serve a fallback `path` that nginx hands to
    /// location `target` (another than `loc`): `None` when that location
    /// would serve the same file the same way (only the same `root`).
    fn elsewhere(
        &self,
        chain: &Chain<'a>,
        target: Option<usize>,
        loc: usize,
        path: &str,
    ) -> Option<String> {
        let server = chain.get(self.depth).copied().unwrap_or_default();
        let Some(other) = target.and_then(|id| location_by_id(server, id)) else {
            return Some(format!(
                "no location of this server matches `{path}`: nginx answers it from the server level, rampart serves a try_files fallback from the same route"
            ));
        };
        let root_of = |l: &Directive| {
            l.children()
                .iter()
                .rev()
                .find(|c| c.name == "root")
                .or_else(|| find(chain.get(..=self.depth).unwrap_or(chain), "root"))
                .and_then(|r| r.args.first().cloned())
        };
        let this = location_by_id(server, loc);
        let same_root = this.is_some_and(|t| root_of(t) == root_of(other));
        let names: Vec<&str> = other
            .children()
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| *n != "root")
            .collect();
        let at = format!("`location {}` ({})", other.args.join(" "), other.at());
        if same_root && names.is_empty() {
            return None;
        }
        let handler = other.children().iter().find(|c| {
            matches!(
                c.name.as_str(),
                "fastcgi_pass" | "uwsgi_pass" | "scgi_pass" | "grpc_pass" | "proxy_pass" | "return"
            )
        });
        Some(match handler {
            Some(h) if h.name == "proxy_pass" => format!(
                "nginx hands it to {at}, which proxies `{path}`; rampart's try_files falls back to a file of the same route or proxies the original path (`@NAME`), not `{path}`"
            ),
            Some(h) => format!(
                "nginx hands it to {at}, which answers with `{}`; rampart serves a try_files fallback from the same route",
                h.name
            ),
            None if !same_root => format!(
                "nginx serves it from {at}, which has another root; rampart serves a try_files fallback from the same route"
            ),
            None => format!(
                "nginx serves it from {at} with that location's own `{}`; rampart serves a try_files fallback with this route's settings",
                names.join("`, `")
            ),
        })
    }

    /// The location (directive id) nginx picks for `uri` in the server
    /// being translated: `=`, then the longest prefix if it is `^~`, then
    /// regexes in file order, then the longest prefix.
    fn location_for(&self, uri: &str) -> Option<usize> {
        let locs = &self.server_locs;
        if let Some(l) = locs.iter().find(|l| l.0 == Mode::Exact && l.1 == uri) {
            return Some(l.3);
        }
        let longest = locs
            .iter()
            .filter(|l| matches!(l.0, Mode::Priority | Mode::Prefix) && uri.starts_with(&l.1))
            .max_by_key(|l| l.1.len());
        if let Some(l) = longest.filter(|l| l.0 == Mode::Priority) {
            return Some(l.3);
        }
        for l in locs.iter().filter(|l| l.0 == Mode::Regex) {
            let re = if l.2 {
                format!("(?i){}", l.1)
            } else {
                l.1.clone()
            };
            if regex::Regex::new(&re).is_ok_and(|r| r.is_match(uri)) {
                return Some(l.3);
            }
        }
        longest.map(|l| l.3)
    }

    /// `try_files` of location `loc` (a static route `t`).
    pub(super) fn try_files(
        &mut self,
        t: &mut Table,
        d: &'a Directive,
        chain: &Chain<'a>,
        loc: usize,
        alias: bool,
    ) {
        let Some((last, checks)) = d.args.split_last().filter(|(_, c)| !c.is_empty()) else {
            self.unsupported(d, "expected `try_files FILE ... URI|=CODE|@NAME`");
            return;
        };
        let plain = checks.iter().all(|c| c == "$uri" || c == "$uri/");
        // What a static route does anyway.
        if last == "=404"
            && checks
                .iter()
                .all(|c| matches!(c.as_str(), "$uri" | "$uri/" | "$uri/index.html"))
        {
            t.from(d.at());
            self.take(d);
            return;
        }
        if !plain {
            self.unsupported(
                d,
                "rampart's try_files checks `$uri` (a file) and `$uri/` (a directory) only",
            );
            return;
        }
        let fallback = if let Some(code) = last.strip_prefix('=') {
            match code.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => last.clone(),
                _ => {
                    self.unsupported(d, format!("`{last}`: rampart answers statuses 100 to 599"));
                    return;
                }
            }
        } else if let Some(name) = last.strip_prefix('@') {
            match self.named_upstream(d, chain, name) {
                Some(up) => format!("@{up}"),
                None => return,
            }
        } else if let Some(path) = fallback_path(last) {
            if alias {
                self.unsupported(d, "a fallback URI with `alias`: nginx's try_files and alias disagree on its path; rampart does not guess");
                return;
            }
            let target = self.location_for(path);
            if target != Some(loc)
                && let Some(why) = self.elsewhere(chain, target, loc, path)
            {
                self.unsupported(d, format!("the fallback `{last}`: {why}"));
                return;
            }
            path.to_string()
        } else {
            self.unsupported(d, format!("the fallback `{last}`: rampart's is a plain path in the same route, @NAME or =CODE (no variables or query)"));
            return;
        };
        let mut list: Vec<String> = checks.iter().map(|c| emit::s(c)).collect();
        list.push(emit::s(&fallback));
        t.from(d.at());
        t.set("try_files", format!("[{}]", list.join(", ")));
        self.take(d);
    }

    /// The upstream group named location `@name` proxies to, when that is
    /// all it does (its timeouts are the group's); `None` after a report.
    fn named_upstream(&mut self, d: &Directive, chain: &Chain<'a>, name: &str) -> Option<String> {
        let Some(&nl) = self.named.get(name) else {
            self.unsupported(d, format!("no `location @{name}` in this server"));
            return None;
        };
        let Some(pp) = nl.children().iter().find(|c| c.name == "proxy_pass") else {
            self.unsupported(d, format!("`location @{name}` does not proxy_pass: rampart's named fallback is an upstream group"));
            return None;
        };
        // The named location's chain: the server's levels, then its own.
        let mut inner: Chain<'a> = chain[..chain.len().saturating_sub(1)].to_vec();
        inner.push(nl.children());
        let (up, path) = self.proxy_pass(pp, &inner, Mode::Prefix, "/")?;
        if path.is_some() {
            self.unsupported(
                pp,
                "a URI part in a named location's proxy_pass (nginx refuses it)",
            );
            return None;
        }
        self.take(nl);
        for c in nl.children() {
            match c.name.as_str() {
                "proxy_pass" | "proxy_connect_timeout" | "proxy_read_timeout"
                | "proxy_send_timeout" => self.take(c),
                "proxy_set_header" if c.args.len() == 2 && super::headers::builtin(&c.args[0], &c.args[1]) => self.note(
                    c,
                    Kind::Translated,
                    "built in: rampart sends this header itself",
                ),
                "proxy_http_version" | "proxy_redirect" | "proxy_buffering" => {}
                _ => self.unsupported(c, format!("in `location @{name}`, which a static route's try_files falls back to: rampart proxies the fallback with the static route's settings")),
            }
        }
        Some(up)
    }
}
