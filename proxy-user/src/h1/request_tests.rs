use super::*;
use crate::h1::error::Blame;

type Outcome = Result<Option<(Framing, usize, bool)>, H1Error>;

fn parse_with(buf: &[u8], limits: &Limits) -> Outcome {
    let mut slots = slots::<64>();
    parse(buf, limits, &mut slots).map(|r| r.map(|r| (r.framing, r.head_len, r.keep_alive)))
}

/// Parses `head` whole, then at every split: a prefix is incomplete (or
/// already refused the same way), never a different answer.
fn judge(head: &[u8], limits: &Limits) -> Outcome {
    let whole = parse_with(head, limits);
    for cut in 0..head.len() {
        match (parse_with(&head[..cut], limits), &whole) {
            (Ok(None), _) => {}
            (Err(e), Err(w)) if e == *w => {}
            (Ok(Some(r)), Ok(Some(w))) if r.1 == w.1 => {}
            (other, _) => panic!("prefix of {cut} bytes: {other:?}, whole: {whole:?}"),
        }
    }
    whole
}

const WIDE: Limits = Limits::head(8192);

fn refused(head: &str) -> H1Error {
    judge(head.as_bytes(), &WIDE).expect_err(head)
}

#[test]
fn a_typical_get_is_parsed_in_place() {
    let head = b"\r\nGET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nNEXT";
    let mut s = slots::<16>();
    let r = parse(head, &WIDE, &mut s).unwrap().unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, Target::Origin("/a/b?c=d"));
    assert_eq!((r.minor, r.headers.len()), (1, 2));
    assert_eq!(&head[r.head_len..], b"NEXT");
    assert_eq!(r.framing, Framing::Empty);
    assert!(r.keep_alive && !r.upgrade);
    assert_eq!(r.host(), Some(&b"example.com"[..]));
    // The slices are the buffer's own bytes.
    assert!(std::ptr::eq(r.method.as_ptr(), head[2..].as_ptr()));
    assert_eq!(judge(head, &WIDE).unwrap().unwrap().1, head.len() - 4);
}

#[test]
fn the_smuggling_cases_are_refused_with_400() {
    for (head, why) in [
        (
            "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Content-Length with Transfer-Encoding",
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            "Content-Length with Transfer-Encoding",
        ),
        (
            "POST / HTTP/1.1\r\ncontent-length: 1\r\nContent-LENGTH: 1\r\n\r\n",
            "repeated Content-Length",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "repeated Content-Length",
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "Transfer-Encoding does not end in chunked",
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0",
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            "invalid Content-Length",
        ),
        // obs-fold: a line starting with white space continues no header here.
        (
            "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            "invalid header name",
        ),
        // A space before the colon (the classic `Transfer-Encoding : chunked`).
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "invalid header name",
        ),
        ("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", "invalid header value"),
        ("GET / HTTP/1.1\r\nX\x01: a\r\n\r\n", "invalid header name"),
        ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "invalid header value"),
        ("GET / HTTP/2.0\r\n\r\n", "invalid HTTP version"),
        ("GET /a<b HTTP/1.1\r\n\r\n", "invalid request target"),
        ("GET a HTTP/1.1\r\n\r\n", "invalid request target"),
    ] {
        let e = refused(head);
        assert_eq!(
            (e.status, e.why, e.blame),
            (400, why, Blame::Downstream),
            "{head:?}"
        );
    }
}

#[test]
fn bare_line_feeds_end_lines_as_httparse_reads_them() {
    let head = b"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc";
    let (framing, len, _) = judge(head, &WIDE).unwrap().unwrap();
    assert_eq!((framing, len), (Framing::Length(3), head.len() - 3));
}

#[test]
fn oversized_heads_and_lines_are_refused() {
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let e = parse_with(&big, &WIDE).unwrap_err();
    assert_eq!((e.status, e.why), (431, "request head too large"));
    // Complete, but over the limit.
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_with(&big, &WIDE).unwrap_err().status, 431);
    // A syntax error past the limit is the head's size, not a 400: hyper
    // never reads past it, and a shorter read would say 431 (fuzz finding).
    let mut past = b"0 ".to_vec();
    past.extend(std::iter::repeat_n(0xffu8, 120));
    past.extend_from_slice(b" o l!ose");
    assert_eq!(judge(&past, &Limits::head(64)).unwrap_err().status, 431);

    let limits = Limits {
        max_head: 8192,
        line: 64,
        headers: 3,
    };
    let (path, value) = ("a".repeat(50), "a".repeat(61));
    let ok = format!("GET /{path} HTTP/1.1\r\nA: 1\r\nB: 2\r\nX: {value}\r\n\r\n");
    assert!(judge(ok.as_bytes(), &limits).unwrap().is_some());
    for (head, status, why) in [
        (
            format!("GET /{path}a HTTP/1.1\r\n\r\n"),
            414,
            "request line too long",
        ),
        (
            format!("GET / HTTP/1.1\nX: {value}a\n\n"),
            431,
            "header line too long",
        ),
        (
            "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n".into(),
            431,
            "too many header lines",
        ),
    ] {
        let e = judge(head.as_bytes(), &limits).unwrap_err();
        assert_eq!((e.status, e.why), (status, why), "{head}");
    }
    // More headers than slots: 431, as hyper's own limit.
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..65 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(parse_with(many.as_bytes(), &WIDE).unwrap_err().status, 431);
    // A request line over the limit in a head cut off at the size: 414.
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(200));
    let e = parse_with(
        &long.as_bytes()[..100],
        &Limits {
            max_head: 100,
            ..limits
        },
    )
    .unwrap_err();
    assert_eq!(e.status, 414);
}

#[test]
fn keep_alive_upgrade_and_expect() {
    let get = |head: &str| {
        let mut s = slots::<16>();
        let r = parse(head.as_bytes(), &WIDE, &mut s).unwrap().unwrap();
        (r.keep_alive, r.upgrade, r.expect_continue)
    };
    assert_eq!(get("GET / HTTP/1.0\r\n\r\n"), (false, false, false));
    assert_eq!(
        get("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        (true, false, false)
    );
    assert_eq!(
        get("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
        (false, false, false)
    );
    assert_eq!(
        get("GET / HTTP/1.1\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n"),
        (true, true, true)
    );
    assert!(!get("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").1);
    assert!(get("CONNECT a:443 HTTP/1.1\r\n\r\n").1);
}

#[test]
fn pipelined_heads_are_parsed_one_after_another() {
    let stream = b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\n\r\n";
    let mut s = slots::<8>();
    let first = parse(stream, &WIDE, &mut s).unwrap().unwrap();
    assert_eq!(first.framing, Framing::Length(2));
    let next = first.head_len + 2;
    let mut s = slots::<8>();
    let second = parse(&stream[next..], &WIDE, &mut s).unwrap().unwrap();
    assert_eq!(second.target, Target::Origin("/b"));
}
