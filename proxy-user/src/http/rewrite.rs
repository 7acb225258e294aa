//! A route's path rewrite, applied after routing and before its action (on
//! the way to the upstream, or to the file looked up): the matched prefix
//! replaced (nginx `proxy_pass http://app/;` in `location /api/`), or a
//! regex with captures (nginx `rewrite ^/old/(.*)$ /new/$1 break;`).
//! Compiled at load ([`crate::config::rewrite`]); the rewritten path is normalised again (see
//! [`crate::path`]), so what leaves is as normal as what came in.

use std::borrow::Cow;

use hyper::{StatusCode, Uri};

use super::ProxyError;
use crate::{config::rewrite::Rewrite, path, template::Vars};

// === impl Rewrite: applying it to a request ===

impl Rewrite {
    /// nginx's `last`: the routes are searched again after it.
    pub fn is_last(&self) -> bool {
        matches!(self, Rewrite::Regex { last: true, .. })
    }

    /// The request target after the rewrite, or `None` when it leaves the
    /// request alone (a regex that finds no match, a path without the prefix).
    pub fn apply(&self, uri: &Uri, vars: &Vars) -> Result<Option<Uri>, ProxyError> {
        let path = uri.path();
        let (new_path, new_query): (String, Option<Cow<str>>) = match self {
            Rewrite::Prefix { prefix, with } => {
                let Some(rest) = path.strip_prefix(prefix.as_str()) else {
                    return Ok(None);
                };
                (format!("{with}{rest}"), uri.query().map(Cow::Borrowed))
            }
            Rewrite::Regex { re, to, .. } => {
                let Some(caps) = re.captures(path) else {
                    return Ok(None);
                };
                let target = to.render_with(vars, Some(&caps));
                // nginx: a target with its own query gets the request's
                // appended, unless it ends with `?`.
                match target.split_once('?') {
                    None => (target, uri.query().map(Cow::Borrowed)),
                    Some((p, "")) => (p.to_string(), None),
                    Some((p, q)) => {
                        let q = match uri.query() {
                            Some(orig) => format!("{q}&{orig}"),
                            None => q.to_string(),
                        };
                        (p.to_string(), Some(Cow::Owned(q)))
                    }
                }
            }
        };
        let refuse = |why: String| {
            ProxyError::downstream(StatusCode::BAD_REQUEST, format!("rewritten path: {why}"))
        };
        let normal = path::normalise(&new_path).map_err(|e| refuse(e.to_string()))?;
        let target = match new_query {
            Some(q) => format!("{normal}?{q}"),
            None => normal.into_owned(),
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(target.parse().map_err(|e| refuse(format!("{e}")))?);
        Uri::from_parts(parts)
            .map(Some)
            .map_err(|e| refuse(format!("{e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    fn vars() -> Vars<'static> {
        Vars {
            host: "h",
            https: false,
            remote_addr: "192.0.2.1".parse().unwrap(),
            request_id: "i",
            server_port: 80,
            request_uri: "/",
            uri: "/",
            args: None,
            headers: None,
        }
    }

    fn regex(re: &str, to: &str) -> Rewrite {
        let re = regex::Regex::new(re).unwrap();
        let to = Template::parse(to, re.captures_len() - 1).unwrap();
        Rewrite::Regex {
            re,
            to,
            last: false,
        }
    }

    fn apply(r: &Rewrite, target: &str) -> Option<String> {
        let uri: Uri = target.parse().unwrap();
        r.apply(&uri, &vars())
            .unwrap()
            .map(|u| u.path_and_query().unwrap().to_string())
    }

    #[test]
    fn prefix_replacement_keeps_the_rest_and_the_query() {
        let strip = Rewrite::Prefix {
            prefix: "/api/".into(),
            with: "/".into(),
        };
        assert_eq!(
            apply(&strip, "/api/users?x=1").as_deref(),
            Some("/users?x=1")
        );
        assert_eq!(apply(&strip, "/api/").as_deref(), Some("/"));
        assert_eq!(apply(&strip, "/other"), None);
        let moved = Rewrite::Prefix {
            prefix: "/api".into(),
            with: "/v2/".into(),
        };
        assert_eq!(
            apply(&moved, "/api/users").as_deref(),
            Some("/v2/users"),
            "normalised"
        );
    }

    #[test]
    fn regex_targets_take_captures_and_nginx_query_rules() {
        let r = regex("^/old/(.*)$", "/new/$1");
        assert_eq!(apply(&r, "/old/a/b?q=1").as_deref(), Some("/new/a/b?q=1"));
        assert_eq!(apply(&r, "/other"), None);
        let with_args = regex("^/p/([0-9]+)$", "/post?id=$1");
        assert_eq!(
            apply(&with_args, "/p/7?utm=x").as_deref(),
            Some("/post?id=7&utm=x")
        );
        let drop_args = regex("^/x$", "/y?");
        assert_eq!(apply(&drop_args, "/x?a=1").as_deref(), Some("/y"));
        let dots = regex("^/d/(.*)$", "/$1/../z");
        assert_eq!(
            apply(&dots, "/d/a").as_deref(),
            Some("/z"),
            "normalised again"
        );
        let escape = regex("^/e/(.*)$", "/../$1");
        let uri: Uri = "/e/a".parse().unwrap();
        assert!(escape.apply(&uri, &vars()).is_err(), "above the root: 400");
    }
}
