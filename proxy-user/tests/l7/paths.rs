//! Paths: every spelling of one resource meets the same route, limit and
//! static-file rules, and the upstream is sent the path the route saw.

use std::sync::atomic::Ordering;

use hyper::StatusCode;

use crate::support::{backend, client, get, json, proxy, test_dir};

/// A deny route, a limited prefix and a catch-all to the upstream: a
/// spelling that slipped past the first two would reach the backend.
fn deny_and_limit(backend: std::net::SocketAddr) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{backend}"]

[limit.api]
rate = "1r/m"
burst = 2
nodelay = true

[[route]]
path = "/admin"
respond = 403

[[route]]
path = "/api/"
upstream = "app"
limit = "api"

[[route]]
path = "/"
upstream = "app"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_and_dotted_spellings_meet_the_deny_route() {
    let dir = test_dir("paths-deny");
    let b = backend(1).await;
    let p = proxy(&dir, &deny_and_limit(b.addr)).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for spelling in [
        "/admin",
        "/%61dmin",
        "/%61%64%6D%69%6e/users",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/x/.%2E/admin",
        "/api/../admin",
        "///admin//",
    ] {
        let (status, _, _) = get(&c, &format!("{base}{spelling}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{spelling}");
    }
    assert_eq!(
        b.hits.load(Ordering::Relaxed),
        0,
        "a spelling reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_spellings_share_the_limit() {
    let dir = test_dir("paths-limit");
    let b = backend(1).await;
    let p = proxy(&dir, &deny_and_limit(b.addr)).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    // 1r/m, burst 2, nodelay: three pass, whatever the spelling, then 429.
    let mut statuses = Vec::new();
    for spelling in [
        "/api/items",
        "/%61pi/items",
        "//api/items",
        "/%61pi/items",
        "/x/../api/items",
        "/%41pi/../%61pi/./items",
    ] {
        statuses.push(get(&c, &format!("{base}{spelling}")).await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(b.hits.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_gets_the_normalised_path_and_the_original_query() {
    let dir = test_dir("paths-upstream");
    let b = backend(1).await;
    let p = proxy(&dir, &deny_and_limit(b.addr)).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for (sent, path, query) in [
        (
            "/%61pp//x/./y/../z?q=%2e%2E&r=/../a",
            "/app/x/z",
            "q=%2e%2E&r=/../a",
        ),
        ("/app/caf%c3%a9;v=1", "/app/caf%C3%A9;v=1", ""),
        ("/app/caf\u{e9}%20x", "/app/caf%C3%A9%20x", ""),
        ("/app/a%40b%2Bc%3Bd", "/app/a@b+c%3Bd", ""),
        ("/app/%252e%252e/", "/app/%252e%252e/", ""),
    ] {
        let (status, _, body) = get(&c, &format!("{base}{sent}")).await;
        assert_eq!(status, StatusCode::OK, "{sent}");
        let v = json(&body);
        assert_eq!(v["path"], path, "{sent}");
        assert_eq!(v["query"].as_str().unwrap_or(""), query, "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_without_one_meaning_are_refused() {
    let dir = test_dir("paths-refused");
    let b = backend(1).await;
    let p = proxy(&dir, &deny_and_limit(b.addr)).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for spelling in [
        "/..",
        "/%2e%2e/admin",
        "/a/../../admin",
        "/admin%2Fx",
        "/%61dmin%2f",
        "/api%5Citems",
        "/api\\items",
        "/a%00b",
        "/a%0d%0aX-Injected:%20y",
        "/a%7f",
        "/%zz",
        "/a%4",
        "/a%",
    ] {
        let (status, _, _) = get(&c, &format!("{base}{spelling}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spelling}");
    }
    assert_eq!(b.hits.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_routes_serve_no_dotfile_but_an_opted_in_well_known() {
    let dir = test_dir("paths-dotfiles");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join(".well-known/acme-challenge")).unwrap();
    std::fs::write(root.join(".env"), "SECRET=env").unwrap();
    std::fs::write(root.join(".git/config"), "[core] SECRET").unwrap();
    std::fs::write(root.join(".well-known/acme-challenge/x"), "token-x").unwrap();
    std::fs::write(root.join(".well-known/.SECRET"), "SECRET in well-known").unwrap();
    std::fs::write(root.join("app.js"), "app").unwrap();
    // The example's former deny regex stays in front: the static route's
    // own rule must hold whatever a regex misses.
    let config = r#"
[[listener]]
bind = "127.0.0.1:0"

[[route]]
path_regex = '\.(env|git|svn|config)$'
respond = 404

[[route]]
path = "/static/"
static = "www"

[[route]]
path = "/"
root = "www"
serve_well_known = true
"#;
    let p = proxy(&dir, config).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for path in [
        "/static/.env",
        "/static/.%65nv",
        "/static/.env/",
        "/static/.env//",
        "/static/%2eenv",
        "/static/.git/config",
        "/static/.git/confi%67",
        "/static/.git/config/",
        "/static/.git/",
        "/static/x/../.env/",
        "/static/.well-known/acme-challenge/x",
        "/.env/",
        "/.git/confi%67",
        "/.well-known/.SECRET",
        "/.well-known/../.env/",
    ] {
        let (status, _, body) = get(&c, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !String::from_utf8_lossy(&body).contains("SECRET"),
            "{path} leaked a dotfile"
        );
    }
    for (path, want) in [
        ("/static/app.js", "app"),
        ("/.well-known/acme-challenge/x", "token-x"),
        ("/.%77ell-known/acme-challenge/x", "token-x"),
        ("//.well-known//acme-challenge/./x", "token-x"),
    ] {
        let (status, _, body) = get(&c, &format!("{base}{path}")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, want.as_bytes()),
            "{path}"
        );
    }
}
