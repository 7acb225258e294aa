//! A route's own `compress` (nginx's `gzip on|off` in a location) and
//! `error_page` list (nginx's `error_page` in a location, replacing the
//! inherited ones).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{client, proxy, send, test_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_override_compression_and_error_pages() {
    let dir = test_dir("route-pages");
    std::fs::write(dir.join("site.html"), "<h1>site page</h1>\n").unwrap();
    std::fs::write(dir.join("route.html"), "<h1>route page</h1>\n").unwrap();
    let long = "compressible text ".repeat(40);
    let p = proxy(
        &dir,
        &format!(
            r#"
[[listener]]
bind = "127.0.0.1:0"

[compress]
encodings = ["gzip"]
min_length = "20"

[[route]]
path = "/raw/"
respond = 200
body = "{long}"
compress = false

[[route]]
path = "/own/"
respond = 200
body = "{long}"
compress = {{ encodings = ["br"], min_length = "20" }}

[[route]]
path = "/own-page/"
respond = 502
error_page = [{{ status = [502], file = "route.html" }}]

[[route]]
path = "/no-page/"
respond = 502
error_page = []

[[route]]
path = "/site-page/"
respond = 502

[[route]]
respond = 200
body = "{long}"

[[error_page]]
status = [502]
file = "site.html"
"#
        ),
    )
    .await;
    let c = client();
    let get = |path: &str| {
        Request::get(format!("http://{}{path}", p.addr()))
            .header("accept-encoding", "gzip, br")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let encoding = |h: &hyper::HeaderMap| {
        h.get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, h, body) = send(&c, get("/site")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding(&h).as_deref(), Some("gzip"), "[compress]");
    assert!(body.len() < long.len());
    let (_, h, body) = send(&c, get("/raw/x")).await;
    assert_eq!(encoding(&h), None, "compress = false");
    assert_eq!(body, long.as_bytes());
    let (_, h, _) = send(&c, get("/own/x")).await;
    assert_eq!(encoding(&h).as_deref(), Some("br"), "the route's own table");

    // Pages without Accept-Encoding (they would be compressed too).
    let get = |path: &str| {
        Request::get(format!("http://{}{path}", p.addr()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (status, _, body) = send(&c, get("/own-page/")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::BAD_GATEWAY, &b"<h1>route page</h1>\n"[..])
    );
    let (status, _, body) = send(&c, get("/no-page/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        !body.starts_with(b"<h1>"),
        "error_page = []: rampart's own text"
    );
    let (_, _, body) = send(&c, get("/site-page/")).await;
    assert_eq!(&body[..], b"<h1>site page</h1>\n");
}
