//! Instructions to take a typical proxied GET head from the client's bytes
//! to the upstream's: the HTTP/1 codec (`h1::request::parse` then
//! `h1::upstream_head::write`) against today's path (hyper's server parse
//! into a `HeaderMap`, the edits of `http::headers` as `http/proxy.rs`
//! makes them, hyper's client encoding of the upstream head), each run
//! `N` times. Deterministic under callgrind (docs/http1.md):
//!
//! ```text
//! cargo build --release --example h1_cost -p proxy-user
//! valgrind --tool=callgrind --callgrind-out-file=cg.codec target/release/examples/h1_cost codec 10000
//! valgrind --tool=callgrind --callgrind-out-file=cg.hyper target/release/examples/h1_cost hyper 10000
//! callgrind_annotate --inclusive=yes cg.codec | grep -E 'h1::request::parse|upstream_head::write'
//! callgrind_annotate --inclusive=yes cg.hyper | grep -E 'Server as .*Http1Transaction>::parse|edit_today|Client as .*Http1Transaction>::encode'
//! ```
//!
//! Each function's inclusive count divided by `N` is its cost per request.

use std::{cell::RefCell, hint::black_box, rc::Rc};

use http_body_util::Empty;
use hyper::{
    HeaderMap, Request, Response,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use proxy_user::{
    h1::{
        request::{self, Limits},
        upstream_head::{self, Forwarding},
    },
    http::headers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A browser-like GET through a reverse proxy.
const HEAD: &[u8] = b"GET /api/v1/items?page=2 HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0\r\n\
Accept: */*\r\n\
Accept-Encoding: gzip, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=abc123; theme=dark\r\n\
Connection: keep-alive\r\n\r\n";

const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 2));

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    match mode.as_str() {
        "codec" => codec(n),
        "hyper" => today(n),
        _ => eprintln!("usage: h1_cost codec|hyper N"),
    }
}

fn codec(n: usize) {
    let limits = Limits::head(8192);
    let fwd = Forwarding {
        client: CLIENT,
        https: false,
        request_id: b"0123456789abcdef0123456789abcdef",
        websocket: false,
        rules: &[],
    };
    let mut out = Vec::with_capacity(1024);
    for _ in 0..n {
        let mut slots = request::slots::<100>();
        let req = request::parse(black_box(HEAD), &limits, &mut slots)
            .expect("a valid head")
            .expect("a whole head");
        out.clear();
        upstream_head::write(&req, &fwd, &mut out);
        black_box(&out);
    }
}

/// What `http/proxy.rs` does to the head between hyper's server and client.
#[inline(never)]
fn edit_today(head: &mut HeaderMap) {
    let host = head.get(header::HOST).cloned();
    headers::strip_hop_by_hop(head, false);
    headers::add_forwarded(head, CLIENT, false, host.as_ref());
    if let Some(h) = &host {
        head.insert(header::HOST, h.clone());
    }
    head.insert(
        headers::X_REQUEST_ID.clone(),
        HeaderValue::from_static("0123456789abcdef0123456789abcdef"),
    );
}

/// Client bytes -> hyper server -> edits -> hyper client -> a raw upstream.
fn today(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (up_client, up_server) = tokio::io::duplex(64 * 1024);
        tokio::task::spawn_local(upstream(up_server));
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(up_client))
            .await
            .expect("the upstream handshake");
        tokio::task::spawn_local(conn);
        let sender = Rc::new(RefCell::new(Some(sender)));
        let service = service_fn(move |req: Request<Incoming>| {
            let sender = sender.clone();
            async move {
                let (mut parts, _body) = req.into_parts();
                edit_today(&mut parts.headers);
                let mut up = Request::new(Empty::<Bytes>::new());
                *up.method_mut() = parts.method;
                *up.uri_mut() = parts.uri;
                *up.headers_mut() = parts.headers;
                let mut s = sender.borrow_mut().take().expect("one request at a time");
                s.ready().await?;
                let res = s.send_request(up).await;
                *sender.borrow_mut() = Some(s);
                res.map(|r| r.map(|_| Empty::<Bytes>::new()))
                    .map(|r: Response<Empty<Bytes>>| r)
            }
        });
        let (mut down, down_server) = tokio::io::duplex(64 * 1024);
        tokio::task::spawn_local(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(down_server), service),
        );
        let mut buf = vec![0u8; 4096];
        for _ in 0..n {
            down.write_all(HEAD).await.expect("write");
            read_response(&mut down, &mut buf).await;
        }
    });
}

/// Reads one bodiless response head.
async fn read_response(s: &mut DuplexStream, buf: &mut [u8]) {
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf[len..]).await.expect("read");
        assert!(n > 0, "the proxy closed");
        len += n;
    }
}

/// Answers each request head with an empty 200.
async fn upstream(mut s: DuplexStream) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        match buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => {
                buf.copy_within(end + 4..len, 0);
                len -= end + 4;
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await
                    .expect("write");
            }
            None => match s.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => len += n,
            },
        }
    }
}
