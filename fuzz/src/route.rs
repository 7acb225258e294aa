//! Route selection, for the `route_path` target: the routes of a
//! configuration are tried in file order and the first whose matcher accepts
//! the request wins (docs/configuration.md, `[[route]]`).
//!
//! A matcher accepts a request when both hold:
//! - host: the route names none, or the request's Host equals it ignoring
//!   ASCII case (a request without a Host matches only host-less routes);
//! - path: the route has no path key, or the path starts with `path`, or
//!   equals `path_exact`, or `path_regex` finds a match anywhere in it.
//!
//! The regexes are given here as plain predicates over the path, so the model
//! does not run the regex engine it checks.

/// A route's matcher in the model.
pub struct Rule {
    pub host: Option<&'static str>,
    pub path: PathRule,
}

pub enum PathRule {
    Any,
    Prefix(&'static str),
    Exact(&'static str),
    /// Stands for a `path_regex`: the predicate says what the regex matches.
    Predicate(fn(&str) -> bool),
}

impl Rule {
    pub fn accepts(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (self.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        host_ok
            && match &self.path {
                PathRule::Any => true,
                PathRule::Prefix(p) => path.starts_with(p),
                PathRule::Exact(p) => path == *p,
                PathRule::Predicate(f) => f(path),
            }
    }
}

/// The index of the first rule that accepts the request.
pub fn first_match(rules: &[Rule], host: Option<&str>, path: &str) -> Option<usize> {
    rules.iter().position(|r| r.accepts(host, path))
}
