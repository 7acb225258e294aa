//! Several content servers: each becomes a `[[server]]` with its
//! `server_name`s (nginx's forms are rampart's: exact, `*.example.com`,
//! `.example.com`, `www.example.*`, `~regex`), its `listen` addresses and
//! its locations as `[[server.route]]`s. nginx's default server of each
//! address (`default_server`, else the first server on it) is rampart's
//! too, or the difference is reported.

use std::collections::HashSet;

use super::{Chain, Translator};
use crate::{
    config::ServerName,
    import::{emit, nginx::Directive, report::Kind},
};

/// A content server: its block, names, listen binds, and the binds it is
/// nginx's `default_server` on.
pub(super) type Content<'a> = (&'a Directive, Vec<String>, Vec<String>, Vec<String>);

impl<'a> Translator<'a> {
    pub(super) fn server_blocks(&mut self, chain: &Chain<'a>, content: &[Content<'a>]) {
        let mut binds: Vec<&String> = Vec::new();
        for b in content.iter().flat_map(|c| &c.2) {
            if !binds.contains(&b) {
                binds.push(b);
            }
        }
        let first_on = |b: &String| content.iter().position(|c| c.2.contains(b));
        let nginx_default =
            |b: &String| content.iter().position(|c| c.3.contains(b)).or(first_on(b));
        // `default_server = true` holds on all a server's listeners in
        // rampart: written for a server that is nginx's default on all of its.
        let flagged: Vec<bool> = content
            .iter()
            .enumerate()
            .map(|(i, c)| !c.3.is_empty() && c.2.iter().all(|b| nginx_default(b) == Some(i)))
            .collect();
        for b in &binds {
            let ours = (0..content.len())
                .find(|&i| flagged[i] && content[i].2.contains(b))
                .or(first_on(b));
            if let Some(theirs) = nginx_default(b)
                && ours != Some(theirs)
            {
                self.note(
                    content[theirs].0,
                    Kind::Unsupported,
                    format!(
                        "nginx's default server on {b}, but rampart's default_server holds on all of a server's listeners: requests for other names there go to another server"
                    ),
                );
            }
        }
        let mut taken: HashSet<(String, String)> = HashSet::new();
        for (i, (srv, names, listen, _)) in content.iter().enumerate() {
            let mut kept = Vec::new();
            for n in names {
                let directive = srv
                    .children()
                    .iter()
                    .find(|d| d.name == "server_name" && d.args.contains(n))
                    .unwrap_or(srv);
                if let Err(why) = ServerName::parse(n) {
                    self.unsupported(directive, why);
                    continue;
                }
                let key = if n.starts_with('~') {
                    n.clone()
                } else {
                    n.to_ascii_lowercase()
                };
                if let Some(b) = listen
                    .iter()
                    .find(|b| taken.contains(&(b.to_string(), key.clone())))
                {
                    self.note(
                        directive,
                        Kind::NotNeeded,
                        format!("`{n}` is an earlier server's name on {b}: nginx ignores it here (\"conflicting server name\"), and so does the translation"),
                    );
                    continue;
                }
                for b in listen {
                    taken.insert((b.clone(), key.clone()));
                }
                kept.push(n.clone());
            }
            let list = |items: &[String]| {
                format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|s| emit::s(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let what = match names.is_empty() {
                true => "server without server_name".to_string(),
                false => format!("server {}", names.join(" ")),
            };
            let mut t = emit::Table::new("[[server]]", what);
            t.from(srv.at());
            t.set("server_name", list(&kept));
            t.set("listen", list(listen));
            if flagged[i] {
                t.set("default_server", "true".into());
            }
            let mut inner = chain.clone();
            inner.push(srv.children());
            // Its own error pages (else the http level's [[error_page]]s).
            if !self.server_error_pages(&mut t, &inner, srv) {
                self.error_pages(&inner, srv);
            }
            self.routes.push(t);
            let start = self.routes.len();
            self.server_routes(&inner, srv, names, &[None]);
            for r in &mut self.routes[start..] {
                if r.header == "[[route]]" {
                    r.header = "[[server.route]]".into();
                }
            }
        }
    }
}
