//! Proxying to upstream groups: balancing, headers, body limits, retries,
//! passive health, timeouts, WebSockets, redirect listeners and draining.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::{Backend, backend, backend_at, client, get, json, proxy, send, test_dir};

/// The test configuration; each `key = value` line of `extra` replaces the
/// upstream default of that key or adds it.
fn config(servers: &[String], extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let mut settings = vec![
        ("max_fails".to_string(), "2".to_string()),
        ("fail_timeout".to_string(), "\"30s\"".to_string()),
        ("read_timeout".to_string(), "\"500ms\"".to_string()),
    ];
    for line in extra.lines().filter(|l| l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        settings.retain(|(key, _)| *key != k);
        settings.push((k, v));
    }
    let upstream: Vec<String> = settings.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[[listener]]
bind = "127.0.0.1:0"
redirect_https = true

[upstream.app]
balance = "least_conn"
servers = [{}]
{}

[[route]]
path = "/api/"
upstream = "app"
max_body = "1k"

[[route]]
path = "/"
upstream = "app"
idle_timeout = "2s"
"#,
        list.join(", "),
        upstream.join("\n")
    )
}

async fn backends(n: usize) -> (Vec<Backend>, Vec<String>) {
    let mut bs = Vec::new();
    for i in 0..n {
        bs.push(backend(i).await);
    }
    let addrs = bs.iter().map(|b| b.addr.to_string()).collect();
    (bs, addrs)
}

/// An address nothing listens on.
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_and_forwards_headers() {
    let (bs, addrs) = backends(4).await;
    let dir = test_dir("balance");
    let p = proxy(&dir, &config(&addrs, "")).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for _ in 0..40 {
        let req = Request::get(format!("{base}/api/items?q=1"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("connection", "keep-alive, x-drop-me")
            .header("x-drop-me", "1")
            .header("x-request-id", "req-42")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, h, body) = send(&c, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["x-request-id"], "req-42");
        let v = json(&body);
        assert_eq!(v["path"], "/api/items");
        assert_eq!(v["query"], "q=1");
        let hdrs = &v["headers"];
        // Nothing the client says is trusted: its X-Forwarded-For is replaced.
        assert_eq!(hdrs["x-forwarded-for"], "127.0.0.1");
        assert_eq!(hdrs["x-real-ip"], "127.0.0.1");
        assert_eq!(hdrs["x-forwarded-proto"], "http");
        assert_eq!(hdrs["x-request-id"], "req-42");
        assert_eq!(hdrs["host"], p.addr().to_string());
        assert!(
            hdrs.get("x-drop-me").is_none(),
            "a header named by Connection is hop-by-hop"
        );
    }
    // Sequential requests leave every server idle: least_conn takes turns
    // (each worker thread keeps its own turn, so the split is near even).
    let hits: Vec<usize> = bs
        .iter()
        .map(|b| b.hits.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    assert!(hits.iter().all(|&h| (7..=13).contains(&h)), "{hits:?}");
    // Without a client X-Request-Id one is made up.
    let (_, h, body) = get(&c, &format!("{base}/api/x")).await;
    assert_eq!(h["x-request-id"].len(), 32);
    assert_eq!(
        json(&body)["headers"]["x-request-id"],
        h["x-request-id"].to_str().unwrap()
    );
}

/// The forwarding headers the client sends never reach the upstream
/// (issue 13): `X-Forwarded-For/-Proto/-Host/-Port`, `X-Real-IP` and
/// `Forwarded`, also spelt with `_`, are set by the proxy or removed, with
/// a `Host`, without one (HTTP/1.0), and over HTTP/2 (`:authority`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_forwarding_headers_never_reach_the_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = backend(0).await;
    let dir = test_dir("forwarded");
    let config = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\nhttp2 = true\n\n[upstream.app]\nservers = [\"{}\"]\n\n[[route]]\nupstream = \"app\"\n",
        b.addr
    );
    let p = proxy(&dir, &config).await;
    const SPOOFED: [(&str, &str); 9] = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Port", "8443"),
        ("X-Real-IP", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9;host=evil.example;proto=https"),
        ("X_Forwarded_For", "203.0.113.9"),
        ("X_Forwarded_Host", "evil.example"),
        ("x_real_ip", "203.0.113.9"),
    ];
    // What the upstream saw: exactly the proxy's own forwarding headers.
    let check = |what: &str, v: &serde_json::Value, host: Option<&str>| {
        let h = v["headers"].as_object().unwrap();
        let mut forwarding: Vec<&str> = h
            .keys()
            .map(String::as_str)
            .filter(|k| {
                let k = k.replace('_', "-");
                k.starts_with("x-forwarded") || k == "x-real-ip" || k == "forwarded"
            })
            .collect();
        forwarding.sort();
        let mut want = vec!["x-forwarded-for", "x-forwarded-proto", "x-real-ip"];
        if host.is_some() {
            want.insert(1, "x-forwarded-host");
        }
        assert_eq!(forwarding, want, "{what}: {h:?}");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{what}");
        assert_eq!(h["x-real-ip"], "127.0.0.1", "{what}");
        assert_eq!(h["x-forwarded-proto"], "http", "{what}");
        if let Some(host) = host {
            assert_eq!(h["x-forwarded-host"], host, "{what}");
        }
        println!("figure: {what}: upstream saw {forwarding:?}");
    };
    // HTTP/1.1 with a Host, and HTTP/1.0 without one: raw, so nothing adds a Host.
    for (what, first, host) in [
        (
            "HTTP/1.1 with Host",
            "GET /a HTTP/1.1\r\nHost: site.example\r\n",
            Some("site.example"),
        ),
        ("HTTP/1.0 without Host", "GET /a HTTP/1.0\r\n", None),
    ] {
        let mut raw = first.to_string();
        for (k, v) in SPOOFED {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("Connection: close\r\n\r\n");
        let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
            "{what}: {out}"
        );
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        check(what, &serde_json::from_str(body).unwrap(), host);
    }
    // HTTP/2 (prior knowledge): the host is the :authority.
    let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get("http://h2.example/a");
    for (k, v) in SPOOFED {
        req = req.header(k, v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    check("HTTP/2 with :authority", &json(&body), Some("h2.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("body");
    let p = proxy(&dir, &config(&addrs, "")).await;
    let c = client();
    let url = format!("http://{}/api/upload", p.addr());
    let ok = Request::post(&url)
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    let (status, _, body) = send(&c, ok).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["body_len"], 1000);
    let big = Request::post(&url)
        .body(Full::new(Bytes::from(vec![b'x'; 2000])))
        .unwrap();
    assert_eq!(send(&c, big).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // A chunked body (no Content-Length) is counted as it arrives.
    let chunks =
        futures_util::stream::iter((0..4).map(|_| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(vec![b'y'; 600])))
        }));
    let body = http_body_util::StreamBody::new(chunks);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(p.addr()).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/api/upload")
        .header("host", "x")
        .body(body)
        .unwrap();
    assert_eq!(
        sender.send_request(req).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_servers_are_retried_around_and_marked_failed() {
    let (bs, mut addrs) = backends(2).await;
    addrs.push(dead_addr());
    let dir = test_dir("dead");
    let p = proxy(&dir, &config(&addrs, "")).await;
    let c = client();
    for _ in 0..30 {
        // POST is not idempotent, but a failed connect sent nothing: it is retried too.
        let req = Request::post(format!("http://{}/api/x", p.addr()))
            .body(Full::new(Bytes::from("hi")))
            .unwrap();
        assert_eq!(send(&c, req).await.0, StatusCode::OK, "no request may fail");
    }
    let state = p.shared.load();
    let dead = &state.groups["app"].backends()[2];
    assert_eq!(
        dead.failures.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "tried until max_fails, then left out"
    );
    let served: usize = bs
        .iter()
        .map(|b| b.hits.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(served, 30);

    // A reload carries the upstream state over: an unchanged group whole,
    // a changed group for the servers it keeps. The dead server stays out.
    let reload = async |text: String| {
        let reply = p.reload(&text).await;
        assert!(reply.ok, "{:?}", reply.error);
    };
    let before = p.shared.load().groups["app"].clone();
    reload(config(&addrs, "") + "\n[[route]]\npath = \"/extra/\"\nrespond = 204\n").await;
    assert!(std::sync::Arc::ptr_eq(
        &before,
        &p.shared.load().groups["app"]
    ));
    let mut more = addrs.clone();
    more.push(bs[0].addr.to_string().replace("127.0.0.1", "127.0.0.2"));
    reload(config(&more, "")).await;
    let after = p.shared.load();
    let group = &after.groups["app"];
    assert!(!std::sync::Arc::ptr_eq(&before, group));
    assert_eq!(group.backends().len(), 4);
    assert!(std::sync::Arc::ptr_eq(
        &before.backends()[2],
        &group.backends()[2]
    ));
    assert!(!group.backends()[2].available(tokio::time::Instant::now()));
    for _ in 0..10 {
        let req = Request::post(format!("http://{}/api/x", p.addr()))
            .body(Full::new(Bytes::from("hi")))
            .unwrap();
        assert_eq!(send(&c, req).await.0, StatusCode::OK);
    }
    assert_eq!(
        group.backends()[2]
            .failures
            .load(std::sync::atomic::Ordering::Relaxed),
        2,
        "the dead server was not tried again after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_live_server_is_502_and_a_slow_one_504() {
    let dir = test_dir("down");
    let p = proxy(&dir, &config(&[dead_addr(), dead_addr()], "")).await;
    let c = client();
    let (status, _, _) = get(&c, &format!("http://{}/api/x", p.addr())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    // Both are now marked failed: the answer comes without trying.
    assert_eq!(
        get(&c, &format!("http://{}/api/x", p.addr())).await.0,
        StatusCode::BAD_GATEWAY
    );
    drop(p);

    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("slow");
    let p = proxy(&dir, &config(&addrs, "retries = 0")).await;
    let started = std::time::Instant::now();
    assert_eq!(
        get(&c, &format!("http://{}/slow", p.addr())).await.0,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "read_timeout is 500ms"
    );
    // Over a connection the pool kept (its timer kept across requests,
    // armed for the earlier request's deadline): the slow one still gets
    // its whole 500 ms, and no more. Twice: right after a fast request,
    // and once that request's deadline has passed.
    for pause in [0, 700] {
        assert_eq!(get(&c, &format!("http://{}/api/x", p.addr())).await.0, 200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let started = std::time::Instant::now();
        assert_eq!(
            get(&c, &format!("http://{}/slow", p.addr())).await.0,
            StatusCode::GATEWAY_TIMEOUT
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "after a pause of {pause} ms: {took:?} (read_timeout is 500ms)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_the_request_is_504_after_send_timeout() {
    // A server that accepts and never reads: the request body fills the
    // socket buffers and the write stalls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            kept.push(s);
        }
    });
    let dir = test_dir("send-timeout");
    let cfg = config(
        std::slice::from_ref(&addr),
        "send_timeout = \"500ms\"\nread_timeout = \"30s\"\nmax_fails = 0",
    )
    .replace("max_body = \"1k\"", "max_body = \"128M\"");
    let p = proxy(&dir, &cfg).await;
    let started = std::time::Instant::now();
    let req = Request::post(format!("http://{}/api/upload", p.addr()))
        .body(Full::new(Bytes::from(vec![b'x'; 64 << 20])))
        .unwrap();
    let (status, _, _) = send(&client(), req).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_after_503() {
    let (bs, addrs) = backends(2).await;
    let dir = test_dir("retry");
    let p = proxy(&dir, &config(&addrs, "max_fails = 0")).await;
    let c = client();
    // Backends answer /status/503 themselves: both fail, so the last answer stands.
    let (status, _, _) = get(&c, &format!("http://{}/status/503", p.addr())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let hits: usize = bs
        .iter()
        .map(|b| b.hits.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(hits, 2, "a GET after a 503 goes to the other server");
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/status/503", p.addr()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let hits: usize = bs
        .iter()
        .map(|b| b.hits.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(hits, 3, "a POST is not retried after a response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_tunnelled() {
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("ws");
    let p = proxy(&dir, &config(&addrs, "")).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..5 {
        ws.send(tokio_tungstenite::tungstenite::Message::text(format!(
            "hello {i}"
        )))
        .await
        .unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap(), format!("hello {i}"));
    }
    // The route's idle_timeout (2 s) closes a silent tunnel.
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed by the idle timeout");
    match closed {
        None | Some(Err(_)) => {}
        Some(Ok(m)) => assert!(m.is_close(), "expected the tunnel to close, got {m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_get_going_away_1001_at_the_end_of_the_grace_period() {
    use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("ws-away");
    let cfg = format!("[http]\ngrace_period = \"1s\"\n{}", config(&addrs, ""));
    let p = proxy(&dir, &cfg).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr()))
        .await
        .unwrap();
    // A message larger than one read is forwarded whole before the close.
    let big = "x".repeat(100_000);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap(), big);
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(p.shutdown());
    let closing = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed within the grace period and a bit")
        .expect("a frame")
        .expect("a clean frame");
    match closing {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close frame, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    stopping.await.unwrap();
}

/// nginx's `return 301 https://$host:8443$request_uri`: the redirect names
/// the configured HTTPS port, drops the port the request's Host carried, and
/// keeps the request target as sent (undecoded, unnormalised, with its query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_https_keeps_a_non_default_port_and_the_request_uri() {
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("redirect-port");
    let cfg = config(&addrs, "").replace(
        "redirect_https = true",
        "redirect_https = true\nredirect_https_port = 8443",
    );
    let p = proxy(&dir, &cfg).await;
    let c = client();
    for (host, target, bare) in [
        ("example.com:8080", "/login?next=/home&x=%2F", "example.com"),
        ("example.com", "/a/../b//c?q", "example.com"),
        ("[2001:db8::1]:8080", "/", "[2001:db8::1]"),
    ] {
        let req = Request::get(format!("http://{}{target}", p.addrs[1]))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, h, _) = send(&c, req).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{host}{target}");
        assert_eq!(
            h["location"],
            format!("https://{bare}:8443{target}"),
            "{host}{target}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_listener_and_graceful_drain() {
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("drain");
    let p = proxy(&dir, &config(&addrs, "read_timeout = \"5s\"")).await;
    let c = client();
    let req = Request::get(format!("http://{}/login?next=/home", p.addrs[1]))
        .header("host", "example.com:80")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, h, _) = send(&c, req).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], "https://example.com/login?next=/home");

    // A request in flight when shutdown starts still completes.
    let url = format!("http://{}/slow", p.addr());
    let inflight = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = p.addr();
    p.shutdown().await;
    assert_eq!(
        inflight.await.unwrap(),
        StatusCode::OK,
        "in-flight request finished during the drain"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_a_server_out_and_bring_it_back() {
    let (bs, mut addrs) = backends(1).await;
    let dead = dead_addr();
    addrs.push(dead.clone());
    let dir = test_dir("health");
    let extra = "max_fails = 0\nhealth_check = { path = \"/health\", interval = \"50ms\", timeout = \"200ms\", fails = 2, passes = 2 }";
    let p = proxy(&dir, &config(&addrs, extra)).await;
    let state = p.shared.load();
    let group = &state.groups["app"];
    let available = |i: usize| group.backends()[i].available(tokio::time::Instant::now());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        available(0) && !available(1),
        "the dead server failed its checks"
    );
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            get(&c, &format!("http://{}/api/x", p.addr())).await.0,
            StatusCode::OK
        );
    }
    let failures = group.backends()[1]
        .failures
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        failures, 0,
        "passive health is off: only the checks kept requests away"
    );
    assert_eq!(
        group.backends()[0]
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        20,
        "all went to the live one"
    );
    assert!(
        bs[0].hits.load(std::sync::atomic::Ordering::Relaxed) > 20,
        "and its checks reached it too"
    );
    // The server comes back: two passing checks later it takes requests again.
    let revived = backend_at(1, dead.parse().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(available(1), "back after passing checks");
    for _ in 0..10 {
        get(&c, &format!("http://{}/api/x", p.addr())).await;
    }
    assert!(
        revived.hits.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "it serves again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_as_json_with_upstream_timing() {
    let b = backend(0).await;
    let dir = test_dir("accesslog");
    let config = format!(
        r#"
[http]
access_log = "access.log"
access_log_format = "json"

[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{}"]

[[route]]
path = "/health"
upstream = "app"
access_log = false

[[route]]
upstream = "app"
"#,
        b.addr
    );
    let p = proxy(&dir, &config).await;
    let c = client();
    let req = Request::get(format!("http://{}/api/logged?a=1", p.addr()))
        .header("x-request-id", "log-me")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, req).await.0, StatusCode::OK);
    assert_eq!(
        get(&c, &format!("http://{}/health", p.addr())).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = std::fs::read_to_string(dir.join("access.log")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert_eq!(l["target"], "/api/logged?a=1");
    assert_eq!(l["status"], 200);
    assert_eq!(l["request_id"], "log-me");
    assert_eq!(l["upstream"], b.addr.to_string());
    assert!(l["upstream_time"].as_f64().unwrap() <= l["request_time"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (bs, addrs) = backends(1).await;
    let dir = test_dir("keepalive");
    let p = proxy(&dir, &config(&addrs, "keepalive = 4")).await;
    let c = client();
    for _ in 0..20 {
        let (status, _, body) = get(&c, &format!("http://{}/api/x", p.addr())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
    }
    assert_eq!(
        bs[0].conns.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one upstream connection for 20 sequential requests"
    );
    assert_eq!(p.shared.load().groups["app"].backends()[0].pool.idle(), 1);
    // keepalive = 0 keeps none: every request opens its own connection.
    let (bs, addrs) = backends(1).await;
    let dir = test_dir("nokeepalive");
    let p = proxy(&dir, &config(&addrs, "keepalive = 0")).await;
    for _ in 0..5 {
        assert_eq!(
            get(&c, &format!("http://{}/api/x", p.addr())).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(bs[0].conns.load(std::sync::atomic::Ordering::Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_keeps_its_upstream_connections_for_a_moment() {
    let (bs, addrs) = backends(1).await;
    let dir = test_dir("surplus");
    let p = proxy(
        &dir,
        &config(&addrs, "keepalive = 1\nread_timeout = \"5s\""),
    )
    .await;
    let c = client();
    let url = format!("http://{}/slow", p.addr());
    let idle = || p.shared.load().groups["app"].backends()[0].pool.idle();
    // Two waves of 6 requests in flight at once (each takes 2 s upstream).
    for wave in 0..2 {
        let answers = futures_util::future::join_all((0..6).map(|_| get(&c, &url))).await;
        assert!(answers.iter().all(|a| a.0 == StatusCode::OK), "wave {wave}");
        assert_eq!(idle(), 6, "wave {wave}: the burst's connections stay idle");
    }
    assert_eq!(
        bs[0].conns.load(std::sync::atomic::Ordering::Relaxed),
        6,
        "the second wave reused the first wave's connections"
    );
    // Idle for more than a second, they go down to keepalive, with no
    // request coming to trim them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(idle(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_responses_free_the_upstream_from_a_slow_client() {
    use tokio::io::AsyncWriteExt;
    for (buffer, freed) in [("64M", true), ("64k", false)] {
        let (_bs, addrs) = backends(1).await;
        let dir = test_dir("buffer");
        let text = config(&addrs, "").replace(
            "[upstream.app]",
            &format!("[http]\nresponse_buffer = \"{buffer}\"\n\n[upstream.app]"),
        );
        let p = proxy(&dir, &text).await;
        // A client that asks for 32 MB (more than the kernel buffers hold) and never reads.
        let mut slow = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        slow.write_all(b"GET /big/33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = p.shared.load().groups["app"].backends()[0].pool.idle();
        assert_eq!(
            idle == 1,
            freed,
            "response_buffer {buffer}: idle upstream connections {idle}"
        );
        drop(slow);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_responses_stay_within_the_budget() {
    let (bs, addrs) = backends(2).await;
    let dir = test_dir("budget");
    let p = proxy(&dir, &config(&addrs, "max_fails = 0")).await;
    let c = client();
    for _ in 0..40 {
        assert_eq!(
            get(&c, &format!("http://{}/status/503", p.addr())).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let hits: usize = bs
        .iter()
        .map(|b| b.hits.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    // Unbudgeted, every request would have been tried twice (80). The budget
    // holds a reserve of 10 and earns a fifth of a retry per request (8).
    assert!(
        (50..=58).contains(&hits),
        "{hits} upstream requests for 40 client requests"
    );
}

/// A body sent in pieces with pauses between them.
fn trickled(
    pieces: Vec<Bytes>,
) -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, std::io::Error>>,
> {
    http_body_util::StreamBody::new(futures_util::stream::unfold(
        pieces.into_iter(),
        |mut rest| async move {
            let piece = rest.next()?;
            tokio::time::sleep(Duration::from_millis(40)).await;
            Some((Ok(hyper::body::Frame::data(piece)), rest))
        },
    ))
}

/// Sends `req` and reads the backend's answer (status, JSON body), within 5 s.
async fn exchange<B>(
    sender: &mut hyper::client::conn::http1::SendRequest<B>,
    req: Request<B>,
) -> (StatusCode, serde_json::Value)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let within = Duration::from_secs(5);
    // The client connection takes the next request only once its task has
    // seen the last response end: without this wait a loaded machine sends
    // too early and hyper refuses ("connection was not ready"). A proxy
    // that closed the connection fails here.
    tokio::time::timeout(within, sender.ready())
        .await
        .unwrap()
        .expect("the connection stays open for the next request");
    let r = tokio::time::timeout(within, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = r.status();
    let body = tokio::time::timeout(within, http_body_util::BodyExt::collect(r.into_body()))
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, json(&body))
}

/// Request bodies wake the proxy only once they have arrived (the socket's
/// receive low-water mark follows what the body still owes): a body sent
/// in pieces, by length or in chunks, is forwarded whole, and the
/// connection then serves a plain request after it was parked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_in_pieces_are_forwarded_whole() {
    let (_bs, addrs) = backends(1).await;
    let dir = test_dir("pieces");
    let p = proxy(&dir, &config(&addrs, "")).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        tokio::net::TcpStream::connect(p.addr()).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    let pieces = |sizes: &[usize]| sizes.iter().map(|n| Bytes::from(vec![b'p'; *n])).collect();
    // Shorter and longer than the largest mark (16 KiB).
    for sizes in [&[1, 5000, 3][..], &[1, 5000, 3, 14997]] {
        let len: usize = sizes.iter().sum();
        let by_length = Request::post("/upload")
            .header("host", "x")
            .header("content-length", len)
            .body(trickled(pieces(sizes)))
            .unwrap();
        let (status, v) = exchange(&mut sender, by_length).await;
        assert_eq!((status, &v["body_len"]), (StatusCode::OK, &json!(len)));
    }
    let chunked = Request::post("/upload")
        .header("host", "x")
        .body(trickled(pieces(&[7, 30000, 1])))
        .unwrap();
    let (status, v) = exchange(&mut sender, chunked).await;
    assert_eq!((status, &v["body_len"]), (StatusCode::OK, &json!(30008)));
    // Idle past PARK_AFTER: the connection waits in the lot for its next head.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let get = Request::get("/after")
        .header("host", "x")
        .header("content-length", "0")
        .body(trickled(Vec::new()))
        .unwrap();
    let (status, v) = exchange(&mut sender, get).await;
    assert_eq!((status, &v["path"]), (StatusCode::OK, &json!("/after")));
}
