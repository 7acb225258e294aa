//! `rewrite REGEX REPLACEMENT [break|last]` in a location as the route's
//! `rewrite = ["REGEX", "TARGET"]` (`break`: the path changed on the way
//! to the upstream or the files) or `["REGEX", "TARGET", "last"]` (`last`
//! or no flag: the routes searched again for the new path), with `$1`..`$9`
//! and rampart's variables.

use super::{Translator, vars};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
};

impl Translator<'_> {
    /// The location's own `rewrite` (rampart has one per route).
    pub(super) fn rewrite(&mut self, t: &mut Table, own: &[Directive], names: &[String]) {
        let rewrites: Vec<&Directive> = own.iter().filter(|d| d.name == "rewrite").collect();
        let Some((first, rest)) = rewrites.split_first() else {
            return;
        };
        for d in rest {
            self.unsupported(
                d,
                "rampart rewrites once per route: only the location's first rewrite is written",
            );
        }
        let d = *first;
        t.from(d.at());
        let (re, target, flag) = match d.args.as_slice() {
            [re, target] => (re, target, None),
            [re, target, flag] => (re, target, Some(flag.as_str())),
            _ => {
                self.unsupported(d, "expected `rewrite REGEX REPLACEMENT [flag]`");
                return;
            }
        };
        if matches!(flag, Some("redirect" | "permanent"))
            || target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("$scheme")
        {
            self.unsupported(
                d,
                "a rewrite that redirects: rampart's redirect takes no regex captures",
            );
            return;
        }
        if !matches!(flag, None | Some("break" | "last")) {
            self.unsupported(d, "expected the flag break, last, redirect or permanent");
            return;
        }
        if t.get("upstream_path").is_some() {
            self.unsupported(d, "with a proxy_pass URI part too: rampart's route has rewrite or upstream_path, not both");
            return;
        }
        if regex::Regex::new(re).is_err() {
            self.unsupported(
                d,
                format!("the regex `{re}` uses PCRE features rampart's regex engine lacks"),
            );
            return;
        }
        let target = match vars::template(target, names, true) {
            Ok(v) if v.starts_with('/') => v,
            Ok(_) => {
                self.unsupported(d, "a replacement that is not a path (`/...`)");
                return;
            }
            Err(var) => {
                self.unsupported(d, format!("in a rewrite, {}", vars::refused(&var)));
                return;
            }
        };
        let last = if flag == Some("break") {
            String::new()
        } else {
            format!(", {}", emit::s("last"))
        };
        t.set(
            "rewrite",
            format!("[{}, {}{last}]", emit::s(re), emit::s(&target)),
        );
        self.take(d);
    }
}
