//! nginx directives into rampart tables, with every directive accounted
//! for. The translator marks what it consumed; at the end every directive
//! it did not consume is reported from [`super::directives`] (not needed,
//! unsupported, or unknown), in file order.
//!
//! ```text
//! top level ─┬─ worker_processes, events {...}        -> [http] workers / not needed
//!            └─ http {...} (or a bare site file)
//!                 ├─ limit_req_zone, upstream {...}   -> looked up when used
//!                 ├─ [http] keys (timeouts, body size, access log)
//!                 └─ server {...}                     -> [[listener]]s
//!                      └─ location {...} (nested too) -> [[route]]s in nginx's match order
//! ```

mod access;
mod conditions;
mod headers;
mod host_map;
mod http_keys;
mod location;
mod pages;
mod redirect;
mod redirect_server;
mod relative;
mod respond;
mod rewrite;
mod route_pages;
mod server;
mod static_route;
mod try_files;
pub mod units;
mod upstream;
mod variables;
mod vars;
mod vhosts;

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    directives::{self, Support},
    emit::{self, Table},
    nginx::{Directive, Parsed},
    report::{Kind, Report},
};

/// How a `location` matches, in nginx's order of precedence: `=`, `^~`,
/// regexes in file order, then the longest prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Mode {
    Exact,
    Priority,
    Regex,
    Prefix,
}

/// Directive lists from the outermost (top level) to the innermost block.
pub(crate) type Chain<'a> = Vec<&'a [Directive]>;

/// The last directive called `name` in the innermost block that has one
/// (nginx's inheritance: a level that sets it hides the outer ones).
pub(crate) fn find<'a>(chain: &[&'a [Directive]], name: &str) -> Option<&'a Directive> {
    chain
        .iter()
        .rev()
        .find_map(|block| block.iter().rev().find(|d| d.name == name))
}

/// Every directive called `name` in the innermost block that has any
/// (array directives such as `add_header` and `limit_req` inherit whole).
pub(crate) fn find_all<'a>(chain: &[&'a [Directive]], name: &str) -> Vec<&'a Directive> {
    for block in chain.iter().rev() {
        let found: Vec<&Directive> = block.iter().filter(|d| d.name == name).collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

pub struct Translator<'a> {
    used: HashSet<usize>,
    notes: HashMap<usize, Vec<Report>>,
    pub http: Table,
    pub listeners: Vec<Table>,
    pub upstreams: BTreeMap<String, Table>,
    pub limits: BTreeMap<String, Table>,
    pub routes: Vec<Table>,
    pub compress: Table,
    pub pages: Vec<Table>,
    /// Statuses an `[[error_page]]` already answers.
    page_statuses: Vec<u16>,
    upstream_blocks: HashMap<String, &'a Directive>,
    /// Upstream variants already written: (group, timeouts) -> name.
    variants: HashMap<(String, [u64; 3]), String>,
    zones: HashMap<String, &'a Directive>,
    /// Per listener bind: what the servers on it asked for.
    binds: Vec<server::Bind>,
    /// Levels of the chain at and above http: keys found there are [http]'s.
    depth: usize,
    /// The server being translated: its locations in nginx's match order
    /// (mode, path, case-insensitive, directive id) and its named
    /// locations, for `try_files`.
    server_locs: Vec<(Mode, String, bool, usize)>,
    named: HashMap<String, &'a Directive>,
}

/// The result: the TOML text and every report line.
pub struct Output {
    pub toml: String,
    pub reports: Vec<Report>,
}

pub fn translate(parsed: &Parsed, source: &str) -> Output {
    let resolved = variables::resolve(&parsed.directives);
    let mut t = Translator {
        used: HashSet::new(),
        notes: HashMap::new(),
        http: Table::new("[http]", "nginx's http-level settings"),
        listeners: Vec::new(),
        upstreams: BTreeMap::new(),
        limits: BTreeMap::new(),
        routes: Vec::new(),
        compress: Table::new("[compress]", "nginx's gzip settings"),
        pages: Vec::new(),
        page_statuses: Vec::new(),
        upstream_blocks: HashMap::new(),
        variants: HashMap::new(),
        zones: HashMap::new(),
        binds: Vec::new(),
        depth: 1,
        server_locs: Vec::new(),
        named: HashMap::new(),
    };
    t.used.extend(resolved.made.iter().copied());
    for (id, report) in resolved.notes {
        t.used.insert(id);
        t.notes.entry(id).or_default().push(report);
    }
    let top = resolved.directives.as_slice();
    t.proxy_redirects(top);
    let http_blocks: Vec<&Directive> = top
        .iter()
        .filter(|d| d.name == "http" && d.block.is_some())
        .collect();
    for d in top {
        if d.name == "events" || d.name == "http" {
            t.used.insert(d.id);
        }
        if d.name == "worker_processes" {
            t.workers(d);
        }
    }
    match http_blocks.as_slice() {
        [] => t.http_level(vec![top], top),
        [http, ..] => {
            t.depth = 2;
            let children = http.children();
            t.http_level(vec![top, children], children);
        }
    }
    let mut reports = Vec::new();
    for (file, line, message) in &parsed.unread {
        let (kind, message) = unread(message);
        reports.push(Report {
            at: format!("{}:{line}", file.display()),
            directive: "include".into(),
            kind,
            message,
        });
    }
    t.autoindex(top);
    t.account(top, &mut reports);
    // A location written once per host of a `map $host` is one report.
    let mut seen = HashSet::new();
    reports.retain(|r| seen.insert(r.to_string()));
    let upstreams: Vec<Table> = t.upstreams.values().cloned().collect();
    let limits: Vec<Table> = t.limits.values().cloned().collect();
    let toml = emit::render(
        source,
        &[
            &[t.http.clone(), t.compress.clone()],
            &t.pages,
            &t.listeners,
            &upstreams,
            &limits,
            &t.routes,
        ],
    );
    Output { toml, reports }
}

/// What an include that read nothing means for the translation.
fn unread(message: &str) -> (Kind, String) {
    // certbot's own TLS options file, absent on another machine: its
    // lines (TLSv1.2 TLSv1.3, a session cache, ECDHE AEAD ciphers) are
    // what rampart does anyway.
    if message.contains("letsencrypt/options-ssl-nginx.conf:") {
        return (Kind::NotNeeded, "certbot's TLS options file, not on this machine: its lines (ssl_protocols TLSv1.2 TLSv1.3, session cache and tickets, ECDHE AEAD ciphers) are rampart's defaults".into());
    }
    // The types table: rampart types static files by extension itself.
    if message.contains("mime.types:") {
        return (
            Kind::NotNeeded,
            format!("{message}: rampart types static files by extension itself"),
        );
    }
    // A glob matching nothing includes nothing in nginx either.
    if message.contains("matches no file on this machine") {
        return (Kind::NotNeeded, message.to_string());
    }
    (Kind::Unsupported, message.to_string())
}

impl<'a> Translator<'a> {
    /// Marks `d` as translated.
    fn take(&mut self, d: &Directive) {
        self.used.insert(d.id);
    }

    /// Marks `d` as accounted for with a report of its own.
    /// A directive read again (a location written once per host, a
    /// server's gzip read for each of its locations) is reported once.
    fn note(&mut self, d: &Directive, kind: Kind, message: impl Into<String>) {
        self.used.insert(d.id);
        let r = Report {
            at: d.at(),
            directive: d.name.clone(),
            kind,
            message: message.into(),
        };
        let list = self.notes.entry(d.id).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }

    fn unsupported(&mut self, d: &Directive, message: impl Into<String>) {
        self.note(d, Kind::Unsupported, message);
    }

    fn workers(&mut self, d: &Directive) {
        match d.args.first().map(String::as_str) {
            Some("auto") => self.note(
                d,
                Kind::NotNeeded,
                "rampart runs one worker per CPU by default",
            ),
            Some(n) if n.parse::<u16>().is_ok_and(|n| (1..=256).contains(&n)) => {
                self.http.set("workers", n.to_string());
                self.http.from(d.at());
                self.take(d);
            }
            _ => self.unsupported(d, "expected `auto` or 1 to 256"),
        }
    }

    /// The http block (or a bare site file): zones, upstreams, [http]
    /// settings, then each server.
    fn http_level(&mut self, chain: Chain<'a>, block: &'a [Directive]) {
        for d in block {
            match d.name.as_str() {
                "upstream" if d.block.is_some() => {
                    if let Some(name) = d.args.first() {
                        self.upstream_blocks.insert(name.clone(), d);
                    }
                }
                "limit_req_zone" => {
                    if let Some(name) = upstream::zone_name(d) {
                        self.zones.insert(name, d);
                    } else {
                        self.unsupported(d, "expected `limit_req_zone KEY zone=NAME:SIZE rate=N`");
                    }
                }
                _ => {}
            }
        }
        self.http_settings(&chain);
        let servers: Vec<&'a Directive> = block
            .iter()
            .filter(|d| d.name == "server" && d.block.is_some())
            .collect();
        self.servers(&chain, &servers);
        // Zones and upstream blocks no location used.
        for d in block {
            if (d.name == "upstream" || d.name == "limit_req_zone") && !self.used.contains(&d.id) {
                self.note(
                    d,
                    Kind::NotNeeded,
                    "defined but not used by any translated location",
                );
            }
        }
    }

    /// Reports, in file order, what became of every directive.
    fn account(&self, block: &[Directive], out: &mut Vec<Report>) {
        for d in block {
            if d.name == host_map::HOST {
                continue;
            }
            if let Some(notes) = self.notes.get(&d.id) {
                out.extend(notes.iter().cloned());
            }
            let whole = matches!(
                d.name.as_str(),
                "map" | "types" | "geo" | "split_clients" | "if" | "limit_except"
            ) || (d.block.is_some() && !self.used.contains(&d.id));
            if !self.used.contains(&d.id) {
                let (kind, message) = match directives::support(&d.name) {
                    Support::NotNeeded(why) => (Kind::NotNeeded, why.to_string()),
                    Support::Unsupported(why) => (Kind::Unsupported, why.to_string()),
                    Support::Translated => {
                        (Kind::Unsupported, directives::unused(&d.name).to_string())
                    }
                };
                let message = match (&d.block, whole) {
                    (Some(b), true) if !b.is_empty() => {
                        format!("{message} (with the {} lines of its block)", b.len())
                    }
                    _ => message,
                };
                out.push(Report {
                    at: d.at(),
                    directive: d.name.clone(),
                    kind,
                    message,
                });
            }
            if !whole {
                self.account(d.children(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keys;
#[cfg(test)]
mod tests_redirects;
#[cfg(test)]
mod tests_routes;
#[cfg(test)]
mod tests_variables;
