//! `location` blocks as `[[route]]`s, in nginx's match order. rampart takes
//! the first route in file order, so the routes are written in the order
//! nginx would pick: `=` exact matches, then `^~` prefixes (longest first),
//! then regexes in file order, then the other prefixes (longest first).

use super::{Chain, Mode, Translator, find, find_all, units};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

pub(super) struct Loc<'a> {
    pub(super) d: &'a Directive,
    pub(super) mode: Mode,
    pub(super) path: String,
    pub(super) case_insensitive: bool,
    pub(super) chain: Chain<'a>,
}

/// A location copy for one key of a `map` (see `host_map.rs`): the
/// route's `host` (an exact `$host` name), else its `if`.
fn mapped_host(t: &mut Table, l: &Loc<'_>) {
    let Some(m) =
        l.d.children()
            .iter()
            .find(|c| c.name == super::host_map::HOST)
    else {
        return;
    };
    match m.args.as_slice() {
        [h] => t.set("host", emit::s(h)),
        cond => {
            let list: Vec<String> = cond.iter().map(|c| emit::s(c)).collect();
            t.set("if", format!("[{}]", list.join(", ")));
        }
    }
}

/// The route keys of a location's match.
fn path_keys(t: &mut Table, l: &Loc<'_>) {
    match l.mode {
        Mode::Exact => t.set("path_exact", emit::s(&l.path)),
        Mode::Priority | Mode::Prefix => t.set("path", emit::s(&l.path)),
        Mode::Regex => {
            let re = if l.case_insensitive {
                format!("(?i){}", l.path)
            } else {
                l.path.clone()
            };
            t.set("path_regex", emit::s(&re));
        }
    }
}

/// A location's modifier and path, as nginx reads them.
fn matcher(args: &[String]) -> Option<(Mode, String, bool)> {
    match args {
        [m, p] => match m.as_str() {
            "=" => Some((Mode::Exact, p.clone(), false)),
            "^~" => Some((Mode::Priority, p.clone(), false)),
            "~" => Some((Mode::Regex, p.clone(), false)),
            "~*" => Some((Mode::Regex, p.clone(), true)),
            _ => None,
        },
        [p] => {
            if let Some(rest) = p.strip_prefix("~*") {
                Some((Mode::Regex, rest.to_string(), true))
            } else if let Some(rest) = p.strip_prefix('~') {
                Some((Mode::Regex, rest.to_string(), false))
            } else if let Some(rest) = p.strip_prefix("^~") {
                Some((Mode::Priority, rest.to_string(), false))
            } else if let Some(rest) = p.strip_prefix('=') {
                Some((Mode::Exact, rest.to_string(), false))
            } else {
                Some((Mode::Prefix, p.clone(), false))
            }
        }
        _ => None,
    }
}

impl<'a> Translator<'a> {
    /// Every location of a server (nested ones too), as routes for each of
    /// `hosts` (`None`: any host).
    pub(super) fn server_routes(
        &mut self,
        chain: &Chain<'a>,
        srv: &'a Directive,
        names: &[String],
        hosts: &[Option<String>],
    ) {
        // Server-level `if ($host = NAME) { return ...; }` (certbot's form)
        // runs before any location: a route for that host, first.
        self.host_ifs(chain, srv, names);
        let mut locs = Vec::new();
        self.named.clear();
        self.collect(chain, srv.children(), &mut locs);
        // A server-level `return` answers before any location is chosen.
        if let Some(ret) = srv.children().iter().find(|d| d.name == "return") {
            for l in &locs {
                self.note(
                    l.d,
                    Kind::NotNeeded,
                    "never reached: the server's `return` answers first",
                );
            }
            for host in hosts {
                let mut t = Table::new("[[route]]", format!("server {} return", names.join(" ")));
                t.from(srv.at());
                if self.respond(&mut t, ret, names, chain) {
                    self.route_gzip(&mut t, chain);
                    if let Some(h) = host {
                        t.set("host", emit::s(h));
                    }
                    self.routes.push(t);
                }
            }
            return;
        }
        locs.sort_by(|a, b| {
            a.mode.cmp(&b.mode).then_with(|| match a.mode {
                Mode::Priority | Mode::Prefix => b.path.len().cmp(&a.path.len()),
                _ => std::cmp::Ordering::Equal,
            })
        });
        self.server_locs = locs
            .iter()
            .map(|l| (l.mode, l.path.clone(), l.case_insensitive, l.d.id))
            .collect();
        // A plain prefix that extends a `^~` one should win over regexes'
        // absence only through the regexes; rampart cannot order that.
        let has_regex = locs.iter().any(|l| l.mode == Mode::Regex);
        for l in locs.iter().filter(|l| l.mode == Mode::Prefix) {
            if has_regex
                && locs.iter().any(|p| {
                    p.mode == Mode::Priority
                        && l.path.starts_with(&p.path)
                        && l.path.len() > p.path.len()
                })
            {
                self.note(l.d, Kind::Unsupported, "a plain prefix longer than a `^~` prefix it extends: rampart checks the `^~` route first, so regexes are skipped for it");
            }
        }
        let mut has_root = false;
        for host in hosts {
            for l in &locs {
                has_root |= matches!(l.mode, Mode::Prefix | Mode::Priority) && l.path == "/";
                // Its `if (...) { return ...; }`s answer first (rewrite phase).
                for i in l.d.children().iter().filter(|d| d.name == "if") {
                    if let Some(mut t) = self.if_route(&l.chain, i, names) {
                        path_keys(&mut t, l);
                        mapped_host(&mut t, l);
                        t.what = format!("location {}: {}", l.d.args.join(" "), t.what);
                        if let Some(h) = host {
                            t.set("host", emit::s(h));
                        }
                        self.routes.push(t);
                    }
                }
                if let Some(mut t) = self.route(l, names) {
                    mapped_host(&mut t, l);
                    if let Some(h) = host {
                        t.set("host", emit::s(h));
                    }
                    self.routes.push(t);
                }
            }
        }
        // Named locations no try_files used.
        let named: Vec<&'a Directive> = self.named.values().copied().collect();
        for d in named {
            if !self.used.contains(&d.id) {
                self.unsupported(d, "a named location rampart reaches only as a static route's `try_files ... @NAME` that proxies (not through error_page)");
            }
        }
        // Requests no location matches are served from the server's root.
        if !has_root && let Some(root) = find(chain, "root") {
            for host in hosts {
                let mut t = Table::new(
                    "[[route]]",
                    format!("server {}: no location matched", names.join(" ")),
                );
                t.from(root.at());
                t.set("path", emit::s("/"));
                t.set(
                    "root",
                    emit::s(root.args.first().map_or("", String::as_str)),
                );
                self.take(root);
                if let Some(h) = host {
                    t.set("host", emit::s(h));
                }
                self.routes.push(t);
            }
        }
    }

    fn collect(&mut self, chain: &Chain<'a>, block: &'a [Directive], out: &mut Vec<Loc<'a>>) {
        for d in block
            .iter()
            .filter(|d| d.name == "location" && d.block.is_some())
        {
            let Some((mode, path, ci)) = matcher(&d.args) else {
                self.unsupported(d, "expected `location [=|~|~*|^~] PATH`");
                continue;
            };
            if let Some(name) = path.strip_prefix('@') {
                self.named.insert(name.to_string(), d);
                continue;
            }
            if mode == Mode::Regex && regex::Regex::new(&path).is_err() {
                self.unsupported(
                    d,
                    format!("the regex `{path}` uses PCRE features rampart's regex engine lacks"),
                );
                continue;
            }
            self.take(d);
            let mut inner = chain.clone();
            inner.push(d.children());
            self.collect(&inner, d.children(), out);
            out.push(Loc {
                d,
                mode,
                path,
                case_insensitive: ci,
                chain: inner,
            });
        }
    }

    /// An `internal` location: a client's request for it gets 404 from
    /// nginx, and from its route. When it is an `error_page` target, the
    /// page is read as the error page's file (its `root` or `alias`), so
    /// nothing is lost; otherwise nginx reaches it only by internal
    /// redirects rampart does not make (X-Accel-Redirect ...): reported.
    fn internal(
        &mut self,
        mut t: Table,
        l: &Loc<'a>,
        int: &'a Directive,
        names: &[String],
    ) -> Table {
        let page = l.mode == Mode::Exact
            && l.chain
                .iter()
                .flat_map(|b| b.iter())
                .any(|d| d.name == "error_page" && d.args.last() == Some(&l.path));
        t.set("respond", "404".into());
        t.what.push_str(" (internal: clients get 404)");
        t.from(int.at());
        if page {
            self.take(int);
        } else {
            self.unsupported(int, "nginx reaches this location only by internal redirects (X-Accel-Redirect, try_files, error_page to a prefix ...), which rampart does not make: clients get its 404, as from nginx");
        }
        for d in l.d.children() {
            if page && matches!(d.name.as_str(), "root" | "alias") {
                // Where the error page's file is read from.
                t.from(d.at());
                self.take(d);
                continue;
            }
            if !matches!(d.name.as_str(), "internal" | "location" | "add_header") {
                self.note(
                    d,
                    Kind::NotNeeded,
                    "never applied: the location is internal, its route answers clients 404",
                );
            }
        }
        self.headers(&mut t, &l.chain, names, false);
        t
    }

    /// One location as a route, or `None` when nothing could be written.
    fn route(&mut self, l: &Loc<'a>, names: &[String]) -> Option<Table> {
        let mut t = Table::new("[[route]]", format!("location {}", l.d.args.join(" ")));
        t.from(l.d.at());
        path_keys(&mut t, l);
        let own = l.d.children();
        if let Some(int) = own.iter().find(|d| d.name == "internal") {
            return Some(self.internal(t, l, int, names));
        }
        // `return` (rewrite phase) answers before access checks and limits.
        if let Some(ret) = own.iter().find(|d| d.name == "return") {
            for d in own.iter().filter(|d| {
                !matches!(
                    d.name.as_str(),
                    "return" | "location" | "access_log" | "add_header"
                )
            }) {
                self.note(
                    d,
                    Kind::NotNeeded,
                    "never applied: `return` answers first (nginx's rewrite phase)",
                );
            }
            if !self.respond(&mut t, ret, names, &l.chain) {
                return None;
            }
            self.headers(&mut t, &l.chain, names, false);
            self.common(&mut t, l, false);
            return Some(t);
        }
        if let Some(pp) = own.iter().find(|d| d.name == "proxy_pass") {
            t.from(pp.at());
            match self.proxy_pass(pp, &l.chain, l.mode, &l.path) {
                Some((name, path)) => {
                    t.set("upstream", emit::s(&name));
                    if let Some(p) = path {
                        t.set("upstream_path", emit::s(&p));
                    }
                }
                None => {
                    t.set("respond", "502".into());
                    t.what
                        .push_str(" (its proxy_pass could not be translated: answered 502)");
                }
            }
            self.rewrite(&mut t, own, names);
            self.headers(&mut t, &l.chain, names, true);
            self.guard(&mut t, &l.chain);
            if let Some(d) = find(&l.chain, "proxy_read_timeout")
                && let Some(ms) = d.args.first().and_then(|a| units::millis(a))
            {
                t.set("idle_timeout", emit::s(&units::duration(ms.max(1000))));
            }
            self.common(&mut t, l, true);
            return Some(t);
        }
        let alias = own.iter().find(|d| d.name == "alias");
        let root = find(&l.chain, "root");
        if let Some(dir) = alias.or(root) {
            self.take(dir);
            t.from(dir.at());
            let key = if alias.is_some() { "static" } else { "root" };
            t.set(key, emit::s(dir.args.first().map_or("", String::as_str)));
            // nginx serves `location /.well-known/acme-challenge/ { root
            // ...; }` (ACME http-01); rampart's static routes serve no
            // dotfile unless asked.
            if alias.is_none() && l.mode != Mode::Regex && l.path.starts_with("/.well-known/") {
                t.set("serve_well_known", "true".into());
            }
            self.static_keys(&mut t, l);
            self.rewrite(&mut t, own, names);
            self.headers(&mut t, &l.chain, names, false);
            self.guard(&mut t, &l.chain);
            self.common(&mut t, l, true);
            return Some(t);
        }
        // `location ~ /\.ht { deny all; }` with no content: a 403.
        if self.denies_all(&l.chain) {
            t.set("respond", "403".into());
            self.common(&mut t, l, false);
            return Some(t);
        }
        let handler = own.iter().find(|d| {
            matches!(
                d.name.as_str(),
                "fastcgi_pass" | "uwsgi_pass" | "scgi_pass" | "grpc_pass"
            )
        });
        // A first rewrite that redirects: a route for the paths its regex
        // finds, then nginx's 404 for the others (its default root).
        let copy =
            l.d.children()
                .iter()
                .any(|c| c.name == super::host_map::HOST);
        if handler.is_none()
            && !copy
            && own
                .iter()
                .find(|d| d.name == "rewrite")
                .is_some_and(super::rewrite::redirects)
        {
            if let Some(r) = self.redirect_rewrite(&t, own, names, &l.chain) {
                self.routes.push(r);
            }
            t.set("respond", "404".into());
            t.what
                .push_str(" (a rewrite that redirects: 404 for a path it leaves alone)");
            self.common(&mut t, l, false);
            return Some(t);
        }
        // Only `rewrite ... last`: the new path's route answers; a path
        // none of them rewrites gets nginx's 404 (its default root).
        if handler.is_none()
            && own
                .iter()
                .any(|d| d.name == "rewrite" && d.args.get(2).is_none_or(|f| f == "last"))
        {
            t.set("respond", "404".into());
            t.what
                .push_str(" (only rewrites: 404 for a path they leave alone)");
            self.rewrite(&mut t, own, names);
            self.common(&mut t, l, false);
            return Some(t);
        }
        t.set("respond", "502".into());
        t.what.push_str(match handler {
            Some(_) => " (its upstream protocol is not in rampart: answered 502)",
            None => " (no root, alias, proxy_pass or return: answered 502)",
        });
        if handler.is_none() {
            self.note(l.d, Kind::Unsupported, "a location with no content rampart can serve (nginx would serve its default html root)");
        }
        self.common(&mut t, l, false);
        Some(t)
    }

    /// Keys any route may carry: limits, body size, access log,
    /// compression and error pages.
    fn common(&mut self, t: &mut Table, l: &Loc<'a>, limited: bool) {
        self.route_gzip(t, &l.chain);
        self.route_error_pages(t, &l.chain);
        if limited {
            let mut names = Vec::new();
            for d in find_all(&l.chain, "limit_req") {
                t.from(d.at());
                if let Some(n) = self.limit(d, &l.chain) {
                    names.push(emit::s(&n));
                }
            }
            match names.len() {
                0 => {}
                1 => t.set("limit", names.remove(0)),
                _ => t.set("limit", format!("[{}]", names.join(", "))),
            }
        }
        if let Some(d) = find(
            &l.chain[self.depth.min(l.chain.len())..],
            "client_max_body_size",
        ) && let Some(v) = units::body_size(d)
        {
            t.from(d.at());
            t.set("max_body", emit::s(&v));
            self.take(d);
        }
        let logs = find_all(&l.chain[self.depth.min(l.chain.len())..], "access_log");
        if logs
            .iter()
            .any(|d| d.args.first().map(String::as_str) == Some("off"))
        {
            for d in logs {
                t.from(d.at());
                if d.args.first().map(String::as_str) == Some("off") {
                    self.take(d);
                } else {
                    self.unsupported(
                        d,
                        "an access log of its own for one location: rampart writes one",
                    );
                }
            }
            t.set("access_log", "false".into());
        }
    }
}
