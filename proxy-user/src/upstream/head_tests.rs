//! The head cut out of the buffer: its lines, its facts, its map.

use bytes::BytesMut;
use hyper::{
    Method,
    header::{HeaderName, HeaderValue},
};

use super::{Head, Taken, head_of, take};

fn lines(head: &Head, without_request_id: bool) -> String {
    let (a, b) = head.lines(without_request_id);
    String::from_utf8([a, b].concat()).unwrap()
}

#[test]
fn a_head_is_cut_out_of_the_buffer_and_its_lines_are_the_buffers_bytes() {
    // More headers than the lines kept on the stack, and a 1xx first.
    let mut wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20 {
        wire.extend_from_slice(format!("X-H{i}: v{i}\r\n").as_bytes());
    }
    wire.extend_from_slice(b"Content-Length: 5\r\n\r\nhello");
    let mut buf = BytesMut::from(&wire[..]);
    let (start, end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    assert!(matches!(
        take(&mut buf, &Method::GET),
        Ok(Taken::Informational)
    ));
    let Ok(Taken::Final(head, (_, framing, keep_alive))) = take(&mut buf, &Method::GET) else {
        panic!("a final head");
    };
    assert_eq!(head.status, 200);
    assert_eq!((framing, keep_alive), (crate::h1::Framing::Length(5), true));
    assert_eq!(
        (head.length(), head.dated(), head.plain()),
        (Some(5), false, true)
    );
    let headers = head.headers();
    assert_eq!(headers.len(), 21);
    assert_eq!(headers["x-h19"], "v19");
    assert_eq!(headers["content-length"], "5");
    // The lines and each value are the buffer's own bytes, not a copy.
    let (text, _) = head.lines(false);
    assert!((start..end).contains(&(text.as_ptr() as usize)));
    for value in headers.values() {
        let at = value.as_bytes().as_ptr() as usize;
        assert!((start..end).contains(&at), "{value:?} was copied");
    }
    // What follows the head stays in the buffer.
    assert_eq!(&buf[..], b"hello");
    // A part of a head is left where it is.
    let partial = &b"HTTP/1.1 200 OK\r\nContent-"[..];
    let mut part = BytesMut::from(partial);
    assert!(matches!(take(&mut part, &Method::GET), Ok(Taken::Partial)));
    assert_eq!(&part[..], partial);
}

#[test]
fn hop_by_hop_lines_are_left_out_and_the_rest_moved_together() {
    let wire = b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, X-Secret\r\n\
        X-Secret: s\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nDate: Mon\r\n\r\nhello";
    let mut buf = BytesMut::from(&wire[..]);
    let Ok(Taken::Final(head, _)) = take(&mut buf, &Method::GET) else {
        panic!("a final head");
    };
    assert_eq!(
        lines(&head, false),
        "Server: up\r\nContent-Length: 5\r\nDate: Mon\r\n"
    );
    assert!(head.plain() && head.dated());
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn hop_by_hop_headers_are_left_out_but_from_a_tunnels_head() {
    let names = |wire: &[u8]| {
        let mut names: Vec<String> = head_of(wire)
            .headers()
            .keys()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        names
    };
    let ok = b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nKeep-Alive: timeout=5\r\n\
        X-Secret: s\r\nClose: c\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTE: trailers\r\n\
        Trailer: X-T\r\nX-Kept: k\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(names(ok), ["content-length", "x-kept"]);
    // The same headers as `http::headers::strip_hop_by_hop` leaves.
    let mut all = hyper::HeaderMap::new();
    let mut room = crate::h1::request::slots::<16>();
    let head = crate::h1::response::parse(ok, "GET", 1 << 16, &mut room)
        .unwrap()
        .unwrap();
    for h in head.headers {
        all.append(
            HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    crate::http::headers::strip_hop_by_hop(&mut all, false);
    let mut left: Vec<String> = all.keys().map(|n| n.to_string()).collect();
    left.sort();
    assert_eq!(names(ok), left);
    // A 101 keeps them (`http::proxy` decides), and is not forwarded as
    // it came.
    let upgrade =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let head = head_of(upgrade);
    let headers = head.headers();
    assert!(headers.contains_key("upgrade") && headers.contains_key("connection"));
    assert!(!head.plain());
}

#[test]
fn lines_not_as_the_writer_writes_them_are_written_so() {
    // Bare LF endings, no space after the colon, spaces after a value.
    let head = head_of(b"HTTP/1.1 200 OK\nA:1\nB: 2  \r\nC: \r\nD: 4\n\n");
    assert_eq!(lines(&head, false), "A: 1\r\nB: 2\r\nC: \r\nD: 4\r\n");
    assert_eq!(head.headers()["b"], "2");
    // Already so: as they came.
    let head = head_of(b"HTTP/1.1 200 OK\r\nA:1\r\nB:\t2\r\n\r\n");
    assert_eq!(lines(&head, false), "A:1\r\nB:\t2\r\n");
    assert_eq!(head.headers()["b"], "2");
}

#[test]
fn the_request_id_line_is_found_and_odd_heads_are_not_plain() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\nA: 1\r\nX-Request-Id: up\r\nB: 2\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\nA: 1\nX-Request-Id: up\nB: 2\n\n",
    ] {
        let head = head_of(wire);
        assert_eq!(lines(&head, true), "A: 1\r\nB: 2\r\n");
        assert!(lines(&head, false).contains("X-Request-Id: up\r\n"));
        assert!(head.plain());
    }
    // Two lengths (equal, so accepted), two request ids: made a map of.
    let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    assert!(!head_of(two).plain());
    let two = b"HTTP/1.1 200 OK\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n";
    assert!(!head_of(two).plain());
    // No length on a 204; a 304's is kept.
    let head = head_of(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n");
    assert_eq!((lines(&head, false).as_str(), head.length()), ("", None));
    let head = head_of(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(head.length(), Some(3));
}

/// A head is no longer checked against `http`'s header types when it is
/// taken: httparse's characters must be theirs, or a forwarded head could
/// carry what a mapped one could not.
#[test]
fn httparse_takes_the_names_and_values_http_takes() {
    for b in 0..=255u8 {
        let value = [b'a', b, b'b'];
        let mut wire = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n\r\n");
        let parsed = take(&mut BytesMut::from(&wire[..]), &Method::GET);
        let taken = matches!(parsed, Ok(Taken::Final(..)));
        assert_eq!(
            taken,
            HeaderValue::from_bytes(&value).is_ok(),
            "value byte {b:#x}"
        );
        if b == b':' {
            continue;
        }
        let name = [b'X', b, b'Y'];
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        wire.extend_from_slice(&name);
        wire.extend_from_slice(b": v\r\n\r\n");
        let parsed = take(&mut BytesMut::from(&wire[..]), &Method::GET);
        let taken = matches!(parsed, Ok(Taken::Final(..)));
        assert_eq!(
            taken,
            HeaderName::from_bytes(&name).is_ok(),
            "name byte {b:#x}"
        );
    }
}
