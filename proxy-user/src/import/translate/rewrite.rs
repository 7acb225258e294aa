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

/// Whether `rewrite` answers with a redirect (its flag, or a target
/// with a scheme).
pub(super) fn redirects(d: &Directive) -> bool {
    let target = d.args.get(1).map_or("", String::as_str);
    matches!(
        d.args.get(2).map(String::as_str),
        Some("redirect" | "permanent")
    ) || target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("$scheme")
}

/// A whole-path capture in `re` and how `$1` is written in a target
/// (`^/(.*)$` with `/$1`, `^(.*)$` with `$1`), or `""` for a regex that
/// matches every path without a capture (`^`).
fn whole_path(re: &str) -> Option<&'static str> {
    match re {
        "^/(.*)$" | "^/(.*)" => Some("/$1"),
        "^(.*)$" | "^(.*)" | "(.*)" => Some("$1"),
        "^" | "^/" | ".*" | "^.*$" | "^.*" => Some(""),
        _ => None,
    }
}

/// The redirect a rewrite matching every path gives: `target` with the
/// whole-path capture as `$uri` and the request's query appended as nginx
/// does (unless it ends in `?`). `None` when other captures remain.
fn whole_path_url(re: &str, target: &str) -> Option<String> {
    let cap = whole_path(re)?;
    let target = match cap {
        "" => target.to_string(),
        cap if target.matches("$1").count() == 1 && target.contains(cap) => {
            target.replacen(cap, "$uri", 1)
        }
        _ => return None,
    };
    // Any other capture (`$2`, or `$1` of a regex without one) stays.
    if target
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
    {
        return None;
    }
    Some(match target.strip_suffix('?') {
        Some(bare) => bare.to_string(),
        None if target.contains('?') => return None,
        None => format!("{target}$is_args$args"),
    })
}

/// A server-level `rewrite` that redirects every path (`rewrite ^
/// https://$host$request_uri? permanent;`, `rewrite ^/(.*)$
/// https://example.com/$1 permanent;`), the older spelling of a redirect
/// server, as the `return` it amounts to (same line and id), when the
/// server has no `return` of its own; the translator then treats it as
/// any `return` at server level.
pub(super) fn server_returns(block: &mut [Directive]) {
    for d in block.iter_mut() {
        if d.name != "server" {
            if d.name == "http" {
                server_returns(d.block.as_deref_mut().unwrap_or_default());
            }
            continue;
        }
        let Some(kids) = d.block.as_mut() else {
            continue;
        };
        if kids.iter().any(|k| k.name == "return") {
            continue;
        }
        let Some(r) = kids.iter_mut().find(|k| k.name == "rewrite") else {
            continue;
        };
        if !redirects(r) || r.args.len() > 3 {
            continue;
        }
        let Some(url) = whole_path_url(&r.args[0], &r.args[1]) else {
            continue;
        };
        let status = if r.args.get(2).map(String::as_str) == Some("permanent") {
            "301"
        } else {
            "302"
        };
        r.name = "return".into();
        r.args = vec![status.into(), url];
    }
}

impl Translator<'_> {
    /// A location whose first `rewrite` redirects: a route like `t` (the
    /// location's path) with `if = ["$uri", "~", REGEX]` and the redirect
    /// (301 for `permanent`, else 302; the request's query appended, as
    /// nginx, unless the target ends in `?`). `None` after a report.
    pub(super) fn redirect_rewrite(
        &mut self,
        t: &Table,
        own: &[Directive],
        names: &[String],
        chain: &[&[Directive]],
    ) -> Option<Table> {
        let rewrites: Vec<&Directive> = own.iter().filter(|d| d.name == "rewrite").collect();
        let (d, rest) = rewrites.split_first()?;
        for extra in rest {
            self.unsupported(
                extra,
                "after a rewrite that redirects, rampart writes no other",
            );
        }
        let (re, target) = match d.args.as_slice() {
            [re, target, ..] if d.args.len() <= 3 => (re, target),
            _ => {
                self.unsupported(d, "expected `rewrite REGEX REPLACEMENT [flag]`");
                return None;
            }
        };
        if regex::Regex::new(re).is_err() {
            self.unsupported(
                d,
                format!("the regex `{re}` uses PCRE features rampart's regex engine lacks"),
            );
            return None;
        }
        // A capture of the whole path is `$uri` (nginx's rewrite reads
        // `$uri` too): `rewrite ^/(.*)$ https://example.com/$1 permanent;`.
        let target = match whole_path(re) {
            Some(cap)
                if !cap.is_empty() && target.matches("$1").count() == 1 && target.contains(cap) =>
            {
                target.replacen(cap, "$uri", 1)
            }
            _ => target.clone(),
        };
        let url = match target.strip_suffix('?') {
            Some(bare) => bare.to_string(),
            None if target.contains('?') => {
                self.unsupported(d, "a redirecting rewrite with a query: nginx appends the request's own after it, which rampart's redirect cannot do only when there is one");
                return None;
            }
            None => format!("{target}$is_args$args"),
        };
        let url = match vars::template(&url, names, false) {
            Ok(u) => u,
            Err(var) => {
                self.unsupported(d, format!("a rewrite that redirects with `{var}`: rampart's redirect takes variables but no regex captures"));
                return None;
            }
        };
        let status = if d.args.get(2).map(String::as_str) == Some("permanent") {
            301
        } else {
            302
        };
        let mut r = t.clone();
        r.what = format!("{}: rewrite {re} (redirects)", r.what);
        r.from(d.at());
        r.set(
            "if",
            format!("[{}, {}, {}]", emit::s("$uri"), emit::s("~"), emit::s(re)),
        );
        self.take(d);
        let url = self.absolute(chain, d, names, url);
        r.set("redirect", emit::s(&url));
        r.set("redirect_status", status.to_string());
        Some(r)
    }

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
        if redirects(d) {
            self.unsupported(
                d,
                "a rewrite that redirects in a location with content: rampart's route redirects or serves, and its redirect takes no regex captures",
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
