//! The responses rampart writes itself: plain text, redirects, and the
//! answer a [`ProxyError`] becomes.

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
