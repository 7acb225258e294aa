//! `redirect` and `respond` routes with nginx variables, filled in per
//! request from values compiled at load.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{client, proxy, send, test_dir};

/// nginx `return 301 https://$host:8443$request_uri;` and `return 200
/// "...$remote_addr..."`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_respond_fill_in_variables() {
    let dir = test_dir("templates");
    let p = proxy(
        &dir,
        r#"
[[listener]]
bind = "127.0.0.1:0"

[[route]]
path = "/old/"
redirect = "https://$host:8443$request_uri"
redirect_status = 301

[[route]]
path_exact = "/whoami"
respond = 200
body = "$scheme $remote_addr port=$server_port id=$request_id uri=$uri args=$args\n"

[[route]]
respond = 404
body = "no $$ here\n"
"#,
    )
    .await;
    let c = client();
    let port = p.addr().port();
    let req = Request::get(format!("http://{}/old//x/../y?a=1&b=%2F", p.addr()))
        .header("host", "example.com:8080")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, _) = send(&c, req).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        h["location"], "https://example.com:8443/old//x/../y?a=1&b=%2F",
        "$request_uri is the target as received"
    );
    // nginx's `$host`: lowercased, without its port or a final dot.
    let req = Request::get(format!("http://{}/old/x", p.addr()))
        .header("host", "Example.COM.:8080")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, _) = send(&c, req).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], "https://example.com:8443/old/x");

    let req = Request::get(format!("http://{}/whoami?q=1", p.addr()))
        .header("x-request-id", "req-7")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        format!("http 127.0.0.1 port={port} id=req-7 uri=/whoami args=q=1\n").as_bytes()
    );

    let req = Request::get(format!("http://{}/nothing", p.addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&c, req).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::NOT_FOUND, &b"no $ here\n"[..])
    );
}
