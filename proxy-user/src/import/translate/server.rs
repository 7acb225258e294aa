//! `server` blocks: their `listen`s become `[[listener]]`s (TLS, HTTP/2,
//! certificates by SNI), a redirect-only server alone on its addresses
//! becomes their `redirect_https` (`redirect_server.rs`), and the other
//! servers' locations become routes (of `[[server]]`s when there are
//! several: `vhosts.rs`).

use super::{Chain, Translator, find, find_all, redirect_server::Shape};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

/// One listening address and what the servers on it asked for.
#[derive(Debug, Default)]
pub(super) struct Bind {
    pub bind: String,
    pub ssl: bool,
    pub http2: bool,
    pub certs: Vec<(String, String)>,
    pub min13: bool,
    /// `Some(port)` when this address only redirects to HTTPS.
    pub redirect: Option<Option<u16>>,
    /// The host each of those redirects names (`None`: the client's).
    pub redirect_hosts: Vec<Option<String>>,
    /// The `return`s that asked for the redirect: (directive id, file:line).
    pub redirect_by: Vec<(usize, String)>,
    /// Whether a server with content (not only a redirect) listens here.
    pub content: bool,
    pub backlog: Option<u32>,
    pub from: Vec<String>,
}

/// `listen` as rampart's `bind`: `80` -> `0.0.0.0:80`, `[::]:443` kept.
pub(super) fn bind_of(addr: &str) -> Option<String> {
    let addr = addr.strip_prefix("*:").unwrap_or(addr);
    if let Ok(port) = addr.parse::<u16>() {
        return Some(format!("0.0.0.0:{port}"));
    }
    let addr = addr.replacen("localhost", "127.0.0.1", 1);
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        return Some(sa.to_string());
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 80).to_string());
    }
    None
}

impl<'a> Translator<'a> {
    pub(super) fn servers(&mut self, chain: &Chain<'a>, servers: &[&'a Directive]) {
        let mut all = Vec::new();
        for srv in servers {
            self.take(srv);
            let names: Vec<String> = find_all(&[srv.children()], "server_name")
                .iter()
                .flat_map(|d| d.args.clone())
                .filter(|n| !n.is_empty() && n != "_")
                .collect();
            for d in srv.children().iter().filter(|d| d.name == "server_name") {
                self.take(d);
            }
            let (binds, default) = self.listens(srv);
            let shape = Shape::of(srv, &names);
            all.push((srv, names, binds, default, shape));
        }
        // Addresses a content server listens on: a redirect-only server
        // there is a `[[server]]` too, or it would redirect the others.
        let shared: Vec<String> = all
            .iter()
            .filter(|s| s.4.is_none())
            .flat_map(|s| s.2.clone())
            .collect();
        let mut content: Vec<super::vhosts::Content<'a>> = Vec::new();
        for (srv, names, binds, default, shape) in all {
            let alone = !binds.iter().any(|b| shared.contains(b));
            // certbot's form (`if ($host = NAME) { return 301 ...; }
            // return 404;`) answers 404 to other hosts: a `[[server]]`
            // whose routes say so, not a listener-wide redirect.
            match shape {
                Some(shape) if alone && !shape.host_checked() => {
                    self.redirect_server(srv, shape, &names, &binds);
                    continue;
                }
                _ => {}
            }
            let mut inner = chain.clone();
            inner.push(srv.children());
            self.tls(&inner, srv, &binds);
            self.server_http_keys(srv.children());
            self.real_ip(&inner);
            self.gzip(&inner);
            for b in self.binds.iter_mut().filter(|b| binds.contains(&b.bind)) {
                b.content = true;
            }
            content.push((srv, names, binds, default));
        }
        if content.len() > 1 {
            self.server_blocks(chain, &content);
        } else {
            for (srv, names, _, _) in &content {
                let mut inner = chain.clone();
                inner.push(srv.children());
                self.error_pages(&inner, srv);
                self.server_routes(&inner, srv, names, &[None]);
            }
        }
        self.write_listeners();
    }

    /// The server's `listen`s as binds; those it is the default server on.
    fn listens(&mut self, srv: &'a Directive) -> (Vec<String>, Vec<String>) {
        let mut binds = Vec::new();
        let mut default = Vec::new();
        let http2_on = srv.children().iter().find(|d| d.name == "http2");
        if let Some(d) = http2_on {
            self.take(d);
        }
        let ssl_on = srv
            .children()
            .iter()
            .find(|d| d.name == "ssl" && d.args.first().map(String::as_str) == Some("on"));
        if let Some(d) = ssl_on {
            self.take(d);
        }
        let listens: Vec<&Directive> = srv
            .children()
            .iter()
            .filter(|d| d.name == "listen")
            .collect();
        let implied;
        let listens: Vec<(&Directive, Vec<String>)> = if listens.is_empty() {
            implied = vec!["80".to_string()];
            vec![(srv, implied)]
        } else {
            listens.into_iter().map(|d| (d, d.args.clone())).collect()
        };
        for (d, args) in listens {
            let Some(bind) = args.first().and_then(|a| bind_of(a)) else {
                self.unsupported(d, "only IP:port listeners (no unix sockets or host names)");
                continue;
            };
            let mut b = Bind {
                bind: bind.clone(),
                ..Bind::default()
            };
            b.ssl = ssl_on.is_some();
            b.http2 = http2_on.is_some_and(|d| d.args.first().map(String::as_str) == Some("on"));
            for opt in &args[1..] {
                match opt.as_str() {
                    "ssl" => b.ssl = true,
                    "http2" => b.http2 = true,
                    "default_server" | "default" => default.push(bind.clone()),
                    "reuseport" | "ipv6only=on" | "deferred" | "so_keepalive=on" => {}
                    o if o.starts_with("backlog=") => b.backlog = o[8..].parse().ok(),
                    o => self.note(
                        d,
                        Kind::Unsupported,
                        format!("listen option `{o}` is not in rampart"),
                    ),
                }
            }
            if d.name == "listen" {
                self.take(d);
                b.from.push(d.at());
            }
            self.merge_bind(b);
            binds.push(bind);
        }
        (binds, default)
    }

    fn merge_bind(&mut self, b: Bind) {
        match self.binds.iter_mut().find(|x| x.bind == b.bind) {
            Some(x) => {
                x.ssl |= b.ssl;
                x.http2 |= b.http2;
                x.backlog = x.backlog.or(b.backlog);
                x.from.extend(b.from);
            }
            None => self.binds.push(b),
        }
    }

    /// Certificates and protocol versions of a content server.
    fn tls(&mut self, chain: &Chain<'a>, srv: &'a Directive, binds: &[String]) {
        let certs = find_all(chain, "ssl_certificate");
        let keys = find_all(chain, "ssl_certificate_key");
        let protocols = find(chain, "ssl_protocols");
        let ssl_binds: Vec<usize> = self
            .binds
            .iter()
            .enumerate()
            .filter(|(_, b)| b.ssl && binds.contains(&b.bind))
            .map(|(i, _)| i)
            .collect();
        if ssl_binds.is_empty() {
            return;
        }
        let (Some(cert), Some(key)) = (certs.first(), keys.first()) else {
            self.note(
                srv,
                Kind::Unsupported,
                "an ssl listener without ssl_certificate and ssl_certificate_key",
            );
            return;
        };
        self.take(cert);
        self.take(key);
        for extra in certs.iter().skip(1).chain(keys.iter().skip(1)) {
            self.unsupported(
                extra,
                "one certificate per server name in rampart; the first is used",
            );
        }
        let mut min13 = false;
        if let Some(p) = protocols {
            self.take(p);
            let old: Vec<&String> = p
                .args
                .iter()
                .filter(|v| matches!(v.as_str(), "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1"))
                .collect();
            if !old.is_empty() {
                self.note(
                    p,
                    Kind::Unsupported,
                    format!("{old:?}: rampart never offers versions older than TLS 1.2"),
                );
            }
            min13 = !p.args.iter().any(|v| v == "TLSv1.2");
        }
        for i in ssl_binds {
            let b = &mut self.binds[i];
            let pair = (
                cert.args.first().cloned().unwrap_or_default(),
                key.args.first().cloned().unwrap_or_default(),
            );
            if !b.certs.contains(&pair) {
                b.certs.push(pair);
            }
            b.min13 |= min13;
            b.from.push(cert.at());
        }
    }

    fn write_listeners(&mut self) {
        self.one_redirect_host_per_port();
        for b in self
            .binds
            .iter_mut()
            .filter(|b| b.redirect.is_some() && b.content)
        {
            b.redirect = None;
            for (id, at) in &b.redirect_by {
                self.notes.entry(*id).or_default().push(crate::import::report::Report {
                    at: at.clone(),
                    directive: "return".into(),
                    kind: Kind::Unsupported,
                    message: format!("{} also serves other servers: redirect_https would redirect their requests too, so it is not set", b.bind),
                });
            }
        }
        for b in &self.binds {
            let mut t = Table::new("[[listener]]", format!("listen {}", b.bind));
            t.from = b.from.clone();
            t.set("bind", emit::s(&b.bind));
            if b.ssl && !b.certs.is_empty() {
                let one = |(c, k): &(String, String)| {
                    format!("{{ cert = {}, key = {} }}", emit::s(c), emit::s(k))
                };
                let tls = if b.certs.len() == 1 {
                    one(&b.certs[0])
                } else {
                    format!(
                        "[{}]",
                        b.certs.iter().map(one).collect::<Vec<_>>().join(", ")
                    )
                };
                t.set("tls", tls);
                if b.min13 {
                    t.set("tls_min_version", emit::s("1.3"));
                }
                // nginx offers h2 only when asked; rampart does by default.
                t.set("http2", b.http2.to_string());
            } else if b.http2 {
                t.set("http2", "true".into());
            }
            if let (Some(port), false) = (b.redirect, b.ssl) {
                t.set("redirect_https", "true".into());
                if let Some(p) = port {
                    t.set("redirect_https_port", p.to_string());
                }
                if let Some(h) = b.redirect_host() {
                    t.set("redirect_https_host", emit::s(h));
                }
            }
            if let Some(n) = b.backlog {
                t.set("backlog", n.to_string());
            }
            self.listeners.push(t);
        }
    }
}
