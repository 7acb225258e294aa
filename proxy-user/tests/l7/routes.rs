//! Respond, redirect and static routes, limits, and the protections that
//! need no upstream.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{client, get, proxy, send, test_dir};

fn static_config(root: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[limit.tight]
rate = "1r/s"
burst = 2
nodelay = true

[[route]]
path_regex = '\.(env|git|svn|config)$'
respond = 404

[[route]]
path = "/static/"
static = "{root}"
expires = "30d"
cache_control = "public, immutable"

[[route]]
path = "/www/"
root = "."

[[route]]
path = "/limited"
respond = 200
body = "ok"
limit = "tight"

[[route]]
path = "/old"
redirect = "/new$request_uri"
redirect_status = 301
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_with_caching_ranges_and_no_escape() {
    let dir = test_dir("static");
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::write(root.join("css/app.css"), "body { color: red }\n").unwrap();
    std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(root.join("big.js"), "0123456789".repeat(10)).unwrap();
    std::fs::write(root.join("big.js.gz"), b"gzipped").unwrap();
    std::fs::write(dir.join("secret.txt"), "secret").unwrap();
    // Large enough to be streamed in chunks rather than read at once.
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("large.bin"), &large).unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("escape.txt")).unwrap();
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.join("elsewhere"), root.join("outside")).unwrap();
    let p = proxy(&dir, &static_config("www")).await;
    let c = client();
    let base = format!("http://{}", p.addr());

    let (status, h, body) = get(&c, &format!("{base}/static/css/app.css")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"body { color: red }\n");
    assert_eq!(h["content-type"], "text/css; charset=utf-8");
    // Both, as nginx's `expires 30d; add_header Cache-Control "public, immutable"`.
    let cache_control: Vec<_> = h.get_all("cache-control").iter().collect();
    assert_eq!(cache_control, ["max-age=2592000", "public, immutable"]);
    let expires = httpdate::parse_http_date(h["expires"].to_str().unwrap()).unwrap();
    let days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((29..=30).contains(&days), "expires in {days} days");
    assert!(h.contains_key("x-request-id"));

    // Conditional GET.
    let etag = h["etag"].clone();
    let req = Request::get(format!("{base}/static/css/app.css"))
        .header("if-none-match", etag)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let req = Request::get(format!("{base}/static/css/app.css"))
        .header("if-modified-since", h["last-modified"].clone())
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0, StatusCode::NOT_MODIFIED);

    // Ranges, HEAD, index, precompressed sibling.
    let req = Request::get(format!("{base}/static/big.js"))
        .header("range", "bytes=10-19")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h["content-range"], "bytes 10-19/100");
    assert_eq!(&body[..], b"0123456789");
    let req = Request::get(format!("{base}/static/big.js"))
        .header("range", "bytes=500-")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0, StatusCode::RANGE_NOT_SATISFIABLE);
    let req = Request::head(format!("{base}/static/big.js"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, body) = send(&c, req).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(h["content-length"], "100");
    let (status, _, body) = get(&c, &format!("{base}/static/")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"<h1>hi</h1>"[..]));
    // A directory without its index file: 403, as nginx (autoindex off);
    // a directory outside the root (a symlink out) stays 404, and so does
    // a missing one.
    assert_eq!(
        get(&c, &format!("{base}/static/css/")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&c, &format!("{base}/static/outside/")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&c, &format!("{base}/static/nowhere/")).await.0,
        StatusCode::NOT_FOUND
    );
    let req = Request::get(format!("{base}/static/big.js"))
        .header("accept-encoding", "gzip, br;q=0")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, h, body) = send(&c, req).await;
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(&body[..], b"gzipped");

    // A streamed file, whole and by a range across chunk boundaries.
    let (status, h, body) = get(&c, &format!("{base}/static/large.bin")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, large.len()));
    assert_eq!(h["content-length"], "3000000");
    assert!(body[..] == large[..], "streamed bytes differ");
    let req = Request::get(format!("{base}/static/large.bin"))
        .header("range", "bytes=65000-1065000")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(&c, req).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body[..] == large[65000..=1065000], "ranged bytes differ");

    // No escape from the root, however the path is spelled.
    for evil in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/escape.txt",
        "/static/a%00b",
        // Overlong UTF-8 for '.' and '/', and a backslash.
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/..%c0%afsecret.txt",
        "/static/..%5csecret.txt",
        "/static/%252e%252e/secret.txt",
    ] {
        let (status, _, body) = get(&c, &format!("{base}{evil}")).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{evil}: {status}"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("secret"),
            "{evil} leaked the file"
        );
    }
    // `root` keeps the whole path under the directory (nginx `root`).
    let (status, _, body) = get(&c, &format!("{base}/www/css/app.css")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"body { color: red }\n"[..])
    );
    // Dotfile routes win over the static route before it in file order.
    assert_eq!(
        get(&c, &format!("{base}/static/.env")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_redirects_and_protections() {
    let dir = test_dir("routes");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let p = proxy(&dir, &static_config("www")).await;
    let c = client();
    let base = format!("http://{}", p.addr());

    // 1r/s burst 2 nodelay: 3 at once pass, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, h, _) = get(&c, &format!("{base}/limited")).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(h.contains_key("retry-after"));
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");

    let (status, h, _) = get(&c, &format!("{base}/old/page?x=1")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], "/new/old/page?x=1");

    assert_eq!(
        get(&c, &format!("{base}/nothing-here")).await.0,
        StatusCode::NOT_FOUND
    );
    let long = format!("{base}/{}", "a".repeat(9000));
    assert_eq!(get(&c, &long).await.0, StatusCode::URI_TOO_LONG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_or_made_safe() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("framing");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let b = crate::support::backend(1).await;
    let config = format!(
        "{}\n[upstream.app]\nservers = [\"{}\"]\n\n[[route]]\npath = \"/app/\"\nupstream = \"app\"\n",
        static_config("www"),
        b.addr
    );
    let p = proxy(&dir, &config).await;
    let addr = p.addr();
    let exchange = |raw: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut all)).await;
        String::from_utf8_lossy(&all).into_owned()
    };
    for (what, raw) in [
        (
            "conflicting CLs",
            "POST /limited HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        ),
        (
            "space before the colon",
            "GET /limited HTTP/1.1\r\nHost : x\r\n\r\n",
        ),
        (
            "a chunk size that is not hex",
            "POST /app/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a negative chunk size",
            "POST /app/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a chunk size past 64 bits",
            "POST /app/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a transfer coding other than chunked last",
            "POST /app/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "header injection through a bare CR",
            "GET /app/x HTTP/1.1\r\nHost: x\r\nX-A: a\rX-Injected: b\r\n\r\n",
        ),
        (
            "a NUL in a header value",
            "GET /app/x HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
        ),
        (
            "a CR in the request target",
            "GET /app/x\rX HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ] {
        let out = exchange(raw).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
    }
    // None of the malformed requests reached the upstream.
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Content-Length with Transfer-Encoding, in either order, and a
    // repeated Content-Length: 400 and the connection closed, so a request
    // hidden after the body is never served (no desync, no smuggling).
    for (what, head) in [
        (
            "CL then TE",
            "Content-Length: 40\r\nTransfer-Encoding: chunked",
        ),
        (
            "TE then CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 40",
        ),
        ("repeated CL", "Content-Length: 29\r\nContent-Length: 29"),
    ] {
        let raw = format!(
            "POST /limited HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n0\r\n\r\nGET /old HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let raw: &'static str = Box::leak(raw.into_boxed_str());
        let out = exchange(raw).await;
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
        assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{what}: {out}");
        assert!(
            out.to_ascii_lowercase().contains("connection: close"),
            "{what}: {out}"
        );
    }
    // Well-framed pipelined requests on one connection are all served,
    // including one after a chunked body.
    let out = exchange("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 2, "{out}");
    assert!(!out.contains(" 400 "), "{out}");
}

/// Asking for an upgrade that is not granted leaves the connection in
/// HTTP, and the framing check on (issue 13, item 8): a CL+TE or repeated
/// CL request pipelined after `Upgrade: foo` (answered 200, not 101) is
/// still answered 400 and the connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_leaves_the_framing_check_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("upgrade-framing");
    let p = proxy(&dir, ANSWER_OK).await;
    for (first, ambiguous) in [
        (
            "GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
        ),
        (
            "GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n",
            "Content-Length: 5\r\nContent-Length: 5",
        ),
    ] {
        let raw = format!(
            "{first}POST /b HTTP/1.1\r\nHost: x\r\n{ambiguous}\r\n\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut all = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut all)).await;
        let out = String::from_utf8_lossy(&all);
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        // The upgrade request is answered (not 101), the ambiguous one is
        // refused and the connection closed: the request after it is never
        // served.
        assert_eq!(statuses.len(), 2, "{first}{ambiguous}: {out}");
        assert_ne!(statuses[0], "101", "{out}");
        assert_eq!(statuses[1], "400", "{first}{ambiguous}: {out}");
    }
}

/// A plain listener without `http2` speaks only HTTP/1: an HTTP/2 prior
/// knowledge preface is not taken up (hyper-util's `http1_only` was
/// ignored with upgrades, so it was).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listener_without_http2_does_not_speak_it() {
    let p = proxy(&test_dir("no-h2c"), ANSWER_OK).await;
    let out = raw_exchange(
        p.addr(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .await;
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 4"), "{out:?}");
}

/// Sends `raw` on a new connection and reads until the proxy closes it (or
/// 5 s pass); returns what came back.
async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut all = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        // A reset after the answer still leaves the answer read.
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the proxy neither answered nor closed");
    String::from_utf8_lossy(&all).into_owned()
}

/// Head limits as nginx's (issue 13, item 10): a line over
/// `max_header_line` (8k) is refused, 414 for the request line and 431 for
/// a header, as are more than `max_headers` (100) headers and a head over
/// `max_header_size`; none of them reaches the upstream, and the
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_lines_and_header_counts_are_limited() {
    let b = crate::support::backend(1).await;
    let config = |http: &str| {
        format!(
            "[http]\nmax_uri_length = \"64k\"\n{http}\n[[listener]]\nbind = \"127.0.0.1:0\"\n\n[upstream.app]\nservers = [\"{}\"]\n\n[[route]]\npath = \"/r\"\nrespond = 200\n\n[[route]]\nupstream = \"app\"\n",
            b.addr
        )
    };
    let p = proxy(&test_dir("head-limits"), &config("")).await;
    let head = |target: &str, headers: &[String]| {
        let mut h = format!("GET {target} HTTP/1.1\r\nHost: x\r\n");
        for line in headers {
            h.push_str(line);
            h.push_str("\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    };
    let status = |out: &str| out.get(9..12).unwrap_or("").to_string();
    let hits = || b.hits.load(std::sync::atomic::Ordering::Relaxed);
    let big = |n: usize| format!("X-Big: {}", "a".repeat(n));
    let many = |n: usize| (0..n).map(|i| format!("X-H{i}: v")).collect::<Vec<_>>();
    // Within the limits: served (98 headers, Host and Connection make 100;
    // to a `respond` route, as the test upstream allows 100 with the
    // proxy's own).
    let out = raw_exchange(
        p.addr(),
        &head("/ok", &[big(8000), "Connection: close".into()]),
    )
    .await;
    assert_eq!(status(&out), "200", "{out}");
    let mut fine = many(98);
    fine.push("Connection: close".into());
    let out = raw_exchange(p.addr(), &head("/r", &fine)).await;
    assert_eq!(status(&out), "200", "{out}");
    assert_eq!(hits(), 1);
    for (what, raw, want) in [
        ("a 16 KiB header", head("/x", &[big(16 << 10)]), "431"),
        (
            "a 9 KiB request line",
            head(&format!("/{}", "a".repeat(9 << 10)), &[]),
            "414",
        ),
        (
            "a 40 KiB request line, over max_header_size too",
            head(&format!("/{}", "a".repeat(40 << 10)), &[]),
            "414",
        ),
        ("101 headers", head("/x", &many(100)), "431"),
        (
            "a 40 KiB head of short lines",
            head("/x", &(0..40).map(|_| big(1000)).collect::<Vec<_>>()),
            "431",
        ),
    ] {
        let out = raw_exchange(p.addr(), &raw).await;
        assert_eq!(status(&out), want, "{what}: {out}");
        assert!(
            out.to_ascii_lowercase().contains("connection: close"),
            "{what}: {out}"
        );
        println!("figure: {what}: {want}");
    }
    assert_eq!(hits(), 1, "a refused head reached the upstream");
    // Pipelined after a good request, the long line is still refused.
    let mut raw = head("/ok", &[]);
    raw.extend(head("/x", &[big(9 << 10)]));
    let out = raw_exchange(p.addr(), &raw).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("HTTP/1.1 431"), "{out}");
    assert_eq!(hits(), 2);
    drop(p);
    // Both limits are settings.
    let p = proxy(
        &test_dir("head-limits-set"),
        &config("max_header_line = \"20k\"\nmax_headers = 150"),
    )
    .await;
    let out = raw_exchange(
        p.addr(),
        &head("/ok", &[big(16 << 10), "Connection: close".into()]),
    )
    .await;
    assert_eq!(status(&out), "200", "{out}");
    let mut fine = many(140);
    fine.push("Connection: close".into());
    let out = raw_exchange(p.addr(), &head("/r", &fine)).await;
    assert_eq!(status(&out), "200", "{out}");
    let out = raw_exchange(p.addr(), &head("/r", &many(150))).await;
    assert_eq!(status(&out), "431", "{out}");
    drop(p);
    // Below the default 100: the 51st header is refused (when hyper
    // served HTTP/1 this was the framing check's alone).
    let p = proxy(&test_dir("head-limits-fewer"), &config("max_headers = 50")).await;
    let mut fine = many(48);
    fine.push("Connection: close".into());
    let out = raw_exchange(p.addr(), &head("/r", &fine)).await;
    assert_eq!(status(&out), "200", "{out}");
    let out = raw_exchange(p.addr(), &head("/r", &many(50))).await;
    assert_eq!(status(&out), "431", "{out}");
}

/// Reads until the proxy closes the connection (or 5 s pass); returns the
/// bytes read and when the close came.
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> (Vec<u8>, std::time::Instant) {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("closed by the proxy");
    (all, std::time::Instant::now())
}

fn between(d: std::time::Duration, lo_ms: u64, hi_ms: u64) -> bool {
    d >= std::time::Duration::from_millis(lo_ms) && d < std::time::Duration::from_millis(hi_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keepalive_and_send_timeouts_apply_separately() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("slowloris");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/big.bin"), vec![7u8; 32 << 20]).unwrap();
    let config = "[http]\nheader_timeout = \"1s\"\nkeepalive_timeout = \"2500ms\"\nsend_timeout = \"1s\"\n\
        [[listener]]\nbind = \"127.0.0.1:0\"\n\
        [[route]]\npath = \"/files/\"\nstatic = \"www/\"\n\
        [[route]]\nrespond = 200\n";
    let p = proxy(&dir, config).await;
    // A head that never ends: cut at header_timeout after its first byte.
    let mut slow = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut slow).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(
        between(closed - started, 900, 2000),
        "{:?}",
        closed - started
    );
    // A connection that never sends anything: the same, from the accept.
    let mut silent = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut silent).await;
    assert!(
        between(closed - started, 900, 2000),
        "{:?}",
        closed - started
    );

    // Keep-alive: a next request 1.5 s after the first (past header_timeout,
    // within keepalive_timeout) is served; then idleness is cut at 2.5 s.
    let mut ka = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let mut buf = [0u8; 512];
    for pause in [0, 1500] {
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        ka.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = ka.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "after {pause} ms: {}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let idle_from = std::time::Instant::now();
    let (got, closed) = read_until_closed(&mut ka).await;
    assert!(got.is_empty());
    assert!(
        between(closed - idle_from, 2300, 3500),
        "{:?}",
        closed - idle_from
    );

    // A client that stops reading a large response: cut at send_timeout,
    // long before it could have read the whole file.
    let mut stuck = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    stuck
        .write_all(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut all = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stuck.read_to_end(&mut all),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the stalled connection was closed"
    );
    assert!(
        all.len() < 32 << 20,
        "the whole file arrived: {}",
        all.len()
    );
    // While a response is being read, it is not idleness: a full download
    // slower than keepalive_timeout completes.
    let mut reader = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    reader
        .write_all(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (mut total, started) = (0usize, std::time::Instant::now());
    let mut chunk = vec![0u8; 64 << 10];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        total += n;
        // About 3 s for 32 MiB: longer than keepalive_timeout.
        tokio::time::sleep(std::time::Duration::from_micros(5500)).await;
    }
    assert!(started.elapsed() > std::time::Duration::from_millis(2600));
    assert!(total > 32 << 20, "{total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_and_ipv6_listeners_and_a_connection_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("listeners");
    let config = "[[listener]]\nbind = \"127.0.0.1:0\"\nmax_connections = 1\n\n[[listener]]\nbind = \"[::1]:0\"\n\n[[route]]\nrespond = 200\nbody = \"hi\"\n";
    let p = proxy(&dir, config).await;
    let c = client();
    let (status, _, body) = get(&c, &format!("http://[::1]:{}/", p.addrs[1].port())).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"hi"[..]),
        "IPv6 listener"
    );
    // One connection at a time on the first listener: a second one waits in the backlog.
    let mut first = tokio::net::TcpStream::connect(p.addrs[0]).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(first.read(&mut buf).await.unwrap() > 0);
    let mut second = tokio::net::TcpStream::connect(p.addrs[0]).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let waited =
        tokio::time::timeout(std::time::Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(waited.is_err(), "served beyond max_connections");
    drop(first);
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("served once the first left")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// One plain listener answering 200 `ok` to everything.
const ANSWER_OK: &str =
    "[[listener]]\nbind = \"127.0.0.1:0\"\n[[route]]\nrespond = 200\nbody = \"ok\"\n";

/// Plain connections waiting for a request head (new ones, slow heads, and
/// keep-alive ones parked after a second idle) are rows in the worker's
/// lot: they hold no task of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_connections_hold_no_task() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("lot");
    let p = proxy(&dir, ANSWER_OK).await;
    // The daemon's workers' tasks (not this test's).
    let tasks = || p.handle().worker_tasks();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = tasks();
    let mut conns = Vec::new();
    for i in 0..60 {
        let mut c = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        match i % 3 {
            // Silent, a head cut short, and one served then left idle.
            0 => {}
            1 => c.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap(),
            _ => {
                c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = [0u8; 256];
                assert!(c.read(&mut buf).await.unwrap() > 0);
            }
        }
        conns.push(c);
    }
    // Past PARK_AFTER: the served ones are parked too.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let waiting = p
        .handle()
        .services()
        .metrics
        .listener("127.0.0.1:0")
        .waiting_now();
    assert_eq!(waiting, 60);
    let grown = tasks().saturating_sub(before);
    assert!(grown < 5, "{grown} more tasks for 60 waiting connections");
    drop(conns);
}

/// An HTTP/1 connection idle between requests for a second is parked (no
/// HTTP state, counted as waiting), and its next request is served as if
/// nothing happened; a head still arriving also holds no HTTP state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_parked_and_resume() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("park");
    let p = proxy(&dir, ANSWER_OK).await;
    let waiting = || {
        p.handle()
            .services()
            .metrics
            .listener("127.0.0.1:0")
            .waiting_now()
    };
    let mut c = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let mut buf = [0u8; 512];
    let mut ask = async |c: &mut tokio::net::TcpStream| {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = c.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut c).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        waiting(),
        0,
        "served connections hold their HTTP state a while"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(waiting(), 1, "an idle connection is parked");
    let again = ask(&mut c).await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert!(again.ends_with("ok"), "{again}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(waiting(), 0, "resumed");

    // A head arriving slowly waits with no HTTP state.
    let mut slow = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(waiting(), 1);
    slow.write_all(b"st: x\r\n\r\n").await.unwrap();
    let n = slow.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
