//! The host of a redirect server's `return 301 https://HOST$request_uri`:
//! `$host` keeps the client's (rampart's default), `$server_name` or a
//! literal name becomes the listener's `redirect_https_host`.

use super::{Translator, server::Bind, vars::plain_host};
use crate::import::{nginx::Directive, report::Kind};

impl Bind {
    /// The host every redirect on this address names, if they agree on one.
    pub(super) fn redirect_host(&self) -> Option<&str> {
        let first = self.redirect_hosts.first()?.as_deref()?;
        self.redirect_hosts
            .iter()
            .all(|h| h.as_deref() == Some(first))
            .then_some(first)
    }
}

impl Translator<'_> {
    /// The host of `url` (`https://HOST[:PORT]$request_uri`) as
    /// `redirect_https_host`: `None` keeps the client's Host.
    pub(super) fn redirect_host(
        &mut self,
        ret: &Directive,
        url: &str,
        names: &[String],
    ) -> Option<String> {
        let hostport = url
            .trim_start_matches("https://")
            .trim_end_matches("$request_uri");
        let host = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => hostport,
        };
        match host {
            "$host" | "$http_host" => {
                self.take(ret);
                None
            }
            "$server_name" => match names.first() {
                // nginx's $server_name is the server's first name.
                Some(n) if plain_host(n) => {
                    self.take(ret);
                    Some(n.to_ascii_lowercase())
                }
                first => {
                    self.note(
                        ret,
                        Kind::Unsupported,
                        format!(
                            "$server_name is `{}` here, not a host name: the redirect keeps the host the client asked for",
                            first.map_or("", String::as_str)
                        ),
                    );
                    None
                }
            },
            h if plain_host(h) => {
                self.take(ret);
                Some(h.to_ascii_lowercase())
            }
            h => {
                self.note(
                    ret,
                    Kind::Unsupported,
                    format!(
                        "redirect host `{h}`: the redirect keeps the host the client asked for"
                    ),
                );
                None
            }
        }
    }

    /// Redirect listeners sharing a port name one host (rampart finds it by
    /// the port a request came in on): where they differ, none is written
    /// and the redirects are reported.
    pub(super) fn one_redirect_host_per_port(&mut self) {
        let port = |b: &Bind| b.bind.rsplit_once(':').map(|(_, p)| p.to_string());
        let mut clash = Vec::new();
        for (i, a) in self.binds.iter().enumerate() {
            let differ = self.binds.iter().any(|b| {
                b.redirect.is_some()
                    && a.redirect.is_some()
                    && port(a) == port(b)
                    && (a.redirect_host() != b.redirect_host()
                        || a.redirect_hosts
                            .iter()
                            .any(|h| h.as_deref() != a.redirect_host()))
            });
            if differ {
                clash.push(i);
            }
        }
        for i in clash {
            let b = &mut self.binds[i];
            b.redirect_hosts.clear();
            for (id, at) in &b.redirect_by {
                self.notes.entry(*id).or_default().push(crate::import::report::Report {
                    at: at.clone(),
                    directive: "return".into(),
                    kind: Kind::Unsupported,
                    message: format!("servers on port {} redirect to different hosts: redirect_https_host is not set, the redirect keeps the host the client asked for", port(b).unwrap_or_default()),
                });
            }
        }
    }
}
