//! Route matching: the first route, in file order, whose matcher accepts
//! the request's path (and host, when the route names one).

use hyper::{Request, StatusCode, header::HeaderValue, http::uri::PathAndQuery};

use super::{ConnInfo, ProxyError, State};
use crate::config::{PathMatch, Route};

/// How many times `rewrite ... last` may send a request to another route
/// (nginx's limit; one more is a 500).
pub const MAX_REWRITES: usize = 10;

/// The index of the route for `path` on `host`, if any.
pub fn find(routes: &[Route], host: Option<&str>, path: &str) -> Option<usize> {
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
    })
}

/// The route for `req`, after nginx's `rewrite ... last`: while the
/// route found has a `last` rewrite that matches, the path is rewritten
/// (`original` keeps the target as received) and the routes are searched
/// again, at most [`MAX_REWRITES`] times (500 after, as nginx). `Err`
/// carries the answer and the route it came from.
pub(super) fn find_rewritten<B>(
    state: &State,
    conn: ConnInfo,
    server: Option<usize>,
    host: Option<&str>,
    request_id: &HeaderValue,
    original: &mut Option<PathAndQuery>,
    req: &mut Request<B>,
) -> Result<usize, (ProxyError, Option<usize>)> {
    let routes = &state.config.routes;
    let mut changes = 0;
    loop {
        let Some(i) = super::vhost::route(&state.config, server, host, req.uri().path()) else {
            return Err((
                ProxyError::downstream(StatusCode::NOT_FOUND, "no route"),
                None,
            ));
        };
        let Some(rw) = routes[i].rewrite.as_ref().filter(|r| r.is_last()) else {
            return Ok(i);
        };
        let vars = super::vars_of(conn, host, request_id, original.as_ref(), req.uri())
            .with(req.headers());
        let uri = match rw.apply(req.uri(), &vars) {
            Ok(None) => return Ok(i),
            Ok(Some(uri)) => uri,
            Err(e) => return Err((e, Some(i))),
        };
        if changes == MAX_REWRITES {
            return Err((
                ProxyError::Internal(format!(
                    "rewrite cycle: more than {MAX_REWRITES} rewrites with last"
                )),
                Some(i),
            ));
        }
        changes += 1;
        if original.is_none() {
            *original = req.uri().path_and_query().cloned();
        }
        *req.uri_mut() = uri;
    }
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
