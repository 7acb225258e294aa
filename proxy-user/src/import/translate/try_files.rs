//! `try_files` in a location that serves files: the static route's
//! `try_files` key. A fallback URI is written when nginx would hand it to
//! the same location (rampart serves it from the same route); a named
//! location is written as `@UPSTREAM` when it only proxies.

use super::{Chain, Mode, Translator};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

impl<'a> Translator<'a> {
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
        } else if last.starts_with('/') && !last.contains(['$', '?']) {
            if alias {
                self.unsupported(d, "a fallback URI with `alias`: nginx's try_files and alias disagree on its path; rampart does not guess");
                return;
            }
            if self.location_for(last) != Some(loc) {
                self.unsupported(d, format!("the fallback `{last}` is handled by another location in nginx; rampart serves a try_files fallback from the same route"));
                return;
            }
            last.clone()
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
