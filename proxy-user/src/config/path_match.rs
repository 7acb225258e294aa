//! A route's path matcher (`path`, `path_exact` or `path_regex`), as
//! requests are matched against it ([`crate::http::route`]).

use std::ops::Range;

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileRoute};

#[derive(Clone, Debug)]
pub enum PathMatch {
    /// Any path (no path key given).
    Any,
    /// Paths starting with this string.
    Prefix(String),
    /// Exactly this path.
    Exact(String),
    /// Paths the regex finds a match in.
    Regex(regex::Regex),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Any, PathMatch::Any) => true,
            (PathMatch::Prefix(a), PathMatch::Prefix(b))
            | (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// The route's one path key, compiled; `span` is the route's, for the
/// error when it has more than one.
pub(super) fn path_match(
    loc: &Locator,
    r: &FileRoute,
    span: Range<usize>,
) -> Result<PathMatch, ConfigError> {
    Ok(match (&r.path, &r.path_exact, &r.path_regex) {
        (None, None, None) => PathMatch::Any,
        (Some(p), None, None) => PathMatch::Prefix(normal(loc, p, "path")?),
        (None, Some(p), None) => PathMatch::Exact(normal(loc, p, "path_exact")?),
        (None, None, Some(p)) => {
            if !p.get_ref().is_ascii() {
                return Err(loc.error(
                    p.span(),
                    "path_regex: paths are matched with non-ASCII bytes percent-encoded \
                     (%C3%A9 for \u{e9}); write them so",
                ));
            }
            PathMatch::Regex(
                regex::Regex::new(p.get_ref()).map_err(|e| {
                    loc.error(p.span(), format!("path_regex does not compile: {e}"))
                })?,
            )
        }
        _ => return Err(loc.error(span, "a route takes one of path, path_exact or path_regex")),
    })
}

/// A `path` or `path_exact` as requests are matched: normalised (see
/// [`crate::path`]), or it could never match.
pub(super) fn normal(loc: &Locator, p: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
    let text = p.get_ref();
    match crate::path::normalise(text) {
        Ok(n) if n == text.as_str() => Ok(n.into_owned()),
        Ok(n) => Err(loc.error(
            p.span(),
            format!("{key} {text:?} would never match: request paths are normalised; write {n:?}"),
        )),
        Err(e) => Err(loc.error(
            p.span(),
            format!("{key} {text:?} would never match: no request path has it ({e})"),
        )),
    }
}
