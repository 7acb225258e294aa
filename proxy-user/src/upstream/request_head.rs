//! The request head as the upstream gets it, written into one buffer: the
//! request line in origin form, the headers the proxy's edits left
//! (`http::headers`, header rules), and the body's framing, with hyper's
//! client rules (`proto/h1/role.rs`, `Client::set_length`) so the bytes are
//! those hyper wrote before this client replaced it (the test below
//! compares them with hyper's own encoder).
//!
//! Written once per request, before the first attempt: a retry on another
//! server sends the same bytes.

use hyper::{
    HeaderMap, Method,
    header::{self, HeaderValue},
};

/// What follows the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLen {
    /// Nothing (hyper: a body already at its end): no framing header is
    /// added, a `Transfer-Encoding` is removed.
    Empty,
    /// This many bytes: the request's own `Content-Length` if valid, else one added.
    Known(u64),
}

/// Appends `METHOD target HTTP/1.1`, `headers` and the framing to `out`;
/// `headers` gets the framing header hyper would have set.
pub fn write(
    method: &Method,
    target: &str,
    headers: &mut HeaderMap,
    body: BodyLen,
    out: &mut Vec<u8>,
) {
    match body {
        BodyLen::Empty => {
            if headers.contains_key(header::TRANSFER_ENCODING) {
                headers.remove(header::TRANSFER_ENCODING);
            }
        }
        BodyLen::Known(len) => {
            // The body was read whole: its length is the framing. (A
            // `Transfer-Encoding` is hop-by-hop and already gone.)
            if headers.contains_key(header::TRANSFER_ENCODING) {
                headers.remove(header::TRANSFER_ENCODING);
            }
            if content_length(headers) != Some(len) {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
    }
    out.reserve(32 + target.len() + headers.len() * 32);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Content-Length` all of the request's values agree on, if any.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.to_str().ok()?.split(',') {
            let n: u64 = part.trim().parse().ok()?;
            if found.is_some_and(|f| f != n) {
                return None;
            }
            found = Some(n);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::{Request, header::HeaderName};
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::http::headers;

    /// What hyper's client writes for `req` (head and body).
    async fn hyper_writes(req: Request<Full<Bytes>>) -> Vec<u8> {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(near))
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move {
            let _ = sender.send_request(req).await;
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let read =
                tokio::time::timeout(std::time::Duration::from_millis(100), far.read(&mut buf))
                    .await;
            match read {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => return got,
            }
        }
    }

    /// A client's request, with the proxy's edits as `http::proxy` makes them.
    fn edited(raw: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in raw {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let host = h.get(header::HOST).cloned();
        headers::strip_hop_by_hop(&mut h, false);
        headers::add_forwarded(&mut h, "10.1.2.3".parse().unwrap(), false, host.as_ref());
        if let Some(host) = &host {
            h.insert(header::HOST, host.clone());
        }
        h.insert(
            headers::X_REQUEST_ID.clone(),
            HeaderValue::from_static("0123abcd"),
        );
        h
    }

    #[tokio::test]
    async fn the_head_is_the_one_hypers_client_wrote() {
        let browser = [
            ("host", "example.com"),
            ("user-agent", "Mozilla/5.0"),
            ("accept", "text/html,*/*;q=0.8"),
            ("accept-encoding", "gzip, br"),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("x-forwarded-for", "1.1.1.1"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("keep-alive", "timeout=5"),
        ];
        type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'static [u8]);
        let cases: [Case<'_>; 6] = [
            (Method::GET, "/", &browser, b""),
            (Method::GET, "/a?b=c", &[("host", "h")], b""),
            (
                Method::POST,
                "/form",
                &[("host", "h"), ("content-length", "5")],
                b"hello",
            ),
            // A chunked upload, read whole: sent with its length.
            (
                Method::POST,
                "/up",
                &[("host", "h"), ("transfer-encoding", "chunked")],
                b"hello",
            ),
            // An empty body: no length added, the client's kept.
            (
                Method::POST,
                "/",
                &[("content-length", "0"), ("x-a", "1")],
                b"",
            ),
            (Method::PUT, "/", &[("x-a", "1"), ("x-b", "2")], b"abc"),
        ];
        for (method, target, raw, body) in cases {
            let mut theirs = Request::new(Full::new(Bytes::from_static(body)));
            *theirs.method_mut() = method.clone();
            *theirs.uri_mut() = target.parse().unwrap();
            *theirs.headers_mut() = edited(raw);
            let want = hyper_writes(theirs).await;

            let mut ours = Vec::new();
            let len = if body.is_empty() {
                BodyLen::Empty
            } else {
                BodyLen::Known(body.len() as u64)
            };
            write(&method, target, &mut edited(raw), len, &mut ours);
            ours.extend_from_slice(body);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&want),
                "{method} {target} {raw:?}"
            );
        }
    }
}
