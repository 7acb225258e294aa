//! Error pages (`[[error_page]]`, nginx `error_page` and
//! `proxy_intercept_errors`) and the maintenance switch (`rampart
//! maintenance on`), which answers every request with 503 and that status's
//! page, without a reload.

use std::sync::atomic::{AtomicBool, Ordering};

use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use super::{Body, full};
use crate::config::error_page::ErrorPages;

/// The maintenance switch, shared by every configuration snapshot (a
/// reload keeps it; a restart starts with it off).
#[derive(Debug, Default)]
pub struct Maintenance(AtomicBool);

impl Maintenance {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    pub fn on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How long clients are told to wait during maintenance (`Retry-After`).
const RETRY_AFTER_SECS: &str = "120";

/// The answer during maintenance: 503 with the 503 page, else a short text.
pub fn maintenance(pages: &ErrorPages) -> Response<Body> {
    let mut resp = page(pages, StatusCode::SERVICE_UNAVAILABLE).unwrap_or_else(|| {
        let mut r = Response::new(full("503 Service Unavailable: down for maintenance\n"));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    });
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    resp
}

/// `status`'s page as a response, if it has one.
fn page(pages: &ErrorPages, status: StatusCode) -> Option<Response<Body>> {
    let p = pages.get(status.as_u16())?;
    let mut r = Response::new(full(p.body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&p.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(p.body.len()));
    Some(r)
}

/// `resp` with its status's page instead of its body, when there is one:
/// always for a response rampart made, for an upstream's (`from_upstream`)
/// only when the page has `intercept = true`. Headers that describe the
/// request's outcome rather than the body (`Retry-After`, `Allow`,
/// `WWW-Authenticate`, `Location`) are kept.
#[cold]
pub fn apply(pages: &ErrorPages, resp: Response<Body>, from_upstream: bool) -> Response<Body> {
    let status = resp.status();
    let Some(p) = pages.get(status.as_u16()) else {
        return resp;
    };
    if from_upstream && !p.intercept {
        return resp;
    }
    let Some(mut out) = page(pages, status) else {
        return resp;
    };
    for name in [
        header::RETRY_AFTER,
        header::ALLOW,
        header::WWW_AUTHENTICATE,
        header::LOCATION,
    ] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    // What the access log and metrics read from the original answer.
    *out.extensions_mut() = resp.into_parts().0.extensions;
    out
}
