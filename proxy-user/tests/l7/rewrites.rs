//! Rewrites on the way to the upstream or the file: the matched prefix
//! replaced (nginx `proxy_pass http://app/;` in `location /api/`) and regex
//! rewrites with captures (nginx `rewrite ^/old/(.*)$ /new/$1 break;`).

use crate::support::{backend, client, get, json, proxy, test_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_and_regex_rewrites_reach_the_upstream_and_files() {
    let b = backend(0).await;
    let dir = test_dir("rewrites");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/new.txt"), "new file\n").unwrap();
    let p = proxy(
        &dir,
        &format!(
            r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{}"]

[[route]]
path = "/api/"
upstream = "app"
upstream_path = "/"

[[route]]
path = "/old/"
upstream = "app"
rewrite = ['^/old/([a-z]+)/(.*)$', "/new/$2?section=$1"]
request_headers = {{ set = {{ X-Uri = "$uri", X-Request-Uri = "$request_uri" }} }}

[[route]]
path_exact = "/legacy.txt"
root = "www"
rewrite = ['^/legacy\.txt$', "/new.txt"]
"#,
            b.addr
        ),
    )
    .await;
    let c = client();
    let base = format!("http://{}", p.addr());

    let (status, _, body) = get(&c, &format!("{base}/api/users/7?x=1")).await;
    assert_eq!(status, 200);
    let seen = json(&body);
    assert_eq!(
        (seen["path"].as_str(), seen["query"].as_str()),
        (Some("/users/7"), Some("x=1"))
    );
    let (_, _, body) = get(&c, &format!("{base}/api/")).await;
    assert_eq!(json(&body)["path"], "/");

    // Captures, a query in the target with the request's appended, and the
    // path normalised before and after (`//` and `..` never reach the app).
    let (status, _, body) = get(&c, &format!("{base}/old//docs/a/../b?page=2")).await;
    assert_eq!(status, 200);
    let seen = json(&body);
    assert_eq!(seen["path"], "/new/b");
    assert_eq!(seen["query"], "section=docs&page=2");
    assert_eq!(seen["headers"]["x-uri"], "/new/b");
    assert_eq!(seen["headers"]["x-request-uri"], "/old//docs/a/../b?page=2");
    // No match: the path goes on as it was.
    let (_, _, body) = get(&c, &format!("{base}/old/UPPER")).await;
    assert_eq!(json(&body)["path"], "/old/UPPER");

    let (status, _, body) = get(&c, &format!("{base}/legacy.txt")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"new file\n"[..]));
}

/// nginx `rewrite ^/old/(.*)$ /new/$1 last;`: the routes are searched again
/// for the new path (its limits, headers and upstream apply), at most 10
/// times, then 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_last_searches_the_routes_again() {
    let b = backend(0).await;
    let dir = test_dir("rewrite-last");
    let p = proxy(
        &dir,
        &format!(
            r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{}"]

[[route]]
path = "/old/"
respond = 410
rewrite = ["^/old/(.*)$", "/hop/$1", "last"]

[[route]]
path = "/hop/"
respond = 410
rewrite = ["^/hop/(.*)$", "/new/$1?via=hop", "last"]

[[route]]
path = "/new/"
upstream = "app"
request_headers = {{ set = {{ X-Orig = "$request_uri", X-Uri = "$uri" }} }}

[[route]]
path = "/loop/"
respond = 200
rewrite = ["^/loop/(.*)$", "/loop/x$1", "last"]

[[route]]
path = "/ten/"
respond = 200
rewrite = ["^/ten/(x{{0,9}})$", "/ten/x$1", "last"]

[[route]]
path = "/miss/"
respond = 404
rewrite = ["^/miss/only$", "/new/only", "last"]
"#,
            b.addr
        ),
    )
    .await;
    let c = client();
    let base = format!("http://{}", p.addr());
    let (status, _, body) = get(&c, &format!("{base}/old/a/b?q=1")).await;
    assert_eq!(status, 200);
    let seen = json(&body);
    assert_eq!(
        seen["path"], "/new/a/b",
        "two rewrites, then the upstream route"
    );
    assert_eq!(seen["query"], "via=hop&q=1");
    assert_eq!(
        seen["headers"]["x-orig"], "/old/a/b?q=1",
        "$request_uri is as received"
    );
    assert_eq!(seen["headers"]["x-uri"], "/new/a/b");
    // A cycle: 500 after 10 rewrites, as nginx.
    let (status, _, _) = get(&c, &format!("{base}/loop/a")).await;
    assert_eq!(status, 500);
    // Ten rewrites are allowed: /ten/ -> /ten/x ... -> /ten/xxxxxxxxxx.
    let (status, _, _) = get(&c, &format!("{base}/ten/")).await;
    assert_eq!(status, 200);
    // No match: the route's own action.
    let (status, _, _) = get(&c, &format!("{base}/miss/other")).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&c, &format!("{base}/miss/only")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["path"], "/new/only");
}
