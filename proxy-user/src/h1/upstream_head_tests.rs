use hyper::{HeaderMap, header::HeaderValue};

use super::*;
use crate::h1::request::{Limits, parse, slots};

const CLIENT: &str = "198.51.100.2";

fn rewrite(head: &str, websocket: bool, rules: &[Edit<'_>]) -> String {
    let mut s = slots::<32>();
    let req = parse(head.as_bytes(), &Limits::head(8192), &mut s)
        .unwrap()
        .unwrap();
    let fwd = Forwarding {
        client: CLIENT.parse().unwrap(),
        https: false,
        request_id: b"rid1",
        websocket,
        rules,
    };
    let mut out = Vec::new();
    write(&req, &fwd, &mut out);
    String::from_utf8(out).unwrap()
}

/// The head's headers as (lower-case name, value), sorted.
fn fields(head: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = head
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    v.sort();
    v
}

/// What today's path (`http::headers` over a `HeaderMap`, as
/// `http/proxy.rs` calls it) sends for the same head.
fn todays(head: &str, websocket: bool) -> Vec<(String, String)> {
    let mut s = slots::<32>();
    let req = parse(head.as_bytes(), &Limits::head(8192), &mut s)
        .unwrap()
        .unwrap();
    let mut map = HeaderMap::new();
    for h in req.headers {
        map.append(
            hyper::header::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    let host = map.get("host").cloned();
    crate::http::headers::strip_hop_by_hop(&mut map, websocket);
    crate::http::headers::add_forwarded(&mut map, CLIENT.parse().unwrap(), false, host.as_ref());
    if let Some(h) = host {
        map.insert("host", h);
    }
    map.insert("x-request-id", HeaderValue::from_static("rid1"));
    let mut v: Vec<_> = map
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_typical_get_is_rewritten_in_one_buffer() {
    let out = rewrite(
        "GET /a?b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nConnection: keep-alive\r\n\r\n",
        false,
        &[],
    );
    assert_eq!(
        out,
        "GET /a?b HTTP/1.1\r\nUser-Agent: t\r\nHost: example.com\r\n\
         X-Forwarded-For: 198.51.100.2\r\nX-Real-IP: 198.51.100.2\r\n\
         X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\
         X-Request-Id: rid1\r\n\r\n"
    );
}

/// The same headers as today's `HeaderMap` path, for the cases its unit
/// tests cover (hop-by-hop, Connection-named, forwarding spellings).
#[test]
fn the_same_headers_as_todays_path() {
    for (head, websocket) in [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\nKeep-Alive: timeout=5\r\n\
             x-secret: 1\r\nx-kept: 1\r\nTE: trailers\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\nConnection: TE, X-Other, Upgrade\r\n\
             close: 1\r\nte: 1\r\nx-other: 1\r\nupgrade: 1\r\nproxy-connection: 1\r\nx-kept: 1\r\n\r\n",
            false,
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: k\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 203.0.113.1\r\nX-Forwarded-Proto: https\r\n\
             x-forwarded-host: evil\r\nx-forwarded-port: 443\r\nx-real-ip: 1\r\nforwarded: for=1\r\n\
             x_forwarded_for: 2\r\nX_Forwarded_Host: evil\r\nx-forwarded_proto: https\r\nx_real_ip: 2\r\n\
             x_request_id_not_owned: kept\r\nX-Request-Id: client\r\n\r\n",
            false,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false),
    ] {
        assert_eq!(
            fields(&rewrite(head, websocket, &[])),
            todays(head, websocket),
            "{head}"
        );
    }
}

#[test]
fn absolute_targets_become_origin_form_and_give_the_host() {
    let out = rewrite("GET http://example.com:8/p?q HTTP/1.1\r\n\r\n", false, &[]);
    assert!(out.starts_with("GET /p?q HTTP/1.1\r\n"), "{out}");
    assert!(out.contains("\r\nHost: example.com:8\r\n"), "{out}");
    // No host at all: no Host, no X-Forwarded-Host.
    let out = rewrite("GET / HTTP/1.0\r\n\r\n", false, &[]);
    assert!(!out.contains("Host"), "{out}");
}

#[test]
fn bodies_keep_their_framing() {
    let out = rewrite(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        false,
        &[],
    );
    assert_eq!(out.matches("Transfer-Encoding").count(), 1, "{out}");
    assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
    let out = rewrite(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
        false,
        &[],
    );
    assert!(out.contains("Content-Length: 3\r\n"), "{out}");
}

/// nginx's `proxy_set_header` order: later rules see earlier ones, and
/// the proxy's own headers can be replaced or removed.
#[test]
fn header_rules_apply_in_order_after_the_proxys_own() {
    let head = "GET / HTTP/1.1\r\nHost: a\r\nX-A: client\r\nX-B: 1\r\n\r\n";
    let out = rewrite(
        head,
        false,
        &[
            Edit::Set("X-Forwarded-For", b"10.0.0.1"),
            Edit::Remove("x-b"),
            Edit::Add("X-A", b"added"),
            Edit::Default("X-A", b"not set: present"),
            Edit::Default("X-C", b"c"),
            Edit::Default("X-C", b"not set: present"),
            Edit::Set("X-Real-IP", b""),
            Edit::Add("X-D", b"gone"),
            Edit::Remove("X-D"),
        ],
    );
    let f = fields(&out);
    let get = |n: &str| {
        f.iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("x-forwarded-for"), ["10.0.0.1"]);
    assert_eq!(get("x-a"), ["added", "client"]);
    assert!(get("x-b").is_empty() && get("x-real-ip").is_empty() && get("x-d").is_empty());
    assert_eq!(get("x-c"), ["c"]);
    // A default after a removal applies.
    let out = rewrite(
        head,
        false,
        &[Edit::Remove("X-A"), Edit::Default("X-A", b"d")],
    );
    assert!(
        out.contains("\r\nX-A: d\r\n") && !out.contains("client"),
        "{out}"
    );
}

#[test]
fn addresses_are_written_as_std_writes_them() {
    for ip in [
        "0.0.0.0",
        "10.0.0.1",
        "192.168.100.255",
        "::1",
        "2001:db8::7",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut buf = [0u8; 39];
        assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
    }
    let mut buf = [0u8; 39];
    let widest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
    assert_eq!(ip_text(widest, &mut buf).len(), 39);
}

/// Neither the client's `Connection` nor a header rule can take the body's
/// framing away: the upstream would read the body as the next request.
#[test]
fn the_framing_headers_are_kept_whatever_names_them() {
    let out = rewrite(
        "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n",
        false,
        &[
            Edit::Remove("Content-Length"),
            Edit::Set("Transfer-Encoding", b"gzip"),
        ],
    );
    assert!(out.contains("\r\nContent-Length: 3\r\n"), "{out}");
    assert!(!out.contains("gzip"), "{out}");
    let out = rewrite(
        "POST / HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
        &[Edit::Remove("transfer-encoding")],
    );
    assert_eq!(
        out.matches("Transfer-Encoding: chunked").count(),
        1,
        "{out}"
    );
}
