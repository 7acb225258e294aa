//! `redirect_https_host`: nginx's `return 301 https://$server_name$request_uri`,
//! where the Location names the configured host whatever Host the client sent.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{client, proxy, send, test_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_https_host_replaces_the_clients_host() {
    let dir = test_dir("redirect-host");
    let p = proxy(
        &dir,
        r#"
[[listener]]
bind = "127.0.0.1:0"
redirect_https = true
redirect_https_port = 8443
redirect_https_host = "Example.COM"

[[route]]
respond = 200
"#,
    )
    .await;
    let c = client();
    for (host, target) in [
        ("10.1.2.3:8080", "/login?next=/home"),
        ("www.example.com", "/a/../b"),
        ("example.com", "/"),
    ] {
        let req = Request::get(format!("http://{}{target}", p.addrs[0]))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, h, _) = send(&c, req).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{host}{target}");
        assert_eq!(
            h["location"],
            format!("https://example.com:8443{target}"),
            "{host}{target}"
        );
    }
}
