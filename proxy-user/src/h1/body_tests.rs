use super::*;

/// Follows `stream` in reads of `step` bytes: the bytes used, whether the
/// body ended, or the error.
fn follow(framing: Framing, stream: &[u8], step: usize) -> Result<(usize, bool), H1Error> {
    let mut body = Body::new(framing, Blame::Downstream, BodyLimits::default());
    let mut used = 0;
    for piece in stream.chunks(step) {
        let s = body.advance(piece)?;
        used += s.used;
        if s.done {
            return Ok((used, true));
        }
    }
    Ok((used, false))
}

/// Every read size gives the same answer.
fn check(framing: Framing, stream: &[u8]) -> Result<(usize, bool), H1Error> {
    let whole = follow(framing, stream, stream.len().max(1));
    for step in 1..stream.len().min(64) {
        assert_eq!(follow(framing, stream, step), whole, "read size {step}");
    }
    whole
}

#[test]
fn a_length_is_counted_and_what_follows_is_left() {
    assert_eq!(check(Framing::Length(5), b"helloGET"), Ok((5, true)));
    assert_eq!(check(Framing::Length(5), b"hel"), Ok((3, false)));
    assert_eq!(check(Framing::Empty, b"GET"), Ok((0, true)));
    let mut b = Body::new(
        Framing::Length(10),
        Blame::Downstream,
        BodyLimits::default(),
    );
    b.advance(b"abc").unwrap();
    assert_eq!(b.data_left(), Some(7));
    assert_eq!(b.at_eof().unwrap_err().status, 400);
}

#[test]
fn chunked_bodies_pass_through_to_their_end() {
    let body = b"5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let mut stream = body.to_vec();
    stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(check(Framing::Chunked, &stream), Ok((body.len(), true)));
    assert_eq!(check(Framing::Chunked, b"0\r\n\r\n"), Ok((5, true)));
    assert_eq!(check(Framing::Chunked, b"5\r\nhel"), Ok((6, false)));
}

/// Framing hyper refuses is refused, blamed on the side it came from.
#[test]
fn broken_chunked_framing_is_refused() {
    for (stream, why) in [
        (&b"zz\r\n"[..], "chunk size missing"),
        (b"\r\n", "chunk size missing"),
        (b"5\nhello\r\n", "invalid chunk size line"),
        (b"5 x\r\n", "invalid chunk size line"),
        (b"5;a\nb\r\n", "line feed in chunk extension"),
        (b"5\r\r", "chunk size line not ended by CRLF"),
        (b"5\r\nhelloX", "chunk data not ended by CRLF"),
        (b"5\r\nhello\n", "chunk data not ended by CRLF"),
        (b"10000000000000000\r\n", "chunk size overflows"),
        (b"0\r\nX: 1\rY", "trailer not ended by CRLF"),
        (b"0\r\n\rX", "chunked body not ended by CRLF"),
    ] {
        let e = check(Framing::Chunked, stream).unwrap_err();
        assert_eq!(
            (e.status, e.why),
            (400, why),
            "{:?}",
            String::from_utf8_lossy(stream)
        );
    }
    let mut ext = b"1;".to_vec();
    ext.extend(std::iter::repeat_n(b'a', 16 * 1024));
    assert_eq!(
        follow(Framing::Chunked, &ext, 4096).unwrap_err().why,
        "chunk extensions too large"
    );
    let mut b = Body::new(
        Framing::Chunked,
        Blame::Upstream,
        BodyLimits {
            max_trailer: 4,
            max_trailers: 1,
        },
    );
    assert_eq!(
        b.advance(b"0\r\nX: 12\r\n").unwrap_err().why,
        "trailers too large"
    );
    assert_eq!(b.clone().at_eof().unwrap_err().status, 502);
    let mut b = Body::new(
        Framing::Chunked,
        Blame::Upstream,
        BodyLimits {
            max_trailer: 64,
            max_trailers: 1,
        },
    );
    assert_eq!(
        b.advance(b"0\r\nX: 1\r\nY: 2\r\n").unwrap_err().why,
        "too many trailers"
    );
}

#[test]
fn a_body_to_the_close_ends_at_eof() {
    let mut b = Body::new(Framing::Close, Blame::Upstream, BodyLimits::default());
    assert_eq!(
        b.advance(b"anything").unwrap(),
        Step {
            used: 8,
            done: false
        }
    );
    assert!(b.at_eof().is_ok() && b.is_done());
}

/// `next_data` hands out the data of a chunked body and nothing of its
/// framing, whatever the read size.
#[test]
fn next_data_yields_the_data_alone_at_any_split() {
    let wire = b"3\r\nabc\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\nNEXT";
    for size in 1..wire.len() {
        let mut body = Body::new(Framing::Chunked, Blame::Downstream, BodyLimits::default());
        let (mut data, mut at, mut done) = (Vec::new(), 0, false);
        let mut pending: Vec<u8> = Vec::new();
        while !done && at < wire.len() {
            let end = (at + size).min(wire.len());
            pending.extend_from_slice(&wire[at..end]);
            at = end;
            loop {
                let piece = body.next_data(&pending).unwrap();
                data.extend_from_slice(&pending[piece.data.clone()]);
                pending.drain(..piece.used);
                done = piece.done;
                if done || piece.used == 0 || pending.is_empty() {
                    break;
                }
            }
        }
        assert!(done, "size {size}");
        assert_eq!(data, b"abchello", "size {size}");
        pending.extend_from_slice(&wire[at..]);
        assert_eq!(pending, b"NEXT", "size {size}");
    }
    let mut body = Body::new(Framing::Length(4), Blame::Downstream, BodyLimits::default());
    let piece = body.next_data(b"abcdef").unwrap();
    assert_eq!((piece.used, piece.data, piece.done), (4, 0..4, true));
}
