//! A route's `auth_request`: a subrequest to an auth service decides each
//! request (nginx `auth_request` + `auth_request_set`). The request side is
//! [`crate::http::auth_request`].

use hyper::header::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, error::Locator};

/// `auth_request = { upstream = "auth", path = "/verify", copy_headers = ["X-User"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuthRequest {
    pub upstream: Spanned<String>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub copy_headers: Vec<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    /// The `[upstream.NAME]` group the subrequest goes to.
    pub upstream: String,
    /// Its path (and query), as the auth service is asked.
    pub path: String,
    /// Response headers of a 2xx copied onto the request (replacing any
    /// the client sent under those names).
    pub copy_headers: Vec<HeaderName>,
}

pub(super) fn auth_request(
    loc: &Locator,
    upstreams: &std::collections::BTreeMap<String, super::Upstream>,
    a: Option<Spanned<FileAuthRequest>>,
) -> Result<Option<AuthRequest>, ConfigError> {
    let Some(a) = a else { return Ok(None) };
    let a = a.into_inner();
    if !upstreams.contains_key(a.upstream.get_ref()) {
        return Err(loc.error(
            a.upstream.span(),
            format!("auth_request: no [upstream.{}]", a.upstream.get_ref()),
        ));
    }
    let path = a.path.get_ref();
    if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
        return Err(loc.error(
            a.path.span(),
            format!("auth_request path {path:?}: expected a path such as \"/auth\""),
        ));
    }
    let copy_headers = a
        .copy_headers
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.get_ref().as_bytes()).map_err(|_| {
                loc.error(
                    h.span(),
                    format!(
                        "auth_request copy_headers: `{}` is not a header name",
                        h.get_ref()
                    ),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(AuthRequest {
        upstream: a.upstream.into_inner(),
        path: path.clone(),
        copy_headers,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(ar: &str) -> Result<Config, String> {
        Config::parse(
            &format!(
                "[upstream.auth]\nservers = [\"127.0.0.1:9\"]\n\
                 [[route]]\nrespond = 200\nauth_request = {ar}\n"
            ),
            Path::new("rampart.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_checked_with_file_line_and_column() {
        let cfg =
            parse("{ upstream = \"auth\", path = \"/v\", copy_headers = [\"X-User\"] }").unwrap();
        let ar = cfg.routes[0].auth_request.as_ref().unwrap();
        assert_eq!(
            (ar.path.as_str(), ar.copy_headers[0].as_str()),
            ("/v", "x-user")
        );
        let e = parse("{ upstream = \"nope\", path = \"/v\" }").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:5:29: auth_request: no [upstream.nope]"),
            "{e}"
        );
        let e = parse("{ upstream = \"auth\", path = \"v\" }").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:5:44: auth_request path \"v\""),
            "{e}"
        );
        let e =
            parse("{ upstream = \"auth\", path = \"/v\", copy_headers = [\"a b\"] }").unwrap_err();
        assert!(e.contains("`a b` is not a header name"), "{e}");
        let e = parse("{ upstream = \"auth\", path = \"/v\", extra = 1 }").unwrap_err();
        assert!(e.starts_with("rampart.toml:5:"), "{e}");
    }
}
