//! What the request path reads off a request: its host (without the
//! port), the variables its templates are filled with, its target with a
//! new path, and the https location a redirect sends it to.

use hyper::{Request, StatusCode, header, header::HeaderValue};

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

pub(super) fn host_of<B>(req: &Request<B>) -> Option<String> {
    // An absolute-form target (or HTTP/2's `:authority`) wins over Host
    // (RFC 9112 §3.2.2).
    let raw = match req.uri().authority() {
        Some(a) => a
            .as_str()
            .rsplit_once('@')
            .map_or(a.as_str(), |(_, h)| h)
            .to_string(),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())?
            .to_string(),
    };
    // Strip a port (but not from a bracketed IPv6 literal's inside), and
    // lowercase it as nginx's `$host` is (`WWW.Example.com` redirects to
    // `https://www.example.com/...`).
    Some(match raw.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => {
            h.to_ascii_lowercase()
        }
        _ => raw.to_ascii_lowercase(),
    })
}
