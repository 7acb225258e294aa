//! The framing check against pipelined, split and smuggling streams.

use super::*;

fn verdicts(stream: &[u8], step: usize) -> (Vec<Verdict>, bool) {
    let mut s = Scanner::new(8192);
    let mut fed = Fed::default();
    for piece in stream.chunks(step) {
        s.feed(piece, &mut fed);
    }
    (fed.verdicts, fed.stopped)
}

/// Every split of the stream gives the same verdicts as one read.
fn check(stream: &[u8], want: &[Verdict], stopped: bool) {
    for step in [stream.len(), 1, 2, 3, 7, 64] {
        assert_eq!(
            verdicts(stream, step),
            (want.to_vec(), stopped),
            "read size {step}"
        );
    }
}

const CLEAR: Verdict = Verdict::Clear;

#[test]
fn pipelined_requests_with_bodies_are_followed() {
    let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
        POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
        POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
        GET /last HTTP/1.1\r\nHost: a\r\ncontent-length: 1\r\ncontent-LENGTH: 1\r\n\r\n";
    check(
        stream,
        &[
            CLEAR,
            CLEAR,
            CLEAR,
            Verdict::Ambiguous("repeated Content-Length"),
        ],
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
            &[Verdict::Ambiguous("Content-Length with Transfer-Encoding")],
            true,
        );
    }
}

#[test]
fn body_bytes_that_look_like_a_head_are_not_judged() {
    // The body of the first request holds a smuggled-looking request.
    let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    let mut stream =
        format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    stream.extend_from_slice(body);
    stream.extend_from_slice(b"GET / HTTP/1.1\n\n");
    check(&stream, &[CLEAR, CLEAR], false);
}

#[test]
fn prior_knowledge_http2_stops_the_scanner() {
    check(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[], true);
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
            &[
                CLEAR,
                Verdict::Ambiguous("Content-Length with Transfer-Encoding"),
            ],
            true,
        );
        let mut s = Scanner::new(8192);
        s.feed(first, &mut Fed::default());
        assert!(s.upgrade_asked());
    }
    let mut s = Scanner::new(8192);
    s.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut Fed::default());
    assert!(!s.upgrade_asked());
}

#[test]
fn broken_framing_stops_without_a_verdict_for_what_follows() {
    check(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        &[CLEAR],
        true,
    );
    // An oversized head: hyper answers 431.
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let (v, stopped) = verdicts(&big, 100);
    assert!(v.is_empty() && stopped);
}

#[test]
fn body_left_counts_what_must_still_arrive() {
    let mut s = Scanner::new(8192);
    let mut fed = Fed::default();
    assert_eq!(s.body_left(), None);
    s.feed(
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
        &mut fed,
    );
    assert_eq!(s.body_left(), Some(7));
    s.feed(b"defghij", &mut fed);
    assert_eq!(s.body_left(), None);
    s.feed(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1",
        &mut fed,
    );
    // Inside a chunk-size line: how much follows is not known yet.
    assert_eq!(s.body_left(), None);
    s.feed(b"0\r\n0123", &mut fed);
    assert_eq!(s.body_left(), Some(12));
    s.feed(b"456789abcdef\r\n0\r\n\r\n", &mut fed);
    assert_eq!(s.body_left(), None);
    assert_eq!(fed.verdicts, vec![CLEAR, CLEAR]);
}

#[test]
fn head_progress_is_reported() {
    let mut s = Scanner::new(8192);
    let mut fed = Fed::default();
    s.feed(b"\r\nGET / HT", &mut fed);
    assert!(fed.head_started && !fed.head_finished && s.in_head());
    let mut fed = Fed::default();
    s.feed(b"TP/1.1\r\n\r\n", &mut fed);
    assert!(!fed.head_started && fed.head_finished && !s.in_head());
    assert_eq!(fed.verdicts, vec![CLEAR]);
}

#[test]
fn lines_and_header_counts_over_their_limits_are_refused() {
    let limits = HeadLimits {
        line: 64,
        headers: 3,
    };
    let judge = |head: String| {
        let mut s = Scanner::new(8192).limited(limits);
        let mut fed = Fed::default();
        s.feed(head.as_bytes(), &mut fed);
        (fed.verdicts, fed.stopped)
    };
    let (path, value) = ("a".repeat(50), "a".repeat(61));
    // At the limits (64-byte lines, 3 headers): clear.
    assert_eq!(
        judge(format!(
            "GET /{path} HTTP/1.1\r\nA: 1\r\nB: 2\r\nX: {value}\r\n\r\n"
        )),
        (vec![CLEAR], false)
    );
    let too_large = |status, why| (vec![Verdict::TooLarge { status, why }], true);
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
    let mut s = Scanner::new(1 << 20).limited(HeadLimits {
        line: 64,
        headers: 300,
    });
    let mut fed = Fed::default();
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for i in 0..299 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("Content-Length: 1\r\nContent-Length: 1\r\n\r\n");
    s.feed(head.as_bytes(), &mut fed);
    assert_eq!(
        fed.verdicts,
        vec![Verdict::TooLarge {
            status: 431,
            why: "too many header lines"
        }]
    );
    let mut s = Scanner::new(1 << 20).limited(HeadLimits {
        line: 64,
        headers: 300,
    });
    let mut fed = Fed::default();
    let head = head.replacen("X-0: v\r\nX-1: v\r\n", "", 1);
    s.feed(head.as_bytes(), &mut fed);
    assert_eq!(
        fed.verdicts,
        vec![Verdict::Ambiguous("repeated Content-Length")]
    );
}
