//! `[[route]]`: what to do with a request, chosen by the first route (in
//! file order) whose matcher accepts it.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use toml::Spanned;

use super::{
    ConfigError, PathMatch, error::Locator, file::FileRoute, int_in, template::template, units,
};
use crate::template::Template;

#[derive(Clone, Debug)]
pub struct Route {
    pub matcher: Matcher,
    pub action: Action,
    /// `[limit.*]` zones that all apply, in order.
    pub limits: Vec<String>,
    /// `[escalate.*]` rules this route's responses count toward.
    pub escalate: Vec<String>,
    /// Largest request body accepted (413 above).
    pub max_body: u64,
    /// Idle time allowed on a proxied connection (a WebSocket's whole life).
    pub idle_timeout: Duration,
    /// Write an access-log line for requests on this route.
    pub access_log: bool,
    /// `upstream_path` or `rewrite`: the path the action sees instead.
    pub rewrite: Option<super::rewrite::Rewrite>,
    /// Header rules (`[http]`'s then the route's); `None` when there are none.
    pub headers: Option<std::sync::Arc<super::header_rules::HeaderRules>>,
    /// `access` / `allow` / `deny`: who may use it (403 for the others).
    pub access: super::access::Access,
    /// `auth_basic` + `auth_basic_user_file`: 401 without a user's password.
    pub basic_auth: Option<std::sync::Arc<super::basic_auth::BasicAuth>>,
    /// `auth_request`: a subrequest to an auth service decides.
    pub auth_request: Option<super::AuthRequest>,
    /// How its responses are compressed (the route's `compress`, else
    /// `[compress]`); `None`: not at all.
    pub compress: Option<std::sync::Arc<super::compress::CompressSettings>>,
    /// Its error pages (the route's `error_page`, else `[[error_page]]`).
    pub error_pages: super::error_page::ErrorPages,
}

#[derive(Clone, Debug)]
pub struct Matcher {
    pub path: PathMatch,
    /// Host header (without port) the route is restricted to.
    pub host: Option<String>,
    /// The route's `if`: a condition on a request variable.
    pub condition: Option<super::condition::Condition>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Answer with a fixed status (and body, variables filled in) without
    /// touching any upstream.
    Respond { status: u16, body: Template },
    /// Serve files from a directory: with `alias` the route's prefix is
    /// stripped from the path (nginx `alias`, key `static`), without it the
    /// whole path is looked up under the directory (nginx `root`, key `root`).
    Static {
        root: PathBuf,
        alias: bool,
        index: String,
        expires: Option<Duration>,
        cache_control: Option<String>,
        /// Serve `/.well-known/` (RFC 8615) at the top of the directory;
        /// every other path with a segment starting with `.` is a 404.
        well_known: bool,
        /// nginx `try_files`: checks and a fallback; `None` is `$uri $uri/ =404`.
        try_files: Option<super::try_files::TryFiles>,
    },
    /// Proxy to an upstream group.
    Proxy { upstream: String },
    /// Redirect to the target with its variables filled in (nginx `return
    /// 301 https://$host:8443$request_uri`).
    Redirect { to: Template, status: u16 },
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.host == other.host && self.condition == other.condition
    }
}

impl Route {
    /// How views and evidence name the route: its path matcher, and host.
    pub fn name(&self) -> String {
        let path = match &self.matcher.path {
            PathMatch::Any => "any path".to_string(),
            PathMatch::Prefix(p) => p.clone(),
            PathMatch::Exact(p) => format!("= {p}"),
            PathMatch::Regex(r) => format!("~ {}", r.as_str()),
        };
        let path = match &self.matcher.condition {
            Some(c) => format!("{path} if {}", c.source()),
            None => path,
        };
        match &self.matcher.host {
            Some(h) => format!("{h} {path}"),
            None => path,
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.matcher == other.matcher
            && self.action == other.action
            && self.limits == other.limits
            && self.escalate == other.escalate
            && self.max_body == other.max_body
            && self.idle_timeout == other.idle_timeout
            && self.access_log == other.access_log
            && self.headers == other.headers
            && self.rewrite == other.rewrite
            && self.access == other.access
            && self.basic_auth == other.basic_auth
            && self.auth_request == other.auth_request
            && self.compress == other.compress
            && self.error_pages == other.error_pages
    }
}

/// Names known elsewhere in the file, for reference checks.
pub(super) struct Known<'a> {
    pub upstreams: &'a BTreeMap<String, super::Upstream>,
    pub limits: &'a BTreeMap<String, super::LimitZone>,
    pub escalate: &'a BTreeMap<String, super::EscalateRule>,
    pub max_body: u64,
    pub base: &'a std::path::Path,
    pub headers: &'a super::HeaderDefaults,
    pub compress: Option<&'a super::compress::CompressSettings>,
    pub error_pages: &'a super::error_page::ErrorPages,
}

pub(super) fn route(
    loc: &Locator,
    known: &Known,
    r: Spanned<FileRoute>,
) -> Result<Route, ConfigError> {
    let span = r.span();
    let mut r = r.into_inner();
    let headers = super::header_rules::route(loc, known.headers, r.header_keys())?;
    let path = super::path_match::path_match(loc, &r, span.clone())?;
    let actions = [
        r.respond.is_some(),
        r.static_dir.is_some(),
        r.root.is_some(),
        r.upstream.is_some(),
        r.redirect.is_some(),
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        return Err(loc.error(
            span,
            "a route needs exactly one of respond, static, root, upstream or redirect",
        ));
    }
    if let Some(w) = &r.serve_well_known
        && r.static_dir.is_none()
        && r.root.is_none()
    {
        return Err(loc.error(
            w.span(),
            "serve_well_known is for static routes (static or root)",
        ));
    }
    if let Some(t) = &r.try_files
        && r.static_dir.is_none()
        && r.root.is_none()
    {
        return Err(loc.error(
            t.span(),
            "try_files is for static routes (static or root): it looks for files in their directory",
        ));
    }
    let action = if let Some(status) = &r.respond {
        if *status.get_ref() == 444
            && let Some(b) = &r.body
        {
            return Err(loc.error(
                b.span(),
                "respond = 444 closes the connection without an answer: it has no body",
            ));
        }
        Action::Respond {
            status: int_in(loc, status, 100, 599, "respond")? as u16,
            body: match &r.body {
                Some(b) => template(loc, b, 0, "body")?,
                None => Template::parse("", 0).expect("an empty value compiles"),
            },
        }
    } else if let Some(dir) = r.static_dir.as_ref().or(r.root.as_ref()) {
        let root = known.base.join(dir.get_ref());
        if !root.is_dir() {
            return Err(loc.error(
                dir.span(),
                format!("static: {} is not a directory", root.display()),
            ));
        }
        let expires = r
            .expires
            .as_ref()
            .map(|e| units::duration(e.get_ref()).map_err(|err| loc.error(e.span(), err.0)))
            .transpose()?;
        Action::Static {
            root,
            alias: r.static_dir.is_some(),
            index: r.index.clone().unwrap_or_else(|| "index.html".into()),
            expires,
            cache_control: r.cache_control.clone(),
            well_known: r.serve_well_known.as_ref().is_some_and(|w| *w.get_ref()),
            try_files: r
                .try_files
                .as_ref()
                .map(|t| {
                    let prefix = match &path {
                        PathMatch::Prefix(p) if r.static_dir.is_some() => Some(p.as_str()),
                        _ => None,
                    };
                    super::try_files::try_files(loc, t, known.upstreams, prefix)
                })
                .transpose()?,
        }
    } else if let Some(up) = &r.upstream {
        if !known.upstreams.contains_key(up.get_ref()) {
            let names: Vec<&str> = known.upstreams.keys().map(String::as_str).collect();
            return Err(loc.error(
                up.span(),
                format!(
                    "no [upstream.{}] (defined: {})",
                    up.get_ref(),
                    names.join(", ")
                ),
            ));
        }
        Action::Proxy {
            upstream: up.get_ref().clone(),
        }
    } else {
        let to = r.redirect.as_ref().unwrap();
        let status = r
            .redirect_status
            .as_ref()
            .map_or(Ok(302), |s| int_in(loc, s, 300, 308, "redirect_status"))?
            as u16;
        Action::Redirect {
            to: template(loc, to, 0, "redirect")?,
            status,
        }
    };
    let rewrite = super::rewrite::rewrite(loc, &r, &path)?;
    let condition = super::condition::condition(loc, r.condition.take())?;
    let limits = names(loc, r.limit.as_ref(), "limit", |n| {
        known.limits.contains_key(n)
    })?;
    let escalate = names(loc, r.escalate.as_ref(), "escalate", |n| {
        known.escalate.contains_key(n)
    })?;
    let max_body = match &r.max_body {
        None => known.max_body,
        Some(m) => units::size_at_most(m.get_ref(), super::http::MAX_BODY)
            .map_err(|e| loc.error(m.span(), e.0))?,
    };
    let idle_timeout = match &r.idle_timeout {
        None => Duration::from_secs(60),
        Some(d) => units::duration_at_most(d.get_ref(), units::DAY)
            .map_err(|e| loc.error(d.span(), e.0))?,
    };
    let access = super::access::access(loc, r.access.take(), r.allow.take(), r.deny.take())?;
    let basic_auth = super::basic_auth::basic_auth(
        loc,
        known.base,
        r.auth_basic.take(),
        r.auth_basic_user_file.take(),
    )?;
    let auth_request =
        super::auth_request::auth_request(loc, known.upstreams, r.auth_request.take())?;
    let compress = super::compress::route(loc, r.compress.take(), known.compress)?;
    let error_pages =
        super::error_page::route(loc, known.base, r.error_page.take(), known.error_pages)?;
    Ok(Route {
        matcher: Matcher {
            path,
            host: r.host.map(|h| h.into_inner().to_ascii_lowercase()),
            condition,
        },
        action,
        limits,
        escalate,
        max_body,
        idle_timeout,
        access_log: r.access_log.unwrap_or(true),
        headers,
        rewrite,
        access,
        basic_auth,
        auth_request,
        compress,
        error_pages,
    })
}

/// A route's `limit` or `escalate` names, each of which must name a
/// `[SECTION.NAME]` of the file.
fn names(
    loc: &Locator,
    value: Option<&toml::Spanned<super::file::OneOrMany<String>>>,
    section: &str,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ConfigError> {
    let Some(v) = value else {
        return Ok(vec![]);
    };
    let names = match v.get_ref() {
        super::file::OneOrMany::One(n) => vec![n.clone()],
        super::file::OneOrMany::Many(list) => list.clone(),
    };
    if let Some(missing) = names.iter().find(|n| !known(n)) {
        return Err(loc.error(v.span(), format!("no [{section}.{missing}]")));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(matcher: &str) -> Result<Config, String> {
        let text = format!("[[route]]\n{matcher}\nrespond = 404\n");
        Config::parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn route_paths_are_written_normalised() {
        for (matcher, hint) in [
            (r#"path = "/%61dmin""#, r#"write "/admin""#),
            (r#"path = "//admin""#, r#"write "/admin""#),
            (r#"path_exact = "/a/./b""#, r#"write "/a/b""#),
            (r#"path = "/caf\u00e9/""#, r#"write "/caf%C3%A9/""#),
            (r#"path = "/a%2Fb""#, "no request path has it"),
            (r#"path = "/..""#, "no request path has it"),
            (r#"path_regex = "^/caf\u00e9""#, "percent-encoded"),
        ] {
            let e = parse(matcher).expect_err(matcher);
            assert!(e.contains(hint), "{matcher}: {e}");
            assert!(e.starts_with("t.toml:2:"), "{matcher}: {e}");
        }
        for ok in [
            r#"path = "/api/""#,
            r#"path = "/admin""#,
            r#"path_exact = "/caf%C3%A9""#,
            r#"path_regex = '\.(env|git)$'"#,
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok).err());
        }
    }

    #[test]
    fn serve_well_known_is_for_static_routes() {
        let e = parse("path = \"/x\"\nserve_well_known = true").unwrap_err();
        assert!(
            e.starts_with("t.toml:3:") && e.contains("static routes"),
            "{e}"
        );
    }
}
