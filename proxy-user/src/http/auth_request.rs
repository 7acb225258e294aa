//! `auth_request`: before a route's action, a GET to the auth service with
//! the client's request headers (no body), `X-Original-URI`,
//! `X-Original-Method` and the forwarding headers. Its answer decides, as
//! nginx's `auth_request` does: 2xx lets the request on, with the
//! `copy_headers` of that answer set on it (nginx `auth_request_set` +
//! `proxy_set_header`); 401 goes to the client (with the service's
//! `WWW-Authenticate`), 403 too; anything else, or no answer, is 500.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode,
    header::{self, HeaderName, HeaderValue},
};

use super::{Body, ConnInfo, State, headers};
use crate::config::AuthRequest;

/// Most of an auth service's answer body read (and dropped) so that its
/// connection can be kept; a longer one costs the connection.
const MAX_BODY: usize = 64 << 10;

pub static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
pub static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// The headers to set on the request, or the answer to the client.
pub async fn check<B>(
    state: &State,
    ar: &AuthRequest,
    conn: &ConnInfo,
    req: &Request<B>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Response<Body>> {
    let fail = |why: String| {
        log::warn!("auth_request to [upstream.{}]: {why}: 500", ar.upstream);
        super::response::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n",
        )
    };
    let Some(group) = state.group(&ar.upstream) else {
        return Err(fail("no such group".into()));
    };
    let Some(lease) = group.pick(&[], tokio::time::Instant::now()) else {
        return Err(fail("no server available".into()));
    };
    let mut head: HeaderMap = req.headers().clone();
    headers::strip_hop_by_hop(&mut head, false);
    head.remove(header::CONTENT_LENGTH);
    head.remove(header::TRANSFER_ENCODING);
    let host = req.headers().get(header::HOST).cloned();
    headers::add_forwarded(&mut head, conn.client.ip(), conn.https, host.as_ref());
    if let Some(h) = host {
        head.insert(header::HOST, h);
    }
    let original = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(v) = HeaderValue::from_str(original) {
        head.insert(X_ORIGINAL_URI.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(req.method().as_str()) {
        head.insert(X_ORIGINAL_METHOD.clone(), v);
    }
    let path: hyper::http::uri::PathAndQuery = match ar.path.parse() {
        Ok(p) => p,
        Err(e) => return Err(fail(format!("path: {e}"))),
    };
    let mut sub = Vec::new();
    crate::upstream::request_head::write(
        &Method::GET,
        path.as_str(),
        &mut head,
        crate::upstream::request_head::BodyLen::Empty,
        &mut sub,
    );
    let up = &group.config;
    let pool = &lease.backend.pool;
    let sent = tokio::time::timeout(
        up.read_timeout,
        pool.send(
            &sub,
            &bytes::Bytes::new(),
            &Method::GET,
            (up.connect_timeout, up.send_timeout),
            None,
        ),
    )
    .await;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            group.failed(&lease.backend, tokio::time::Instant::now());
            return Err(fail(format!("{}: {e}", lease.backend.addr)));
        }
        Err(_) => return Err(fail(format!("no answer within {:?}", up.read_timeout))),
    };
    let (parts, mut body) = resp.into_response().into_parts();
    // Read to its end (bounded) so the connection can serve the next one.
    let read = tokio::time::timeout(Duration::from_secs(5).min(up.read_timeout), async {
        let mut seen = 0;
        while let Some(frame) = body.frame().await {
            seen += frame.ok()?.data_ref().map_or(0, |d| d.len());
            if seen > MAX_BODY {
                return None;
            }
        }
        Some(())
    })
    .await;
    if matches!(read, Ok(Some(())))
        && let Some(c) = body.reusable()
    {
        pool.put(c);
    }
    match parts.status.as_u16() {
        200..=299 => Ok(ar
            .copy_headers
            .iter()
            .flat_map(|n| {
                parts
                    .headers
                    .get_all(n)
                    .iter()
                    .map(|v| (n.clone(), v.clone()))
            })
            .collect()),
        401 => {
            let mut r = super::response::text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
            for v in parts.headers.get_all(header::WWW_AUTHENTICATE) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, v.clone());
            }
            Err(r)
        }
        403 => Err(super::response::text(
            StatusCode::FORBIDDEN,
            "403 Forbidden\n",
        )),
        other => Err(fail(format!("the auth service answered {other}"))),
    }
}

/// Sets the auth service's `copy_headers` on the request; those the client
/// sent under the same names are dropped first, found or not.
pub fn apply(ar: &AuthRequest, req: &mut HeaderMap, set: Vec<(HeaderName, HeaderValue)>) {
    for n in &ar.copy_headers {
        req.remove(n);
    }
    for (n, v) in set {
        req.append(n, v);
    }
}
