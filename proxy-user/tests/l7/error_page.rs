//! `[[error_page]]` (nginx `error_page` + `proxy_intercept_errors`): the
//! page replaces rampart's own error answers, and an upstream's only with
//! `intercept = true`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{backend, client, get, proxy, send, test_dir};

fn config(backend: std::net::SocketAddr, dead: std::net::SocketAddr, intercept: bool) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{backend}"]
max_fails = 0

[upstream.dead]
servers = ["{dead}"]
max_fails = 0

[[route]]
path = "/dead/"
upstream = "dead"

[[route]]
path = "/gone"
respond = 404

[[route]]
upstream = "app"

[[error_page]]
status = [502, 503]
file = "50x.html"
intercept = {intercept}

[[error_page]]
status = [404]
file = "404.txt"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_replace_rampart_errors_and_intercepted_upstream_ones() {
    let b = backend(0).await;
    // A port nothing listens on: rampart answers 502 itself.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = client();
    for intercept in [false, true] {
        let dir = test_dir("error-page");
        std::fs::write(dir.join("50x.html"), "<h1>We will be back</h1>\n").unwrap();
        std::fs::write(dir.join("404.txt"), "nothing here\n").unwrap();
        let p = proxy(&dir, &config(b.addr, dead, intercept)).await;
        let base = format!("http://{}", p.addr());
        // rampart's own 502 (upstream refused the connection): the page.
        let (s, h, body) = get(&c, &format!("{base}/dead/x")).await;
        assert_eq!(s, StatusCode::BAD_GATEWAY);
        assert_eq!(&body[..], b"<h1>We will be back</h1>\n");
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert!(h.contains_key("x-request-id"));
        // A `respond = 404` route: the 404 page.
        let (s, h, body) = get(&c, &format!("{base}/gone")).await;
        assert_eq!(
            (s, &body[..]),
            (StatusCode::NOT_FOUND, &b"nothing here\n"[..])
        );
        assert_eq!(h["content-type"], "text/plain; charset=utf-8");
        // The upstream's own 503: replaced only when intercepted.
        let (s, _, body) = get(&c, &format!("{base}/status/503")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let want: &[u8] = if intercept {
            b"<h1>We will be back</h1>\n"
        } else {
            b"backend 0 says 503"
        };
        assert_eq!(&body[..], want, "intercept = {intercept}");
        // The upstream's 404 is not intercepted (no page has intercept for it).
        let (s, _, body) = get(&c, &format!("{base}/status/404")).await;
        assert_eq!(
            (s, &body[..]),
            (StatusCode::NOT_FOUND, &b"backend 0 says 404"[..])
        );
        // Statuses without a page, and successes, pass untouched.
        let (s, _, body) = get(&c, &format!("{base}/status/500")).await;
        assert_eq!(
            (s, &body[..]),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                &b"backend 0 says 500"[..]
            )
        );
        assert_eq!(get(&c, &format!("{base}/ok")).await.0, StatusCode::OK);
    }
}

/// The switch itself, in process (the CLI path is tests/e2e maintenance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_answers_503_without_a_page_too() {
    let b = backend(0).await;
    let dir = test_dir("maintenance");
    let p = proxy(&dir, &format!("[[listener]]\nbind = \"127.0.0.1:0\"\n[upstream.app]\nservers = [\"{}\"]\n[[route]]\nupstream = \"app\"\n", b.addr)).await;
    let c = client();
    let url = format!("http://{}/x", p.addr());
    assert_eq!(get(&c, &url).await.0, StatusCode::OK);
    p.shared.load().services.maintenance.set(true);
    let (s, h, body) = get(&c, &url).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "120");
    assert!(String::from_utf8_lossy(&body).contains("maintenance"));
    p.shared.load().services.maintenance.set(false);
    assert_eq!(get(&c, &url).await.0, StatusCode::OK);
}

/// `rampart maintenance on` is kept in the state file: a restarted daemon
/// still answers 503 until `maintenance off`, which is kept too. (A test's
/// directory goes with its daemon: the state file is carried to the next.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_survives_a_restart() {
    use proxy_user::control_socket::protocol::Request;
    let cfg = "[[listener]]\nbind = \"127.0.0.1:0\"\n\n[[route]]\nrespond = 200\n";
    let c = client();
    let restart = |p: crate::support::Proxy| async move {
        let state = std::fs::read(p.dir.join("state.json")).unwrap();
        p.shutdown().await;
        let dir = test_dir("maintenance-restart");
        std::fs::write(dir.join("state.json"), state).unwrap();
        proxy(&dir, cfg).await
    };
    let p = proxy(&test_dir("maintenance-restart"), cfg).await;
    let on = p.ok(Request::Maintenance { on: Some(true) }).await;
    assert_eq!(on["maintenance"], true);
    let status = |p: &crate::support::Proxy| {
        let url = format!("http://{}/", p.addr());
        let c = c.clone();
        async move { get(&c, &url).await.0 }
    };
    assert_eq!(status(&p).await, StatusCode::SERVICE_UNAVAILABLE);

    let p = restart(p).await;
    assert_eq!(
        status(&p).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "still on after the restart"
    );
    let off = p.ok(Request::Maintenance { on: Some(false) }).await;
    assert_eq!(off["maintenance"], false);
    assert_eq!(status(&p).await, StatusCode::OK);

    let p = restart(p).await;
    assert_eq!(status(&p).await, StatusCode::OK, "off is kept too");
    let shown = p.ok(Request::Maintenance { on: None }).await;
    assert_eq!(shown["maintenance"], false);
}

/// `[[server]] error_page` (nginx `error_page` in a `server`): each server
/// answers its own pages, for its routes and for requests none of its
/// routes takes; a server without one has `[[error_page]]`'s, and
/// `error_page = []` none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_has_its_own_error_pages() {
    let dir = test_dir("server-error-pages");
    std::fs::write(dir.join("site.html"), "site page").unwrap();
    std::fs::write(dir.join("shop.html"), "shop page").unwrap();
    let config = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [[error_page]]\nstatus = [404]\nfile = {site:?}\n\n\
         [[server]]\nserver_name = [\"shop.test\"]\n\
         error_page = [{{ status = [404, 403], file = {shop:?} }}]\n\
         [[server.route]]\npath = \"/locked/\"\nrespond = 403\n\
         [[server.route]]\npath = \"/cart/\"\nrespond = 200\n\n\
         [[server]]\nserver_name = [\"blog.test\"]\n\
         [[server.route]]\npath = \"/posts/\"\nrespond = 200\n\n\
         [[server]]\nserver_name = [\"api.test\"]\nerror_page = []\n\
         [[server.route]]\npath = \"/v1/\"\nrespond = 200\n",
        site = dir.join("site.html"),
        shop = dir.join("shop.html"),
    );
    let p = proxy(&dir, &config).await;
    let c = client();
    for (host, path, status, body) in [
        ("shop.test", "/locked/x", 403, "shop page"),
        ("shop.test", "/nothing-here", 404, "shop page"),
        ("blog.test", "/nothing-here", 404, "site page"),
        ("api.test", "/nothing-here", 404, ""),
    ] {
        let req = Request::get(format!("http://{}{path}", p.addr()))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (got, _, b) = send(&c, req).await;
        assert_eq!(got.as_u16(), status, "{host}{path}");
        let b = String::from_utf8_lossy(&b);
        if body.is_empty() {
            assert!(!b.contains("page"), "{host}{path}: {b}");
        } else {
            assert_eq!(b, body, "{host}{path}");
        }
    }
}
