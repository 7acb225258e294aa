//! What the request path reads off a request: its host (without the
//! port), the variables its templates are filled with, its target with a
//! new path, and the https location a redirect sends it to.

use std::borrow::Cow;

use hyper::{StatusCode, header::HeaderValue};

use super::{ConnInfo, ProxyError};
use crate::template;

/// What the variables of a template stand for in this request: `original`
/// is the request target as received when normalising changed it.
pub(super) fn vars_of<'a>(
    conn: ConnInfo,
    host: Option<&'a str>,
    request_id: &'a HeaderValue,
    original: Option<&'a hyper::http::uri::PathAndQuery>,
    uri: &'a hyper::Uri,
) -> template::Vars<'a> {
    template::Vars {
        host: host.unwrap_or(""),
        https: conn.https,
        remote_addr: conn.client.ip(),
        request_id: request_id.to_str().unwrap_or(""),
        server_port: conn.server_port,
        request_uri: original
            .or(uri.path_and_query())
            .map_or("/", |p| p.as_str()),
        uri: uri.path(),
        args: uri.query(),
        headers: None,
    }
}

/// [`vars_of`] for `req` as it stands, with its headers (`$http_*`).
pub(super) fn request_vars<'a, B>(
    conn: ConnInfo,
    host: Option<&'a str>,
    request_id: &'a HeaderValue,
    original: Option<&'a hyper::http::uri::PathAndQuery>,
    req: &'a hyper::Request<B>,
) -> template::Vars<'a> {
    vars_of(conn, host, request_id, original, req.uri()).with(req.headers())
}

/// `uri` with its path replaced by `path` (normalised), its query kept.
pub(super) fn with_path(uri: &hyper::Uri, path: &str) -> Result<hyper::Uri, ProxyError> {
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(target.parse().map_err(|e| {
        ProxyError::downstream(StatusCode::BAD_REQUEST, format!("request target: {e}"))
    })?);
    hyper::Uri::from_parts(parts).map_err(|e| {
        ProxyError::downstream(StatusCode::BAD_REQUEST, format!("request target: {e}"))
    })
}

/// nginx's `https://$host:PORT$request_uri`: `host` without its port (as
/// [`host_of`] gives it), `:PORT` left out for 443, and the request target
/// exactly as received.
pub(super) fn https_location(host: &str, port: u16, uri: &hyper::Uri) -> String {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    }
}

/// nginx's `$host`: the request's host without its port, lowercased and
/// without a final dot (as nginx's `ngx_http_validate_host` leaves it).
/// Borrowed from `uri` or `host` unless it had upper case to lower.
pub(super) fn host_of<'a>(
    uri: &'a hyper::Uri,
    host: Option<&'a HeaderValue>,
) -> Option<Cow<'a, str>> {
    // An absolute-form target (or HTTP/2's `:authority`) wins over Host
    // (RFC 9112 §3.2.2).
    let raw = match uri.authority() {
        Some(a) => a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h),
        None => host.and_then(|v| v.to_str().ok())?,
    };
    // Strip a port (but not from a bracketed IPv6 literal's inside).
    let mut host = match raw.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => raw,
    };
    if host.len() > 1 && host.ends_with('.') {
        host = &host[..host.len() - 1];
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_nginxs_and_borrowed_when_already_so() {
        let origin: hyper::Uri = "/p".parse().unwrap();
        let host = |h: &'static str| {
            let v = HeaderValue::from_static(h);
            host_of(&origin, Some(&v)).map(|c| (c.to_string(), matches!(c, Cow::Borrowed(_))))
        };
        assert_eq!(host("a.example"), Some(("a.example".into(), true)));
        assert_eq!(host("a.example:8080"), Some(("a.example".into(), true)));
        assert_eq!(host("a.example."), Some(("a.example".into(), true)));
        assert_eq!(host("[::1]:443"), Some(("[::1]".into(), true)));
        assert_eq!(host("[::1]"), Some(("[::1]".into(), true)));
        assert_eq!(host("A.Example.:80"), Some(("a.example".into(), false)));
        assert_eq!(host_of(&origin, None), None);
        // The target's authority wins over Host; user info is left out.
        let absolute: hyper::Uri = "http://u@B.example:81/p".parse().unwrap();
        let v = HeaderValue::from_static("other");
        assert_eq!(host_of(&absolute, Some(&v)).as_deref(), Some("b.example"));
    }
}
