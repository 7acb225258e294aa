//! Whole-site response settings: `gzip*` as `[compress]` (gzip only, as
//! nginx offers), `error_page CODES /URI` as `[[error_page]]` files, with
//! `proxy_intercept_errors` as their `intercept`. rampart has one of each
//! for every listener; nginx sets them per server (or location), so the
//! http and server levels are read: the first server's `gzip` settings
//! are `[compress]`, and another server's that differ are its routes' own
//! `compress` (`route_pages.rs`); with several servers, a server's own
//! error pages are its `[[server]]`'s `error_page` (`route_pages.rs`).

use super::{Chain, Translator, find, find_all, units};
use crate::{
    config::compress::already_compressed,
    import::{emit, nginx::Directive, report::Kind},
};

/// What `gzip` and its settings say at one level.
pub(super) enum Gzip<'a> {
    Off(&'a Directive),
    /// `[compress]` keys, and the directives they came from (`gzip` first).
    On(Vec<(&'static str, String)>, Vec<&'a Directive>),
    /// Reported.
    Bad,
}

impl<'a> Translator<'a> {
    /// `[compress]` from a content server's `gzip` and its settings.
    pub(super) fn gzip(&mut self, chain: &Chain<'a>) {
        let (keys, from) = match self.gzip_settings(chain) {
            None | Some(Gzip::Bad) => return,
            Some(Gzip::Off(d)) => {
                self.take(d);
                return;
            }
            Some(Gzip::On(keys, from)) => (keys, from),
        };
        if !self.compress.keys.is_empty() && self.compress.keys != keys_of(&keys) {
            // Another server's settings are [compress]: this server's
            // routes carry their own `compress` (route_pages.rs).
            for d in from {
                self.take(d);
            }
            self.gzip_extras(chain);
            return;
        }
        for (k, v) in keys {
            self.compress.set(k, v);
        }
        for d in from {
            self.compress.from(d.at());
            self.take(d);
        }
        self.gzip_extras(chain);
    }

    /// The effective `gzip` settings of `chain` (nginx's inheritance);
    /// `None` when no level says `gzip` (off, nginx's default).
    pub(super) fn gzip_settings(&mut self, chain: &Chain<'a>) -> Option<Gzip<'a>> {
        let on = find(chain, "gzip")?;
        match on.args.first().map(String::as_str) {
            Some("on") => {}
            Some("off") => return Some(Gzip::Off(on)),
            _ => {
                self.unsupported(on, "expected `gzip on` or `gzip off`");
                return Some(Gzip::Bad);
            }
        }
        let mut keys: Vec<(&str, String)> = vec![("encodings", format!("[{}]", emit::s("gzip")))];
        let mut from = vec![on];
        // nginx always compresses text/html, and by default only it.
        let mut types = vec!["text/html".to_string()];
        if let Some(d) = find(chain, "gzip_types") {
            from.push(d);
            for t in &d.args {
                let t = t.to_ascii_lowercase();
                if t == "*" {
                    // Any type: rampart never recompresses images, audio,
                    // video or archives, which gain nothing.
                    for any in ["text/*", "application/*", "font/*", "image/svg+xml"] {
                        types.push(any.to_string());
                    }
                } else if already_compressed(&t) {
                    self.note(
                        d,
                        Kind::NotNeeded,
                        format!("`{t}` is compressed already: rampart never compresses it again"),
                    );
                } else if t.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty() && a != "*" && !b.is_empty() && !b.contains('/')
                }) {
                    types.push(t);
                } else {
                    self.note(
                        d,
                        Kind::Unsupported,
                        format!("`{t}` is not a media type rampart reads"),
                    );
                }
            }
        }
        types.dedup();
        let mut seen = Vec::new();
        types.retain(|t| {
            let new = !seen.contains(t);
            seen.push(t.clone());
            new
        });
        let list: Vec<String> = types.iter().map(|t| emit::s(t)).collect();
        keys.push(("types", format!("[{}]", list.join(", "))));
        // nginx's gzip_min_length default is 20 bytes; rampart's is 256.
        let mut min = "20".to_string();
        if let Some(d) = find(chain, "gzip_min_length") {
            match d.args.first().and_then(|a| units::bytes(a)) {
                Some(b) if b <= 1 << 30 => {
                    min = b.to_string();
                    from.push(d);
                }
                _ => self.unsupported(d, "expected a size up to 1g"),
            }
        }
        keys.push(("min_length", emit::s(&min)));
        let mut level = 1;
        if let Some(d) = find(chain, "gzip_comp_level") {
            match d.args.first().and_then(|a| a.parse::<u8>().ok()) {
                Some(n) if (1..=9).contains(&n) => {
                    level = n;
                    from.push(d);
                }
                _ => self.unsupported(d, "expected 1 to 9"),
            }
        }
        keys.push(("gzip_level", level.to_string()));
        Some(Gzip::On(keys, from))
    }

    /// `gzip_vary`, `gzip_proxied` ... of `chain`: not needed, with why.
    pub(super) fn gzip_extras(&mut self, chain: &[&'a [Directive]]) {
        for name in [
            "gzip_vary",
            "gzip_buffers",
            "gzip_disable",
            "gzip_http_version",
            "gzip_proxied",
        ] {
            let Some(d) = find(chain, name) else { continue };
            if self.used.contains(&d.id) {
                continue;
            }
            let why = match name {
                "gzip_vary" => {
                    "rampart always sends Vary: Accept-Encoding with a compressible response"
                }
                "gzip_buffers" => "nginx buffer tuning; rampart streams what it compresses",
                "gzip_disable" => {
                    "the browsers it is written for (MSIE 6) are gone; rampart follows Accept-Encoding"
                }
                "gzip_http_version" => "rampart follows Accept-Encoding whatever the HTTP version",
                _ if d.args.iter().any(|a| a == "any") => {
                    "rampart compresses responses to requests that came through a proxy (with Via), as `gzip_proxied any`"
                }
                _ => {
                    self.unsupported(d, "rampart compresses responses to requests that came through a proxy (with Via) too, as `gzip_proxied any`; other conditions cannot be chosen");
                    continue;
                }
            };
            self.note(d, Kind::NotNeeded, why);
        }
    }

    /// One `error_page CODES /URI` as its statuses and the page's file
    /// (under the root of the location that serves URI, in the server
    /// block `server`); `None` when reported.
    pub(super) fn error_page(
        &mut self,
        chain: &[&'a [Directive]],
        server: &'a [Directive],
        d: &'a Directive,
    ) -> Option<(Vec<u16>, String)> {
        let Some((uri, codes)) = d.args.split_last() else {
            self.unsupported(d, "expected `error_page CODE ... /URI`");
            return None;
        };
        let statuses: Option<Vec<u16>> = codes
            .iter()
            .map(|c| c.parse::<u16>().ok().filter(|c| (400..=599).contains(c)))
            .collect();
        let Some(statuses) = statuses.filter(|s| !s.is_empty()) else {
            self.unsupported(
                d,
                "only statuses 400 to 599 answered with a page (no `=CODE`, no 3xx)",
            );
            return None;
        };
        if !uri.starts_with('/') || uri.contains('$') {
            self.unsupported(d, "only a page of this site (`/path`): named locations, URLs and variables are not in rampart");
            return None;
        }
        let Some(dir) = self.page_root(chain, server, uri) else {
            self.unsupported(
                d,
                format!("no root or alias serves `{uri}`, so the page's file is unknown"),
            );
            return None;
        };
        Some((statuses, dir))
    }

    /// `[[error_page]]`s from a content server's `error_page CODES /URI`.
    pub(super) fn error_pages(&mut self, chain: &Chain<'a>, srv: &'a Directive) {
        let intercept = find(chain, "proxy_intercept_errors");
        let on = intercept.is_some_and(|d| d.args.first().map(String::as_str) == Some("on"));
        for d in find_all(chain, "error_page") {
            if self.used.contains(&d.id) {
                continue;
            }
            let Some((statuses, dir)) = self.error_page(chain, srv.children(), d) else {
                continue;
            };
            let taken: Vec<u16> = statuses
                .iter()
                .copied()
                .filter(|s| self.page_statuses.contains(s))
                .collect();
            if !taken.is_empty() {
                self.unsupported(d, format!("{taken:?} already have a page from another server: rampart's error pages are for every listener"));
                continue;
            }
            let mut t =
                emit::Table::new("[[error_page]]", format!("error_page {}", d.args.join(" ")));
            t.from(d.at());
            let list: Vec<String> = statuses.iter().map(ToString::to_string).collect();
            t.set("status", format!("[{}]", list.join(", ")));
            t.set("file", emit::s(&dir));
            if on {
                t.set("intercept", "true".into());
                if let Some(i) = intercept {
                    t.from(i.at());
                    self.take(i);
                }
            }
            self.page_statuses.extend(statuses);
            self.pages.push(t);
            self.take(d);
        }
        if let Some(i) = intercept.filter(|i| !self.used.contains(&i.id)) {
            if on {
                self.unsupported(i, "no error_page rampart could write for it to apply");
            } else {
                self.note(
                    i,
                    Kind::NotNeeded,
                    "`off` is rampart's default (intercept = false)",
                );
            }
        }
    }

    /// The file nginx would serve for `uri`: the `location = uri` (or the
    /// server's) `root` + uri, or an `alias` as it is.
    fn page_root(
        &self,
        chain: &[&'a [Directive]],
        server: &'a [Directive],
        uri: &str,
    ) -> Option<String> {
        let exact = server.iter().find(|l| {
            l.name == "location"
                && (l.args == ["=", uri] || l.args == [format!("={uri}")] || l.args == [uri])
        });
        if let Some(l) = exact {
            if let Some(a) = l.children().iter().find(|d| d.name == "alias") {
                return a.args.first().cloned();
            }
            if let Some(r) = l.children().iter().find(|d| d.name == "root") {
                return r
                    .args
                    .first()
                    .map(|r| format!("{}{uri}", r.trim_end_matches('/')));
            }
        }
        find(chain, "root")
            .and_then(|r| r.args.first())
            .map(|r| format!("{}{uri}", r.trim_end_matches('/')))
    }
}

pub(super) fn keys_of(keys: &[(&str, String)]) -> Vec<(String, String)> {
    keys.iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}
