//! Writing responses: framing as hyper's server frames it, and a
//! forwarded upstream head written from its bytes as its map would be.

use hyper::body::Frame;

use super::*;

async fn written(resp: impl Into<http::Reply>, asked: Asked) -> (String, bool) {
    let mut wire = Vec::new();
    let mut out = Vec::new();
    let keep = write(&mut wire, resp.into(), asked, &mut out)
        .await
        .unwrap();
    let mut text = String::from_utf8(wire).unwrap();
    // The date changes; the tests look at the rest.
    if let Some(at) = text.find("date: ") {
        let end = at + text[at..].find("\r\n").unwrap() + 2;
        text.replace_range(at..end, "");
    }
    (text, keep)
}

const GET11: Asked = Asked {
    head: false,
    minor: 1,
    close: false,
};

#[tokio::test]
async fn bodies_are_framed_as_hyper_frames_them() {
    let (text, keep) = written(Response::new(http::full("hello")), GET11).await;
    assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
    assert!(keep);

    // Of unknown length: chunked to HTTP/1.1, to the close to HTTP/1.0.
    let stream = || {
        let frames = vec![
            Ok::<_, http::BoxError>(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"cde"))),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        Response::new(http_body_util::BodyExt::boxed(body))
    };
    let (text, keep) = written(stream(), GET11).await;
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    );
    assert!(keep);
    let (text, keep) = written(stream(), Asked { minor: 0, ..GET11 }).await;
    assert_eq!(text, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabcde");
    assert!(!keep);

    // Nothing after HEAD, 204, 304; the close when asked.
    let (text, _) = written(
        Response::new(http::full("hello")),
        Asked {
            head: true,
            ..GET11
        },
    )
    .await;
    assert_eq!(text, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    let mut r = Response::new(http::full(""));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let (text, keep) = written(
        r,
        Asked {
            close: true,
            ..GET11
        },
    )
    .await;
    assert_eq!(text, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
    assert!(!keep);
    // An HTTP/1.0 client that keeps the connection is told so.
    let (text, keep) = written(Response::new(http::full("")), Asked { minor: 0, ..GET11 }).await;
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
    );
    assert!(keep);
    // A response that says close closes.
    let mut r = Response::new(http::full("x"));
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    let (_, keep) = written(r, GET11).await;
    assert!(!keep);
}

fn forwarded(wire: &[u8], body: http::ForwardedBody, id: Option<&'static str>) -> http::Reply {
    http::Reply::Forwarded(http::Forwarded {
        head: crate::upstream::head_of(wire),
        body,
        request_id: id.map(HeaderValue::from_static),
    })
}

fn whole(b: &'static str) -> http::ForwardedBody {
    http::ForwardedBody::Whole(Bytes::from_static(b.as_bytes()))
}

/// A body of unknown length, in two frames.
fn streamed(a: &'static str, b: &'static str) -> http::ForwardedBody {
    let frames = vec![
        Ok::<_, http::BoxError>(Frame::data(Bytes::from_static(a.as_bytes()))),
        Ok(Frame::data(Bytes::from_static(b.as_bytes()))),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    http::ForwardedBody::Streamed(http_body_util::BodyExt::boxed(body))
}

#[tokio::test]
async fn a_forwarded_head_is_written_from_the_upstreams_bytes() {
    let wire = b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\n\
        Content-Type: text/plain\r\nX-Request-Id: theirs\r\nContent-Length: 5\r\n\r\n";
    let (text, keep) = written(forwarded(wire, whole("hello"), Some("ours")), GET11).await;
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
         x-request-id: ours\r\n\r\nhello"
    );
    assert!(keep);
    // Its own date is kept, none added.
    let wire = b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 16:00:00 GMT\r\n\r\n";
    let mut sink = Vec::new();
    let mut out = Vec::new();
    write(&mut sink, forwarded(wire, whole(""), None), GET11, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(sink).unwrap();
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 16:00:00 GMT\r\ncontent-length: 0\r\n\r\n"
    );
}

/// The head and body a client reads: the status, the headers (names in
/// lower case, sorted; the date left out) and what follows the head.
fn read_back(wire: &str) -> (u16, Vec<(String, String)>, String) {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut slots);
    let httparse::Status::Complete(n) = resp.parse(wire.as_bytes()).unwrap() else {
        panic!("a whole head: {wire:?}");
    };
    let mut headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8(h.value.to_vec()).unwrap();
            (h.name.to_ascii_lowercase(), value)
        })
        .filter(|(name, _)| name != "date")
        .collect();
    headers.sort();
    (resp.code.unwrap(), headers, wire[n..].to_string())
}

/// The same response, written from its bytes and from its map, reads
/// back the same (its lines kept their order and their names' case; a
/// client sees neither).
#[tokio::test]
async fn a_forwarded_head_reads_as_its_mapped_head() {
    let head_ok = Asked {
        head: true,
        ..GET11
    };
    let http10 = Asked { minor: 0, ..GET11 };
    let closing = Asked {
        close: true,
        ..GET11
    };
    type Case = (&'static [u8], fn() -> http::ForwardedBody, Asked);
    let cases: [Case; 12] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nA: 1\r\n\r\n",
            || whole("hello"),
            GET11,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nA: 1\r\n\r\n",
            || whole(""),
            head_ok,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            || whole("hello"),
            http10,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            || whole("hello"),
            closing,
        ),
        // Chunked upstream: framed again from the body.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nB: 2\r\n\r\n",
            || whole("hello"),
            GET11,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            || streamed("ab", "cde"),
            GET11,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            || streamed("ab", "cde"),
            http10,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\nETag: \"x\"\r\n\r\n",
            || whole(""),
            GET11,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
            || whole(""),
            GET11,
        ),
        (
            b"HTTP/1.1 404 Not Found\r\nDate: Mon\r\nContent-Length: 2\r\nX-Request-Id: up\r\n\r\n",
            || whole("no"),
            GET11,
        ),
        (
            b"HTTP/1.1 599 Odd\nA:1\nSet-Cookie: a\nSet-Cookie: b\nContent-Length: 1\n\n",
            || whole("x"),
            GET11,
        ),
        (
            b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\n\r\n",
            || streamed("a", "b"),
            GET11,
        ),
    ];
    for (wire, body, asked) in cases {
        let raw = written(forwarded(wire, body(), Some("id")), asked).await;
        let mut mapped = forwarded(wire, body(), Some("id"));
        mapped.map();
        assert!(matches!(mapped, http::Reply::Mapped(_)));
        let from_map = written(mapped, asked).await;
        let what = String::from_utf8_lossy(wire);
        assert_eq!(read_back(&raw.0), read_back(&from_map.0), "{what}");
        assert_eq!(raw.1, from_map.1, "keep-alive after {what}");
    }
}
