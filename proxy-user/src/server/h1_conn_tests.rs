//! The smuggling and head-limit cases of the framing scanner that checked
//! heads for hyper's HTTP/1 server (removed with it), run through this
//! driver's own reading of a stream: [`parse`] for each head and the body
//! follower ([`h1::body::Body::next_data`]) for each body, as [`serve`]
//! and [`Feeding::feed`] use them. A verdict here is what the request
//! gets: `Ok` served, `Err((status, why))` refused and closed.

use super::*;
use crate::h1::{self, Blame};

type Verdict = Result<(), (u16, &'static str)>;

const CLEAR: Verdict = Ok(());

/// The verdicts on the heads of `stream` read `step` bytes at a time, and
/// whether reading stopped (a refusal, or a body that cannot be followed).
fn verdicts(stream: &[u8], step: usize, limits: &Limits) -> (Vec<Verdict>, bool) {
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Option<h1::body::Body> = None;
    let body_limits = BodyLimits::default();
    for piece in stream.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            if let Some(b) = &mut body {
                match b.next_data(&buf) {
                    Err(_) => return (out, true),
                    Ok(p) => {
                        buf.drain(..p.used);
                        if p.done {
                            body = None;
                        } else if buf.is_empty() {
                            break;
                        }
                        continue;
                    }
                }
            }
            match parse(&buf, limits) {
                Ok(None) => break,
                Err(e) => {
                    out.push(Err((e.status, e.why)));
                    return (out, true);
                }
                Ok(Some(head)) => {
                    out.push(CLEAR);
                    buf.drain(..head.head_len);
                    if head.framing.has_body() {
                        let f = h1::body::Body::new(head.framing, Blame::Downstream, body_limits);
                        body = Some(f);
                    }
                }
            }
        }
    }
    (out, false)
}

/// Every split of the stream gives the same verdicts as one read.
fn check(stream: &[u8], want: &[Verdict], stopped: bool) {
    check_limited(stream, &Limits::head(8192), want, stopped)
}

fn check_limited(stream: &[u8], limits: &Limits, want: &[Verdict], stopped: bool) {
    for step in [stream.len(), 1, 2, 3, 7, 64] {
        assert_eq!(
            verdicts(stream, step, limits),
            (want.to_vec(), stopped),
            "read size {step}"
        );
    }
}

#[test]
fn pipelined_requests_with_bodies_are_followed() {
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
        POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
        POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
        GET /last HTTP/1.1\r\nHost: a\r\ncontent-length: 1\r\ncontent-LENGTH: 1\r\n\r\n";
    check(
        stream,
        &[CLEAR, CLEAR, CLEAR, Err((400, "repeated Content-Length"))],
        true,
    );
}

#[test]
fn length_with_transfer_encoding_is_ambiguous_in_either_order() {
    for head in [
        &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    ] {
        check(
            head,
            &[Err((400, "Content-Length with Transfer-Encoding"))],
            true,
        );
    }
}

#[test]
fn body_bytes_that_look_like_a_head_are_not_judged() {
    let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    let mut stream =
        format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    stream.extend_from_slice(body);
    stream.extend_from_slice(b"GET / HTTP/1.1\n\n");
    check(&stream, &[CLEAR, CLEAR], false);
}

/// Asking for an upgrade does not switch the check off: whether the
/// connection leaves HTTP depends on the response (issue 13, item 8).
#[test]
fn heads_after_an_upgrade_request_are_still_judged() {
    for first in [
        &b"GET / HTTP/1.1\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"[..],
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    ] {
        let mut stream = first.to_vec();
        stream.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        check(
            &stream,
            &[CLEAR, Err((400, "Content-Length with Transfer-Encoding"))],
            true,
        );
        let head = parse(first, &Limits::head(8192)).unwrap().unwrap();
        assert!(head.upgrade);
    }
    let head = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &Limits::head(8192));
    assert!(!head.unwrap().unwrap().upgrade);
}

#[test]
fn broken_framing_stops_without_a_verdict_for_what_follows() {
    check(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n",
        &[CLEAR],
        true,
    );
    // An oversized head: 431 once the head's limit is read.
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let (v, stopped) = verdicts(&big, 100, &Limits::head(8192));
    assert_eq!(v, vec![Err((431, "request head too large"))]);
    assert!(stopped);
}

#[test]
fn lines_and_header_counts_over_their_limits_are_refused() {
    let limits = Limits {
        max_head: 8192,
        line: 64,
        headers: 3,
    };
    let judge = |head: String| verdicts(head.as_bytes(), head.len(), &limits);
    let (path, value) = ("a".repeat(50), "a".repeat(61));
    // At the limits (64-byte lines, 3 headers): clear.
    assert_eq!(
        judge(format!(
            "GET /{path} HTTP/1.1\r\nA: 1\r\nB: 2\r\nX: {value}\r\n\r\n"
        )),
        (vec![CLEAR], false)
    );
    let too_large = |status, why| (vec![Err((status, why))], true);
    assert_eq!(
        judge(format!("GET /{path}a HTTP/1.1\r\n\r\n")),
        too_large(414, "request line too long")
    );
    assert_eq!(
        judge(format!("GET / HTTP/1.1\nX: {value}a\n\n")),
        too_large(431, "header line too long")
    );
    assert_eq!(
        judge("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n".into()),
        too_large(431, "too many header lines")
    );
    // More headers than fit the stack are parsed, not given up on.
    let many = Limits {
        max_head: 1 << 20,
        line: 64,
        headers: 300,
    };
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for i in 0..299 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("Content-Length: 1\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(
        verdicts(head.as_bytes(), head.len(), &many),
        too_large(431, "too many header lines")
    );
    let head = head.replacen("X-0: v\r\nX-1: v\r\n", "", 1);
    assert_eq!(
        verdicts(head.as_bytes(), head.len(), &many),
        too_large(400, "repeated Content-Length")
    );
    // The same at every split.
    check_limited(
        head.as_bytes(),
        &many,
        &[Err((400, "repeated Content-Length"))],
        true,
    );
}

/// A head becomes the request `http::handle` takes: method, target (any
/// form), version, and headers in order, repeated ones kept, once its map
/// is built (it comes without one: `http::request_map`).
#[test]
fn a_head_becomes_the_request_handled() {
    let raw: &[u8] = b"POST http://a.example/p?q=1 HTTP/1.0\r\nHost: a.example\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabc";
    let head = parse(raw, &Limits::head(8192)).unwrap().unwrap();
    assert_eq!(head.framing, Framing::Length(3));
    assert!(!head.keep_alive);
    assert_eq!(&raw[head.head_len..], b"abc");
    assert!(head.req.headers().is_empty() && head.map_pending);
    // The head's copy goes on with where this parse found its pieces.
    let head_len = head.head_len;
    assert_eq!(&head.raw[..head_len], &raw[..head_len]);
    assert!(head.raw.len() > head_len);
    let mut body = Fed::empty();
    body.keep_head(head.raw, head.head_len, head.picked, head.map_pending);
    let mut req = head.req.map(|()| body);
    http::request_map::materialise(&mut req);
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri().to_string(), "http://a.example/p?q=1");
    assert_eq!(req.version(), Version::HTTP_10);
    let a: Vec<_> = req.headers().get_all("x-a").iter().collect();
    assert_eq!(a, ["1", "2"]);
    assert_eq!(req.headers()["host"], "a.example");
    assert_eq!(req.headers().len(), 4);
    // The head kept for the upstream head is the head alone.
    let kept = req.body_mut().take_head().unwrap();
    assert_eq!(&kept[..], &raw[..head_len]);
}

/// What a body still owes, as the guard's low-water mark is told before
/// each read of it ([`Feeding`] passes `data_left`): the rest of a length,
/// or of the chunk being read; unknown inside a chunk-size line.
#[test]
fn body_left_counts_what_must_still_arrive() {
    let new = |framing| h1::body::Body::new(framing, Blame::Downstream, BodyLimits::default());
    let mut b = new(Framing::Length(10));
    assert_eq!(b.data_left(), Some(10));
    b.advance(b"abc").unwrap();
    assert_eq!(b.data_left(), Some(7));
    assert!(b.advance(b"defghijGET").unwrap().done);
    assert_eq!(b.data_left(), None);
    let mut c = new(Framing::Chunked);
    c.advance(b"1").unwrap();
    assert_eq!(c.data_left(), None, "inside a chunk-size line");
    c.advance(b"0\r\n0123").unwrap();
    assert_eq!(c.data_left(), Some(12));
    assert!(c.advance(b"456789abcdef\r\n0\r\n\r\n").unwrap().done);
    assert_eq!(c.data_left(), None);
}
