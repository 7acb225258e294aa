//! What [`super::handle`] answers: a response with its headers in a map
//! (rampart's own, or one something edits), or an upstream's response
//! forwarded with its head as the upstream's bytes ([`Forwarded`]), which
//! rampart's HTTP/1 server writes as they are, without a `HeaderMap`
//! (`server::h1_response`).
//!
//! A forwarded response becomes a mapped one wherever its headers are
//! read or changed ([`Reply::map`]): error pages, compression, response
//! header rules, HTTP/2 ([`Reply::into_response`]). What every request
//! needs of it (the status, the length, `X-Request-Id`) is had without.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use super::{Body, Closed, headers::X_REQUEST_ID};
use crate::upstream::Head;

/// A response, mapped or forwarded as it came.
pub enum Reply {
    Mapped(Response<Body>),
    Forwarded(Forwarded),
}

/// An upstream's response: its head as it came, the body, and the
/// request id the proxy sets on it (in place of the upstream's).
pub struct Forwarded {
    pub head: Head,
    pub body: ForwardedBody,
    pub request_id: Option<HeaderValue>,
}

/// A forwarded response's body.
pub enum ForwardedBody {
    /// Read whole already (a response within `response_buffer`).
    Whole(Bytes),
    /// Streamed from the upstream.
    Streamed(Body),
}

impl ForwardedBody {
    fn into_body(self) -> Body {
        match self {
            ForwardedBody::Whole(b) => super::full(b),
            ForwardedBody::Streamed(b) => b,
        }
    }
}

impl From<Response<Body>> for Reply {
    fn from(resp: Response<Body>) -> Reply {
        Reply::Mapped(resp)
    }
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Mapped(r) => r.status(),
            Reply::Forwarded(f) => f.head.status,
        }
    }

    /// `respond = 444`: never sent ([`Closed`]).
    pub fn is_closed(&self) -> bool {
        match self {
            Reply::Mapped(r) => r.extensions().get::<Closed>().is_some(),
            Reply::Forwarded(_) => false,
        }
    }

    /// Its `Content-Length`, for the access log and metrics.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            Reply::Mapped(r) => r
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            Reply::Forwarded(f) => f.head.length(),
        }
    }

    /// Sets `X-Request-Id` (replacing the upstream's).
    pub fn set_request_id(&mut self, id: HeaderValue) {
        match self {
            Reply::Mapped(r) => {
                r.headers_mut().insert(X_REQUEST_ID.clone(), id);
            }
            Reply::Forwarded(f) => f.request_id = Some(id),
        }
    }

    /// The response with its headers in a map, made now if it was forwarded.
    pub fn map(&mut self) -> &mut Response<Body> {
        if let Reply::Forwarded(_) = self {
            // A placeholder without an allocation (its body is zero-sized).
            let empty = Empty::<Bytes>::new().map_err(|never| match never {});
            let taken = std::mem::replace(self, Reply::Mapped(Response::new(empty.boxed())));
            *self = Reply::Mapped(taken.into_response());
        }
        match self {
            Reply::Mapped(r) => r,
            Reply::Forwarded(_) => unreachable!("mapped above"),
        }
    }

    /// The response with its headers in a map.
    pub fn into_response(self) -> Response<Body> {
        match self {
            Reply::Mapped(r) => r,
            Reply::Forwarded(f) => {
                let mut resp = f.head.into_response(f.body.into_body());
                if let Some(id) = f.request_id {
                    resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
                }
                resp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_reply_mapped_has_the_upstreams_headers_and_the_proxys_id() {
        let head = crate::upstream::head_of(
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Request-Id: theirs\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        );
        let mut reply = Reply::Forwarded(Forwarded {
            head,
            body: ForwardedBody::Whole(Bytes::from_static(b"ok")),
            request_id: None,
        });
        assert_eq!(reply.status(), StatusCode::CREATED);
        assert_eq!(reply.content_length(), Some(2));
        reply.set_request_id(HeaderValue::from_static("ours"));
        let resp = reply.map();
        let h = resp.headers();
        assert_eq!(h["content-length"], "2");
        assert_eq!(h["x-request-id"], "ours");
        assert_eq!(h.get_all("x-request-id").iter().count(), 1);
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(matches!(reply, Reply::Mapped(_)));
    }
}
