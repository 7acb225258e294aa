//! Route matching: the first route, in file order, whose matcher accepts
//! the request's path (and host, and its `if`, when the route has them).

use crate::config::{PathMatch, Route, condition::Condition};

/// How many times `rewrite ... last` may send a request to another route
/// (nginx's limit; one more is a 500).
pub const MAX_REWRITES: usize = 10;

/// The index of the route for `path` on `host`, if any (a route with an
/// `if` is never taken: there is no request to test).
pub fn find(routes: &[Route], host: Option<&str>, path: &str) -> Option<usize> {
    find_when(routes, host, path, &|_| false)
}

/// [`find`], with `holds` telling whether the request meets a route's `if`
/// (tested only for a route whose path and host match).
pub fn find_when(
    routes: &[Route],
    host: Option<&str>,
    path: &str,
    holds: &dyn Fn(&Condition) -> bool,
) -> Option<usize> {
    routes.iter().position(|r| {
        let host_ok = match (&r.matcher.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        host_ok
            && match &r.matcher.path {
                PathMatch::Any => true,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                PathMatch::Exact(p) => path == p,
                PathMatch::Regex(re) => re.is_match(path),
            }
            && r.matcher.condition.as_ref().is_none_or(holds)
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn routes() -> Vec<Route> {
        let dir = std::env::temp_dir();
        let text = format!(
            r#"
[upstream.app]
servers = ["127.0.0.1:8001"]
[[route]]
path_regex = '\.(env|git|svn|config)$'
respond = 404
[[route]]
path = "/static/"
static = "{}"
[[route]]
path = "/api/"
upstream = "app"
[[route]]
path_exact = "/health"
upstream = "app"
[[route]]
host = "admin.example.com"
respond = 403
"#,
            dir.display()
        );
        Config::parse(&text, Path::new("t.toml")).unwrap().routes
    }

    #[test]
    fn first_match_in_file_order_wins() {
        let r = routes();
        assert_eq!(find(&r, None, "/api/users"), Some(2));
        assert_eq!(
            find(&r, None, "/api/.env"),
            Some(0),
            "the regex route comes first"
        );
        assert_eq!(find(&r, None, "/static/app.js"), Some(1));
        assert_eq!(find(&r, None, "/static/.git"), Some(0));
        assert_eq!(find(&r, None, "/health"), Some(3));
        assert_eq!(find(&r, None, "/healthz"), None);
        assert_eq!(find(&r, Some("ADMIN.example.com"), "/x"), Some(4));
        assert_eq!(find(&r, Some("www.example.com"), "/x"), None);
    }
}
