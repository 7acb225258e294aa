//! Header rules: `[http]` defaults and a route's own, on the request to the
//! upstream and on the response to the client, with `always`, HSTS (over
//! TLS only, checked with curl) and the security preset.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{backend, client, json, proxy, send, test_dir};

fn config(backend: &str, tls: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
{tls}

[http]
request_headers = {{ set = {{ X-Real-IP = "$remote_addr", X-Forwarded-Proto = "https", X-Original = "$scheme://$host$request_uri" }}, remove = ["X-Debug"] }}
response_headers = {{ remove = ["X-Powered-By"], add = {{ X-Served-By = "rampart:$server_port" }} }}
hsts = "max-age=31536000; includeSubDomains"
security_headers = true

[upstream.app]
servers = ["{backend}"]

[[route]]
path_regex = "^/(api|status)/"
upstream = "app"
request_headers = {{ set = {{ X-Route = "api", X-Real-IP = "" }} }}
response_headers = {{ set = {{ X-Frame-Options = "DENY", Cache-Control = "no-store" }}, always = true }}

[[route]]
path = "/"
upstream = "app"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_rules_with_defaults_and_always() {
    let b = backend(0).await;
    let dir = test_dir("header-rules");
    let p = proxy(&dir, &config(&b.addr.to_string(), "")).await;
    let c = client();
    let port = p.addr().port();

    // The default route: [http]'s rules only.
    let req = Request::get(format!("http://{}/x/../page?a=1", p.addr()))
        .header("host", "example.com:81")
        .header("x-debug", "1")
        .header("x-forwarded-proto", "http")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = &json(&body)["headers"];
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(
        seen["x-forwarded-proto"], "https",
        "set replaces rampart's own"
    );
    assert_eq!(seen["x-original"], "http://example.com/x/../page?a=1");
    assert!(seen.get("x-debug").is_none(), "{seen}");
    assert!(h.get("x-powered-by").is_none(), "hidden: {h:?}");
    assert_eq!(h["x-served-by"], format!("rampart:{port}"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(
        h.get("strict-transport-security").is_none(),
        "not over http"
    );

    // The api route adds its own after the defaults; its X-Frame-Options
    // replaces the preset's (which only fills in a missing one), and an
    // empty set removes a default's header.
    let (status, h, body) = send(
        &c,
        Request::get(format!("http://{}/api/who", p.addr()))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = &json(&body)["headers"];
    assert_eq!(seen["x-route"], "api");
    assert!(seen.get("x-real-ip").is_none(), "{seen}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["cache-control"], "no-store");

    // An error: `always` rules and the preset apply, the others do not
    // (nginx add_header without `always` skips 4xx/5xx).
    let (status, h, _) = send(
        &c,
        Request::get(format!("http://{}/status/502", p.addr()))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.get("x-served-by").is_none(), "not always: {h:?}");
}

/// HSTS over TLS, seen by curl, on a success and on rampart's own 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_goes_on_every_tls_response() {
    let b = backend(0).await;
    let dir = test_dir("hsts");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("c.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("c.key"), cert.signing_key.serialize_pem()).unwrap();
    let cfg = config(
        &b.addr.to_string(),
        "tls = { cert = \"c.crt\", key = \"c.key\" }",
    )
    .replace("[[route]]\npath = \"/\"\n", "[[route]]\npath = \"/app/\"\n");
    let p = proxy(&dir, &cfg).await;
    for (path, status) in [("/app/x", "200"), ("/nothing", "404")] {
        let url = format!("https://localhost:{}{path}", p.addr().port());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sk", "-o", "/dev/null", "-D", "-", &url])
                .output()
                .expect("curl runs")
        })
        .await
        .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(head.contains(&format!(" {status}")), "{path}: {head}");
        assert!(
            head.contains("strict-transport-security: max-age=31536000; includesubdomains"),
            "{path}: {head}"
        );
    }
}
