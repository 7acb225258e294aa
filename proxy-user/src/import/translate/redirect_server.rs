//! A server whose whole job is `return 301 https://$host$request_uri` (or a
//! literal host, certbot's `if ($host = ...)` form, or `location / {
//! return ... }` beside ACME challenges). Alone on its addresses it is the
//! listener's `redirect_https`; sharing one with a content server it is a
//! `[[server]]` like the others (`server.rs`), whose route redirects.

use super::{Chain, Translator, vars};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

/// `https://$host[:PORT]$request_uri` and its spellings: the port, if any.
fn https_redirect(url: &str, names: &[String]) -> Option<Option<u16>> {
    let rest = url.strip_prefix("https://")?;
    let hostport = rest.strip_suffix("$request_uri")?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => {
            (h, Some(p.parse::<u16>().ok()?))
        }
        _ => (hostport, None),
    };
    let ok = matches!(host, "$host" | "$http_host" | "$server_name")
        || names.iter().any(|n| n == host)
        || vars::plain_host(host);
    ok.then_some(port.filter(|p| *p != 443))
}

/// What a redirect-only server is made of.
pub(super) struct Shape<'a> {
    /// The `return` that redirects, and its URL.
    ret: &'a Directive,
    url: &'a str,
    /// The port of the URL, unless 443.
    port: Option<u16>,
    /// certbot's form: the `return 404` after the `if`s that redirect.
    extra_404: Option<&'a Directive>,
    ifs: Vec<&'a Directive>,
    /// `location / { return ... }`, when the redirect is written so.
    slash: Option<&'a Directive>,
    /// The other locations (ACME challenges only).
    others: Vec<&'a Directive>,
}

impl<'a> Shape<'a> {
    /// `srv` as a redirect-only server; `None` when it serves anything else.
    pub(super) fn of(srv: &'a Directive, names: &[String]) -> Option<Self> {
        let kids = srv.children();
        let ret = kids.iter().find(|d| d.name == "return");
        let ifs: Vec<&Directive> = kids.iter().filter(|d| d.name == "if").collect();
        let (target, extra_404) = match (ret, ifs.as_slice()) {
            (Some(r), [])
                if r.args.len() == 2
                    && matches!(r.args[0].as_str(), "301" | "302" | "307" | "308") =>
            {
                (Some(r), None)
            }
            (Some(r), ifs)
                if !ifs.is_empty() && r.args.first().map(String::as_str) == Some("404") =>
            {
                let inner = ifs[0]
                    .children()
                    .iter()
                    .find(|d| d.name == "return" && d.args.len() == 2);
                (inner, Some(r))
            }
            _ => (None, None),
        };
        // Also `location / { return 301 https://...; }` beside an ACME
        // challenge location, as many HTTP servers are written.
        let slash = kids
            .iter()
            .find(|d| d.name == "location" && d.args.len() == 1 && d.args[0] == "/");
        let slash_ret = slash.and_then(|l| {
            l.children()
                .iter()
                .find(|d| d.name == "return" && d.args.len() == 2)
        });
        let (ret, slash) = match (target, slash_ret) {
            (None, Some(r)) if ret.is_none() && ifs.is_empty() => (r, slash),
            (Some(t), _) => (t, None),
            (None, _) => return None,
        };
        let url = ret.args[1].as_str();
        let port = https_redirect(url, names)?;
        let others: Vec<&Directive> = kids
            .iter()
            .filter(|d| d.name == "location" && slash.is_none_or(|s| s.id != d.id))
            .collect();
        let acme_only = others
            .iter()
            .all(|l| l.args.last().is_some_and(|p| p.contains("/.well-known/")));
        if !acme_only || kids.iter().any(|d| d.name == "proxy_pass") {
            return None;
        }
        Some(Shape {
            ret,
            url,
            port,
            extra_404,
            ifs,
            slash,
            others,
        })
    }
}

impl Shape<'_> {
    /// certbot's form: the redirect only for the `if`s' hosts, 404 else.
    pub(super) fn host_checked(&self) -> bool {
        self.extra_404.is_some()
    }
}

/// The NAME of `if ($host = NAME)`, however the parentheses were spaced.
fn host_condition(args: &[String]) -> Option<String> {
    let text = args.join(" ");
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    match inner.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["$host", "=", name] if vars::plain_host(name) && *name == name.to_ascii_lowercase() => {
            Some((*name).to_string())
        }
        _ => None,
    }
}

impl<'a> Translator<'a> {
    /// A server's `if ($host = NAME) { return ...; }` blocks (certbot's
    /// redirect form) as routes for `host = NAME`, before its other routes:
    /// the rewrite phase's `if` answers before any location is chosen.
    /// `$host` is the request's host lowercased without its port, as a
    /// route's `host` matches. Other `if`s are left to the report.
    pub(super) fn host_ifs(
        &mut self,
        chain: &[&'a [Directive]],
        srv: &'a Directive,
        names: &[String],
    ) {
        for i in srv.children().iter().filter(|d| d.name == "if") {
            let Some(host) = host_condition(&i.args) else {
                let chain: Chain<'a> = chain.to_vec();
                if let Some(t) = self.if_route(&chain, i, names) {
                    self.routes.push(t);
                }
                continue;
            };
            let [ret] = i.children() else {
                continue;
            };
            if ret.name != "return" {
                continue;
            }
            let mut t = Table::new("[[route]]", format!("if ($host = {host})"));
            t.from(i.at());
            t.set("host", emit::s(&host));
            if self.respond(&mut t, ret, names, chain) {
                self.take(i);
                self.route_gzip(&mut t, chain);
                self.routes.push(t);
            }
        }
    }

    /// The redirect-only server `shape` as its listeners' `redirect_https`.
    pub(super) fn redirect_server(
        &mut self,
        srv: &'a Directive,
        shape: Shape<'a>,
        names: &[String],
        binds: &[String],
    ) {
        if let Some(l) = shape.slash {
            self.take(l);
        }
        for l in &shape.others {
            self.note(l, Kind::Unsupported, "redirect_https answers every request on this listener, ACME challenges included: serve them from the TLS listener instead (a static route with serve_well_known = true)");
            for d in l.children() {
                self.unsupported(
                    d,
                    "part of the location above, which the redirect answers instead",
                );
            }
        }
        for d in srv.children().iter().filter(|d| d.name == "root") {
            self.note(d, Kind::NotNeeded, "a redirect-only server serves no files");
        }
        let host = self.redirect_host(shape.ret, shape.url, names);
        if let Some(r) = shape.extra_404 {
            for i in &shape.ifs {
                self.take(i);
                for d in i.children() {
                    self.take(d);
                }
            }
            self.note(r, Kind::Unsupported, "the redirect is sent for every host: rampart's redirect_https does not check the Host first");
        }
        for bind in binds {
            if let Some(b) = self.binds.iter_mut().find(|b| &b.bind == bind) {
                b.redirect = Some(shape.port);
                b.redirect_hosts.push(host.clone());
                b.redirect_by.push((shape.ret.id, shape.ret.at()));
                b.from.push(shape.ret.at());
            }
        }
    }
}
