//! Request bodies: `body_timeout` between reads (HTTP/1.1 and HTTP/2
//! streams), and no upstream phase that waits without a timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode, body::Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use proxy_user::http::budget::REQUEST_STATE;

use crate::support::{backend, proxy, test_dir};

/// One plain listener (HTTP/2 by prior knowledge too) proxying everything
/// to `upstream`, with `extra` lines in `[http]`.
fn config(upstream: &str, http: &str, listener: &str) -> String {
    format!(
        "[http]\n{http}\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\nhttp2 = true\n{listener}\n\
         [upstream.app]\nservers = [\"{upstream}\"]\nread_timeout = \"1s\"\n\
         [[route]]\nupstream = \"app\"\n"
    )
}

/// Reads until the proxy closes the connection; panics if it has not
/// within 5 s (it would hang without a body timeout).
async fn answer_then_close(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all)).await;
    r.expect("the proxy answered and closed within 5 s, not hanging")
        .expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

/// A body that announces 100000 bytes, sends one and stops: 408 and the
/// connection closed, at `body_timeout` after the last read.
async fn stalled_body(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_gets_408_at_body_timeout_and_is_closed() {
    let b = backend(0).await;
    let dir = test_dir("body-timeout");
    let p = proxy(
        &dir,
        &config(&b.addr.to_string(), "body_timeout = \"1s\"", ""),
    )
    .await;
    let started = Instant::now();
    let mut s = stalled_body(p.addr()).await;
    let got = answer_then_close(&mut s).await;
    let took = started.elapsed();
    println!(
        "figure: 408 after {:.2} s (body_timeout 1 s)",
        took.as_secs_f64()
    );
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A body that keeps coming, slower than `body_timeout` in all but faster
/// between reads, is not cut, including while the socket's low-water mark
/// holds its bytes back (fewer than the 16 KiB mark arrive per timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_coming_is_not_cut() {
    let b = backend(0).await;
    let dir = test_dir("body-trickle");
    let p = proxy(
        &dir,
        &config(&b.addr.to_string(), "body_timeout = \"1s\"", ""),
    )
    .await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // 10 pieces of 10 bytes, 300 ms apart: 3 s in all.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(&[b'y'; 10]).await.unwrap();
    }
    let got = answer_then_close(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"body_len\":100"), "{got}");
}

/// With `max_connections` taken by stalled bodies, the listener used to be
/// locked for as long as they liked; now they are cut at `body_timeout`
/// and a legitimate client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_cannot_lock_a_listener_out() {
    let b = backend(0).await;
    let dir = test_dir("body-lockout");
    let p = proxy(
        &dir,
        &config(
            &b.addr.to_string(),
            "body_timeout = \"1s\"",
            "max_connections = 3",
        ),
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(stalled_body(p.addr()).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut legit = TcpStream::connect(p.addr()).await.unwrap();
    legit
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = answer_then_close(&mut legit).await;
    println!(
        "figure: legitimate client served after {:.2} s with 3 of 3 connections stalled",
        started.elapsed().as_secs_f64()
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    for mut s in slow {
        let got = answer_then_close(&mut s).await;
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    }
}

type ChannelBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A request body fed by the returned sender; it ends when the sender is dropped.
pub fn channel_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok(Frame::data(data)), rx))
    });
    (tx, http_body_util::StreamBody::new(frames).boxed())
}

/// An HTTP/2 stream whose body stops gets 408 on that stream; the
/// connection's other streams go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_whose_body_stops_gets_408_and_the_connection_goes_on() {
    let b = backend(0).await;
    let dir = test_dir("body-timeout-h2");
    let p = proxy(
        &dir,
        &config(&b.addr.to_string(), "body_timeout = \"1s\"", ""),
    )
    .await;
    let stream = TcpStream::connect(p.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // One DATA frame, then nothing (the sender is kept, so the stream stays open).
    let (tx, body) = channel_body();
    tx.send(Bytes::from_static(b"x")).unwrap();
    let stalled = Request::post("http://x/upload")
        .header("content-length", "100000")
        .body(body)
        .unwrap();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(stalled))
        .await
        .expect("answered within 5 s, not hanging")
        .unwrap();
    let took = started.elapsed();
    println!(
        "figure: HTTP/2 stream 408 after {:.2} s (body_timeout 1 s)",
        took.as_secs_f64()
    );
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // The same connection serves the next stream.
    let (tx2, body) = channel_body();
    drop(tx2);
    let next = Request::get("http://x/next").body(body).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(next))
        .await
        .expect("the next stream is answered")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(tx);
}

/// An upstream that sends a response head and part of a streamed body,
/// then nothing: the client's response is cut at the upstream's
/// `read_timeout` after its last bytes, instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_mid_body_is_cut_at_read_timeout() {
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = up.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        // Larger than response_buffer (64k): streamed.
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst bytes")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let dir = test_dir("upstream-body-stall");
    let p = proxy(&dir, &config(&up_addr.to_string(), "", "")).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = answer_then_close(&mut s).await;
    println!(
        "figure: streamed response cut {:.2} s after the upstream stalled (read_timeout 1 s)",
        started.elapsed().as_secs_f64()
    );
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("first bytes"), "{got}");
}

/// Past `body_memory` (the whole process's request body memory) a body
/// gets 503 and its connection closes; the memory comes back when the
/// bodies holding it end, and the next body is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_process_budget_get_503_and_the_memory_comes_back() {
    let b = backend(0).await;
    let dir = test_dir("body-budget");
    let p = proxy(
        &dir,
        &config(
            &b.addr.to_string(),
            "body_timeout = \"2s\"\nbody_memory = \"140k\"",
            "",
        ),
    )
    .await;
    // 60000 bytes of a 200000-byte body: its buffer (doubled to have room
    // for the next 16k) takes 128k, its request 12k more.
    let mut holder = TcpStream::connect(p.addr()).await.unwrap();
    holder
        .write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
        .await
        .unwrap();
    holder.write_all(&[b'h'; 60_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let held = p.shared.load().bodies.used();
    assert_eq!(held, (128 << 10) + REQUEST_STATE);
    let post = b"POST /y HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
    let mut refused = TcpStream::connect(p.addr()).await.unwrap();
    refused.write_all(post).await.unwrap();
    let got = answer_then_close(&mut refused).await;
    println!("figure: {}", got.lines().next().unwrap_or(""));
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("connection: close"), "{got}");
    // The holder times out; its memory comes back.
    let got = answer_then_close(&mut holder).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert_eq!(p.shared.load().bodies.used(), 0);
    let mut served = TcpStream::connect(p.addr()).await.unwrap();
    served
        .write_all(b"POST /y HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")
        .await
        .unwrap();
    let got = answer_then_close(&mut served).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(p.shared.load().bodies.used(), 0);
}

/// Past `body_memory_per_connection`, an HTTP/2 stream gets 503 (the
/// connection's other streams go on), rather than waiting, unread, in the
/// connection's flow-control window; the share comes back when the body
/// holding it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_past_the_connections_share_get_503() {
    let b = backend(0).await;
    let dir = test_dir("body-conn-budget");
    let p = proxy(
        &dir,
        &config(
            &b.addr.to_string(),
            "body_timeout = \"5s\"\nmax_body = \"64k\"\nbody_memory_per_connection = \"64k\"",
            "",
        ),
    )
    .await;
    let stream = TcpStream::connect(p.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    // No declared length: the stream takes the route's max_body, all 64k.
    let (tx1, body1) = channel_body();
    tx1.send(Bytes::from(vec![b'1'; 30_000])).unwrap();
    let first =
        tokio::spawn(sender.send_request(Request::post("http://x/one").body(body1).unwrap()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx2, body2) = channel_body();
    tx2.send(Bytes::from(vec![b'2'; 100])).unwrap();
    drop(tx2);
    let second = Request::post("http://x/two").body(body2).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(second))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(tx1);
    let resp = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("answered")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(crate::support::json(&body)["body_len"], 30_000);
    // The share is back: the next body on the connection is served.
    let (tx3, body3) = channel_body();
    tx3.send(Bytes::from(vec![b'3'; 100])).unwrap();
    drop(tx3);
    let third = Request::post("http://x/three").body(body3).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(third))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(p.shared.load().bodies.used(), 0);
}

/// The body settings are checked where they are written, and a
/// connection's share is never below a body a route accepts.
#[test]
fn body_settings_are_checked_at_their_line_and_column() {
    use proxy_user::config::Config;
    let parse = |text: &str| Config::parse(text, std::path::Path::new("rampart.toml"));
    let err = |text: &str| parse(text).unwrap_err().to_string();
    assert_eq!(
        err("[http]\nbody_timeout = \"0s\"\n"),
        "rampart.toml:2:16: body_timeout must be between 1ms and 86400s"
    );
    assert_eq!(
        err("[http]\nbody_timeout = \"2d\"\n"),
        "rampart.toml:2:16: `2d` is too long: the maximum is 1d"
    );
    assert_eq!(
        err("[http]\nbody_memory = \"65G\"\n"),
        "rampart.toml:2:15: body_memory must be between 1 and 64G"
    );
    assert_eq!(
        err("[http]\nbody_memory_per_connection = \"0\"\n"),
        "rampart.toml:2:30: body_memory_per_connection must be between 1 and 64G"
    );
    let c = parse("[[route]]\npath = \"/up/\"\nrespond = 200\nmax_body = \"10M\"\n").unwrap();
    assert_eq!(c.http.body_timeout, Duration::from_secs(60));
    assert_eq!(c.http.body_memory, 256 << 20);
    assert_eq!(
        c.http.body_memory_per_connection,
        10 << 20,
        "raised to max_body"
    );
}

/// Streams that grow their bodies together never wait on each other:
/// four 35 kB bodies on a connection whose share fits two (of the 64k
/// `max_body`) are answered at once, two served and two refused with 503.
/// Taken piece by piece as the buffers grew (the first design), the four
/// held 32k each, all waited for more, and all got 408 after body_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_sharing_a_connection_never_wait_on_each_other() {
    let b = backend(0).await;
    let dir = test_dir("body-conn-share");
    let p = proxy(
        &dir,
        &config(
            &b.addr.to_string(),
            "body_timeout = \"3s\"\nmax_body = \"64k\"\nbody_memory_per_connection = \"128k\"",
            "",
        ),
    )
    .await;
    let stream = TcpStream::connect(p.addr()).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut senders = Vec::new();
    let mut answers = Vec::new();
    for i in 0..4 {
        let (tx, body) = channel_body();
        tx.send(Bytes::from(vec![b'a'; 5_000])).unwrap();
        let req = Request::post(format!("http://x/{i}")).body(body).unwrap();
        let mut sender = sender.clone();
        answers.push(tokio::spawn(async move { sender.send_request(req).await }));
        senders.push(tx);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for tx in senders {
        let _ = tx.send(Bytes::from(vec![b'b'; 30_000]));
    }
    let started = Instant::now();
    let mut statuses = Vec::new();
    for a in answers {
        let resp = tokio::time::timeout(Duration::from_secs(10), a)
            .await
            .expect("answered")
            .unwrap()
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == StatusCode::OK {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(crate::support::json(&body)["body_len"], 35_000);
        }
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no stream waited for body_timeout"
    );
    assert_eq!(p.shared.load().bodies.used(), 0);
}
