//! A redirect to a path (`return 301 /x;`, `rewrite ^/a$ /b permanent;`):
//! nginx sends it absolute (`absolute_redirect on`, its default), as
//! `http://HOST[:PORT]/x` with the request's host (`server_name_in_redirect
//! off`) and the port it came in on unless it is the scheme's default
//! (`port_in_redirect on`). rampart's `redirect` sends what it renders, so
//! the importer writes the scheme, host and port out.

use super::{Translator, find, find_all, server::bind_of, vars::plain_host};
use crate::import::{nginx::Directive, report::Kind};

/// Whether the flag directive `name` is `on` in the chain (else `default`).
fn flag(t: &mut Translator<'_>, chain: &[&[Directive]], name: &str, default: bool) -> bool {
    match find(chain, name) {
        Some(d) => {
            t.take(d);
            d.args.first().map(String::as_str) == Some("on")
        }
        None => default,
    }
}

impl Translator<'_> {
    /// `url` as nginx sends it: a path made absolute as the chain's server
    /// says. `d` is the directive reported when that cannot be written.
    pub(super) fn absolute(
        &mut self,
        chain: &[&[Directive]],
        d: &Directive,
        names: &[String],
        url: String,
    ) -> String {
        // nginx looks at the value sent: `$uri/` is a path too.
        let path = ["/", "$uri", "${uri}", "$request_uri", "${request_uri}"]
            .iter()
            .any(|p| url.starts_with(p));
        if !path || !flag(self, chain, "absolute_redirect", true) {
            return url;
        }
        let host = if flag(self, chain, "server_name_in_redirect", false) {
            match names.first() {
                Some(n) if plain_host(n) => n.to_ascii_lowercase(),
                _ => "$host".to_string(),
            }
        } else {
            "$host".to_string()
        };
        if !flag(self, chain, "port_in_redirect", true) {
            return format!("$scheme://{host}{url}");
        }
        // The server's listeners: is each on its scheme's default port?
        let ssl_on = find(chain, "ssl").is_some_and(|s| s.args.first().is_some_and(|a| a == "on"));
        let listens = find_all(chain, "listen");
        let defaults: Vec<bool> = if listens.is_empty() {
            vec![!ssl_on]
        } else {
            listens
                .iter()
                .map(|l| {
                    let ssl = ssl_on || l.args.iter().skip(1).any(|a| a == "ssl");
                    let port = l
                        .args
                        .first()
                        .and_then(|a| bind_of(a))
                        .and_then(|b| b.parse::<std::net::SocketAddr>().ok().map(|s| s.port()));
                    port == Some(if ssl { 443 } else { 80 })
                })
                .collect()
        };
        if defaults.iter().all(|&d| d) {
            format!("$scheme://{host}{url}")
        } else if defaults.iter().all(|&d| !d) {
            format!("$scheme://{host}:$server_port{url}")
        } else {
            self.note(
                d,
                Kind::Unsupported,
                "a redirect to a path on a server with listeners on default and other ports: nginx names the port only on the others, rampart's redirect cannot choose, so it is left relative",
            );
            url
        }
    }
}
