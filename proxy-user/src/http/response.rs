//! The responses rampart writes itself: plain text, redirects, the
//! answer a [`ProxyError`] becomes, and none at all ([`Closed`]).

use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use super::{Body, ProxyError, full};

pub(super) fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// nginx's `return 444`: the status a `respond = 444` route's requests
/// are logged and counted with, though nothing is sent.
pub const CLOSE: u16 = 444;

/// Marks a response that is never sent (`respond = 444`): the server
/// closes the HTTP/1 connection without writing a byte, or resets the
/// HTTP/2 stream (hyper sends RST_STREAM with INTERNAL_ERROR for a service
/// error, as nginx does for `return 444` on HTTP/2). Also the service's
/// error that makes hyper do so ([`crate::server`]'s downstream service).
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("closed without an answer (respond = 444)")]
pub struct Closed;

/// The stand-in for `respond = 444`: status 444, `Content-Length: 0` (so the
/// access log says 0 bytes, as nginx's does), marked [`Closed`].
pub(super) fn closed() -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::from_u16(CLOSE).expect("444 is a status code");
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r.extensions_mut().insert(Closed);
    r
}

pub(super) fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = text(status, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(super) fn error_response(e: &ProxyError) -> Response<Body> {
    let status = e.status();
    let mut resp = text(
        status,
        &format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    );
    if matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE
    ) {
        // A body cut short (timed out, or no memory for it): the rest may
        // still come, so the connection cannot be reused (an HTTP/2 stream
        // is reset instead; hyper drops the header).
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
