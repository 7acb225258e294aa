//! A static route's own keys: `expires`, `add_header Cache-Control`,
//! `index` and `try_files` (try_files.rs).

use super::{Translator, find, find_all, location::Loc, units};
use crate::import::{
    emit::{self, Table},
    report::Kind,
};

impl<'a> Translator<'a> {
    /// `expires`, `add_header Cache-Control`, `index`, `try_files` of a
    /// static route.
    pub(super) fn static_keys(&mut self, t: &mut Table, l: &Loc<'a>) {
        if let Some(d) = find(&l.chain, "expires") {
            t.from(d.at());
            match d.args.first().map(String::as_str) {
                Some("off") => self.take(d),
                Some("max") => {
                    t.set("expires", emit::s("365d"));
                    self.note(
                        d,
                        Kind::Unsupported,
                        "`expires max` (10 years) is capped at rampart's 365d",
                    );
                }
                Some(v) => match units::millis(v) {
                    Some(ms) if (1000..=365 * 86_400_000).contains(&ms) => {
                        t.set("expires", emit::s(&units::duration(ms)));
                        self.take(d);
                    }
                    _ => self.unsupported(d, "only a positive time up to 365d, `max` or `off`"),
                },
                None => self.unsupported(d, "expected a time"),
            }
        }
        // The first Cache-Control goes beside `expires` (the others are
        // response headers, see headers.rs).
        if let Some(d) = find_all(&l.chain, "add_header").into_iter().find(|d| {
            d.args.len() == 2
                && d.args[0].eq_ignore_ascii_case("cache-control")
                && !d.args[1].contains('$')
        }) {
            t.from(d.at());
            t.set("cache_control", emit::s(&d.args[1]));
            self.take(d);
        }
        if let Some(d) = find(&l.chain, "index") {
            t.from(d.at());
            t.set(
                "index",
                emit::s(d.args.first().map_or("index.html", String::as_str)),
            );
            if d.args.len() > 1 {
                self.note(
                    d,
                    Kind::Unsupported,
                    "rampart tries one index file; the first is used",
                );
            } else {
                self.take(d);
            }
        }
        if let Some(d) = l.d.children().iter().find(|d| d.name == "try_files") {
            let alias = l.d.children().iter().any(|d| d.name == "alias");
            self.try_files(t, d, &l.chain, l.d.id, alias);
        }
    }
}
