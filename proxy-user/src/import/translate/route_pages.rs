//! `gzip*` and `error_page` inside a location, as the route's own
//! `compress` and `error_page` (rampart's per-route forms of `[compress]`
//! and `[[error_page]]`).

use super::{
    Translator, find,
    pages::{Gzip, keys_of},
};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

const GZIP: &[&str] = &["gzip", "gzip_types", "gzip_min_length", "gzip_comp_level"];

impl<'a> Translator<'a> {
    /// The location's levels (itself and the locations around it).
    fn own_levels<'c>(&self, chain: &'c [&'a [Directive]]) -> &'c [&'a [Directive]] {
        &chain[(self.depth + 1).min(chain.len())..]
    }

    /// The effective `gzip` settings of the location (its own, else its
    /// server's, else http's) where they differ from `[compress]` (the
    /// first server's): `compress = false`, or the route's own
    /// `compress = { ... }`.
    pub(super) fn route_gzip(&mut self, t: &mut Table, chain: &[&'a [Directive]]) {
        let own = self.own_levels(chain);
        let here = own
            .iter()
            .any(|b| b.iter().any(|d| GZIP.contains(&d.name.as_str())));
        self.gzip_extras(own);
        let chain = chain.to_vec();
        let compressing = !self.compress.keys.is_empty();
        match self.gzip_settings(&chain) {
            Some(Gzip::Bad) => {}
            // nginx's default: off.
            None if compressing => t.set("compress", "false".into()),
            None => {}
            Some(Gzip::Off(d)) => {
                self.take(d);
                if here || compressing {
                    t.from(d.at());
                }
                if compressing {
                    t.set("compress", "false".into());
                }
            }
            Some(Gzip::On(keys, from)) => {
                let differ = self.compress.keys != keys_of(&keys);
                for d in &from {
                    self.take(d);
                    if here || differ {
                        t.from(d.at());
                    }
                }
                if differ {
                    let inline: Vec<String> =
                        keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    t.set("compress", format!("{{ {} }}", inline.join(", ")));
                }
            }
        }
    }

    /// `error_page`s of the location (nginx: a level with its own hides
    /// the inherited ones) as the route's `error_page` list.
    pub(super) fn route_error_pages(&mut self, t: &mut Table, chain: &[&'a [Directive]]) {
        let own = self.own_levels(chain);
        let Some(level) = own
            .iter()
            .rev()
            .find(|b| b.iter().any(|d| d.name == "error_page"))
        else {
            if let Some(i) = own
                .iter()
                .rev()
                .find_map(|b| b.iter().find(|d| d.name == "proxy_intercept_errors"))
            {
                self.note(i, Kind::Unsupported, "proxy_intercept_errors in a location without error_page of its own: rampart's intercept is set with each page");
            }
            return;
        };
        let Some(server) = chain.get(self.depth).copied() else {
            return;
        };
        self.pages_of(t, chain, server, level);
    }

    /// A server's own `error_page`s (several servers: nginx's per server)
    /// as its `[[server]]` table's `error_page` list; false when it has
    /// none of its own.
    pub(super) fn server_error_pages(
        &mut self,
        t: &mut Table,
        chain: &[&'a [Directive]],
        srv: &'a Directive,
    ) -> bool {
        let level = srv.children();
        if !level.iter().any(|d| d.name == "error_page") {
            return false;
        }
        self.pages_of(t, chain, level, level);
        true
    }

    /// `level`'s `error_page`s (with `proxy_intercept_errors` of `chain`)
    /// as `t`'s `error_page` list; files found under `server`'s roots.
    fn pages_of(
        &mut self,
        t: &mut Table,
        chain: &[&'a [Directive]],
        server: &'a [Directive],
        level: &'a [Directive],
    ) {
        let intercept = find(chain, "proxy_intercept_errors");
        let on = intercept.is_some_and(|d| d.args.first().map(String::as_str) == Some("on"));
        let mut pages = Vec::new();
        for d in level.iter().filter(|d| d.name == "error_page") {
            let Some((statuses, file)) = self.error_page(chain, server, d) else {
                continue;
            };
            self.take(d);
            t.from(d.at());
            let list: Vec<String> = statuses.iter().map(ToString::to_string).collect();
            let mut page = format!("status = [{}], file = {}", list.join(", "), emit::s(&file));
            if on {
                page.push_str(", intercept = true");
            }
            pages.push(format!("{{ {page} }}"));
        }
        if let Some(i) = intercept {
            if on && !pages.is_empty() {
                self.take(i);
                t.from(i.at());
            } else if !on {
                self.take(i);
            }
        }
        if !pages.is_empty() {
            t.set("error_page", format!("[{}]", pages.join(", ")));
        }
    }
}
