//! `$http_NAME`, `$cookie_NAME` and `$arg_NAME` (nginx's names) in header
//! rules to the upstream and to the client, in a redirect, and in a custom
//! access log format.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{backend, client, json, proxy, send, test_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_variables_fill_headers_redirects_and_log_lines() {
    let b = backend(0).await;
    let dir = test_dir("request-vars");
    let cfg = format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[http]
access_log = "access.log"
access_log_format = '$remote_addr "$http_x_tenant" sid=$cookie_sid page=$arg_page'

[upstream.app]
servers = ["{}"]

[[route]]
path = "/go/"
redirect = "https://$http_x_tenant.example.com/$arg_to"
redirect_status = 302

[[route]]
path = "/"
upstream = "app"
request_headers = {{ set = {{ X-Tenant-Echo = "t=$http_x_tenant", X-Session = "$cookie_sid" }} }}
response_headers = {{ add = {{ X-Seen-Agent = "$http_user_agent", X-Page = "$arg_page" }} }}
"#,
        b.addr
    );
    let p = proxy(&dir, &cfg).await;
    let c = client();

    let req = Request::get(format!("http://{}/api/items?page=2", p.addr()))
        .header("x-tenant", "acme")
        .header("cookie", "theme=dark; sid=s-42")
        .header("user-agent", "probe/1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = &json(&body)["headers"];
    assert_eq!(seen["x-tenant-echo"], "t=acme");
    assert_eq!(seen["x-session"], "s-42");
    assert_eq!(h["x-seen-agent"], "probe/1");
    assert_eq!(h["x-page"], "2");

    // Absent: empty, as nginx (a set header with an empty value is not sent).
    let req = Request::get(format!("http://{}/plain", p.addr()))
        .header("user-agent", "probe/2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = &json(&body)["headers"];
    assert_eq!(seen["x-tenant-echo"], "t=");
    assert!(seen.get("x-session").is_none(), "{seen}");
    assert_eq!(h["x-seen-agent"], "probe/2");

    let req = Request::get(format!("http://{}/go/?to=docs", p.addr()))
        .header("x-tenant", "beta")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, _) = send(&c, req).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(h["location"], "https://beta.example.com/docs");

    let log = dir.join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "3 lines within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "127.0.0.1 \"acme\" sid=s-42 page=2",
            "127.0.0.1 \"-\" sid=- page=-",
            "127.0.0.1 \"beta\" sid=- page=-",
        ],
        "{text}"
    );
}
