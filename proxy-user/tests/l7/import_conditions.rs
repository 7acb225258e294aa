//! `rampart config import nginx` (issue 19) of the rewrite-phase idioms:
//! `if (...) { return ...; }` at server and location level, `set $var`
//! used by `proxy_pass`, and the WebSocket `map $http_upgrade
//! $connection_upgrade`. The imported configuration, run, answers as
//! nginx would: the scheme redirect first, the CORS preflight from the
//! `if` with its own headers, a method refused by a regex, and the rest
//! proxied to the address `set` named.

use std::{path::Path, sync::atomic::Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};

use crate::support::{backend, client, proxy, send, test_dir};

const NGINX: &str = r#"
events {}
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:0;
        server_name app.example.com;
        set $backend BACKEND;
        if ($http_x_forwarded_proto != "https") {
            return 301 https://$host$request_uri;
        }
        if ($request_method !~* ^(get|head|post|options)$ ) {
            return 405;
        }
        location /api/ {
            if ($request_method = OPTIONS) {
                add_header Access-Control-Allow-Origin "*";
                return 204;
            }
            proxy_pass http://$backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_ifs_sets_and_the_websocket_map_answer_as_nginx() {
    let dir = test_dir("import-conditions");
    let app = backend(1).await;
    let text = NGINX.replace("BACKEND", &app.addr.to_string());
    let imported = proxy_user::import::nginx_text(&text, Path::new("/site/nginx.conf")).unwrap();
    assert!(
        imported.complete(),
        "{:#?}\n{}",
        imported.reports,
        imported.toml
    );
    let p = proxy(&dir, &imported.toml).await;
    let c = client();
    let req = |method: Method, path: &str, proto: Option<&str>| {
        let mut r = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", p.addr()))
            .header("host", "App.Example.com:8080");
        if let Some(proto) = proto {
            r = r.header("x-forwarded-proto", proto);
        }
        r.body(Full::new(Bytes::new())).unwrap()
    };

    // Not https behind the balancer: the server-level `if` redirects first.
    let (status, h, _) = send(&c, req(Method::GET, "/api/x?y=1", None)).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], "https://app.example.com/api/x?y=1");
    let (status, _, _) = send(&c, req(Method::GET, "/api/x", Some("http"))).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);

    // A method the regex refuses: 405 from the second `if`.
    let (status, _, _) = send(&c, req(Method::DELETE, "/api/x", Some("https"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // The preflight: the location's `if`, with its own header; no upstream.
    let (status, h, _) = send(&c, req(Method::OPTIONS, "/api/x", Some("https"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(app.hits.load(Ordering::Relaxed), 0);

    // Everything else reaches the address `set $backend` named.
    let (status, h, _) = send(&c, req(Method::GET, "/api/x", Some("https"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.get("access-control-allow-origin").is_none());
    let (status, _, _) = send(&c, req(Method::POST, "/api/x", Some("https"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.hits.load(Ordering::Relaxed), 2);
}
