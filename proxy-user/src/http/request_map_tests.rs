use super::*;
use crate::http::request_body::Fed;

/// Parses `head` as the connection does and notes its values.
fn picked(head: &[u8]) -> Picked {
    let mut slots = request::slots::<SLOTS>();
    let req = request::parse(head, &Limits::head(head.len()), &mut slots)
        .unwrap()
        .unwrap();
    let mut p = Picked::default();
    for h in req.headers {
        p.see(head, h.name, h.value);
    }
    p
}

#[test]
fn the_values_read_are_the_first_of_each_name_in_any_case() {
    let head = Bytes::from_static(
        b"GET / HTTP/1.1\r\nhOsT: a.example\r\nX-Other: o\r\nUser-Agent: ua\r\n\
          x-request-id: id-1\r\nContent-Length: 0\r\nReferer: r\r\n\
          ACCEPT-ENCODING: gzip\r\nHost: second.example\r\n\r\n",
    );
    let p = picked(&head);
    let text = |span| Picked::value(&head, span).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(text(p.host).as_deref(), Some("a.example"));
    assert_eq!(text(p.user_agent).as_deref(), Some("ua"));
    assert_eq!(text(p.request_id).as_deref(), Some("id-1"));
    assert_eq!(text(p.content_length).as_deref(), Some("0"));
    assert_eq!(text(p.referer).as_deref(), Some("r"));
    assert_eq!(text(p.accept_encoding).as_deref(), Some("gzip"));
    // The same memory as the head: no allocation of their own.
    let host = Picked::value(&head, p.host).unwrap();
    assert_eq!(host.as_bytes().as_ptr(), head[22..].as_ptr());
    let none = picked(b"GET / HTTP/1.1\r\nX-Other: o\r\n\r\n");
    assert_eq!(none, Picked::default());
}

#[test]
fn the_map_built_is_the_heads_headers_in_order() {
    let head = Bytes::from_static(
        b"\r\nPOST /a HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nContent-Length: 3\r\n\
          x-dup: 2\r\nConnection: keep-alive\r\n\r\n",
    );
    let mut map = HeaderMap::new();
    fill(&mut map, &head);
    assert_eq!(map.len(), 5);
    assert_eq!(map["host"], "h");
    assert_eq!(map["content-length"], "3");
    assert_eq!(map["connection"], "keep-alive");
    let dup: Vec<_> = map.get_all("x-dup").iter().collect();
    assert_eq!(dup, ["1", "2"]);
}

#[test]
fn a_head_with_more_headers_than_the_stack_slots_is_whole() {
    let mut text = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..300 {
        text.push_str(&format!("X-{i}: v{i}\r\n"));
    }
    text.push_str("\r\n");
    let mut map = HeaderMap::new();
    fill(&mut map, &Bytes::from(text));
    assert_eq!(map.len(), 301);
    assert_eq!(map["x-299"], "v299");
}

#[test]
fn what_the_parser_takes_a_map_holds() {
    // A head the connection took is never refused as "not representable"
    // any more (its map is built later): every name and value byte the
    // parser accepts must be one `HeaderName` / `HeaderValue` accepts.
    for b in 0..=255u8 {
        let mut value = b"GET / HTTP/1.1\r\nX-A: a".to_vec();
        value.extend([b, b'b']);
        value.extend_from_slice(b"\r\n\r\n");
        let mut name = b"GET / HTTP/1.1\r\nX-".to_vec();
        name.extend([b, b'b']);
        name.extend_from_slice(b": v\r\n\r\n");
        for (head, is_name) in [(value, false), (name, true)] {
            let mut slots = request::slots::<4>();
            let Ok(Some(req)) = request::parse(&head, &Limits::head(head.len()), &mut slots) else {
                continue;
            };
            let h = &req.headers[0];
            if is_name {
                assert!(
                    HeaderName::from_bytes(h.name.as_bytes()).is_ok(),
                    "name byte {b:#x}"
                );
            } else {
                assert!(
                    HeaderValue::from_bytes(h.value).is_ok(),
                    "value byte {b:#x}"
                );
            }
        }
    }
}

#[test]
fn a_pending_map_is_built_once_and_a_built_one_left_alone() {
    let head = Bytes::from_static(b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
    let mut body = Fed::empty();
    body.keep_head(head.clone(), head.len(), picked(&head), true);
    let mut req = Request::new(body);
    assert!(req.headers().is_empty() && req.body().map_pending());
    materialise(&mut req);
    assert_eq!(req.headers().len(), 2);
    assert_eq!(req.headers()["accept"], "*/*");
    assert!(!req.body().map_pending());
    // Built already: not again (no header twice).
    materialise(&mut req);
    assert_eq!(req.headers().len(), 2);
    // The head is still there for the upstream head.
    assert_eq!(req.body_mut().take_head(), Some(head));
    // A request that came with its map (HTTP/2, a refused head) keeps it.
    let mut req = Request::new(Fed::empty());
    req.headers_mut()
        .insert("x-a", HeaderValue::from_static("1"));
    materialise(&mut req);
    assert_eq!(req.headers().len(), 1);
}
