//! A route's `upstream_path` and `rewrite`, compiled into a [`Rewrite`]
//! (applied to requests by [`crate::http::rewrite`]).

use super::{
    ConfigError, PathMatch, error::Locator, file::FileRoute, path_match::normal, template::template,
};
use crate::template::Template;

/// A route's path rewrite, as compiled.
#[derive(Clone, Debug)]
pub enum Rewrite {
    /// `upstream_path`: the route's `path` prefix is replaced by `with`.
    Prefix { prefix: String, with: String },
    /// `rewrite = [REGEX, TARGET]`: a path the regex finds a match in
    /// becomes TARGET, its `$N` the captures. `last` (nginx's flag): the
    /// routes are searched again for the new path (see [`crate::http::route`]).
    Regex {
        re: regex::Regex,
        to: Template,
        last: bool,
    },
}

impl PartialEq for Rewrite {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Rewrite::Prefix { prefix, with }, Rewrite::Prefix { prefix: p, with: w }) => {
                prefix == p && with == w
            }
            (
                Rewrite::Regex { re, to, last },
                Rewrite::Regex {
                    re: r,
                    to: t,
                    last: l,
                },
            ) => re.as_str() == r.as_str() && to == t && last == l,
            _ => false,
        }
    }
}

impl std::fmt::Display for Rewrite {
    /// As `config show` names it: nginx's spelling.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rewrite::Prefix { prefix, with } => write!(f, "prefix {prefix} -> {with}"),
            Rewrite::Regex { re, to, last } => {
                let flag = if *last { "last" } else { "break" };
                write!(f, "rewrite {} {to} {flag}", re.as_str())
            }
        }
    }
}

pub(super) fn rewrite(
    loc: &Locator,
    r: &FileRoute,
    path: &PathMatch,
) -> Result<Option<Rewrite>, ConfigError> {
    match (&r.upstream_path, &r.rewrite) {
        (None, None) => Ok(None),
        (Some(_), Some(rw)) => Err(loc.error(
            rw.span(),
            "a route takes upstream_path or rewrite, not both (write the prefix into the regex)",
        )),
        (Some(with), None) => {
            let PathMatch::Prefix(prefix) = path else {
                return Err(loc.error(
                    with.span(),
                    "upstream_path replaces the route's `path` prefix: it needs `path = \"/prefix/\"`",
                ));
            };
            if r.upstream.is_none() {
                return Err(loc.error(
                    with.span(),
                    "upstream_path is for upstream routes (a static route's prefix is replaced by `static`)",
                ));
            }
            if !with.get_ref().starts_with('/') {
                return Err(loc.error(with.span(), "upstream_path must start with `/`"));
            }
            Ok(Some(Rewrite::Prefix {
                prefix: prefix.clone(),
                with: normal(loc, with, "upstream_path")?,
            }))
        }
        (None, Some(rw)) => {
            let (re, to, last) = match rw.get_ref().as_slice() {
                [re, to] => (re, to, false),
                [re, to, flag] => match flag.get_ref().as_str() {
                    "break" => (re, to, false),
                    "last" => (re, to, true),
                    other => {
                        return Err(loc.error(
                            flag.span(),
                            format!("rewrite flag `{other}`: expected \"break\" (the default) or \"last\""),
                        ));
                    }
                },
                _ => {
                    return Err(loc.error(
                        rw.span(),
                        "rewrite = [\"REGEX\", \"TARGET\"] or [\"REGEX\", \"TARGET\", \"last\"], e.g. [\"^/old/(.*)$\", \"/new/$1\"]",
                    ));
                }
            };
            // `last` sends the request to another route: any route may.
            if !last && r.upstream.is_none() && r.static_dir.is_none() && r.root.is_none() {
                return Err(loc.error(
                    rw.span(),
                    "rewrite is for upstream and static routes (a redirect or respond route uses variables instead, or rewrites with \"last\")",
                ));
            }
            if !re.get_ref().is_ascii() {
                return Err(loc.error(
                    re.span(),
                    "rewrite: paths are matched with non-ASCII bytes percent-encoded (%C3%A9 for \u{e9}); write them so",
                ));
            }
            let regex = regex::Regex::new(re.get_ref()).map_err(|e| {
                loc.error(
                    re.span(),
                    format!("rewrite: the regex does not compile: {e}"),
                )
            })?;
            let target = template(loc, to, regex.captures_len() - 1, "rewrite")?;
            if !(to.get_ref().starts_with('/') || to.get_ref().starts_with('$')) {
                return Err(loc.error(
                    to.span(),
                    "rewrite: the target is a path (starting with `/`); for a redirect use `redirect`",
                ));
            }
            Ok(Some(Rewrite::Regex {
                re: regex,
                to: target,
                last,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(route: &str) -> Result<Config, String> {
        let text = format!("[upstream.app]\nservers = [\"127.0.0.1:1\"]\n[[route]]\n{route}\n");
        Config::parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_rewrites_are_placed() {
        for (route, want) in [
            (
                "path_exact = \"/a\"\nupstream = \"app\"\nupstream_path = \"/\"",
                "t.toml:6:17: upstream_path replaces the route's `path` prefix",
            ),
            (
                "path = \"/a/\"\nupstream = \"app\"\nupstream_path = \"/x//y\"",
                "t.toml:6:17: upstream_path \"/x//y\" would never match",
            ),
            (
                "upstream = \"app\"\nrewrite = [\"^/old/(.*)$\", \"/new/$2\"]",
                "t.toml:5:33: rewrite: `$2`: the regex has 1 capture group(s)",
            ),
            (
                "upstream = \"app\"\nrewrite = [\"^/old/(.*$\", \"/new/$1\"]",
                "t.toml:5:12: rewrite: the regex does not compile",
            ),
            (
                "upstream = \"app\"\nrewrite = [\"^/old/\"]",
                "t.toml:5:11: rewrite = [\"REGEX\", \"TARGET\"]",
            ),
            (
                "upstream = \"app\"\nrewrite = [\"^/old/\", \"new\"]",
                "t.toml:5:22: rewrite: the target is a path",
            ),
        ] {
            let e = parse(route).unwrap_err();
            assert!(e.starts_with(want), "{route}: {e}");
        }
        assert!(parse("path = \"/api/\"\nupstream = \"app\"\nupstream_path = \"/\"").is_ok());
        let e =
            parse("upstream = \"app\"\nrewrite = [\"^/a\", \"/b\", \"permanent\"]").unwrap_err();
        assert!(
            e.starts_with("t.toml:5:25: rewrite flag `permanent`"),
            "{e}"
        );
        let c = parse("respond = 404\nrewrite = [\"^/a/(.*)\", \"/b/$1\", \"last\"]").unwrap();
        assert!(c.routes[0].rewrite.as_ref().unwrap().is_last());
        assert!(parse("respond = 404\nrewrite = [\"^/a/(.*)\", \"/b/$1\"]").is_err());
    }
}
