//! What the proxy does with an upstream's framing (issue 17: rampart's own
//! HTTP/1 client): connections reused across requests, and a response
//! whose framing is broken or suspect answered 502 (or forwarded with its
//! `Content-Length` dropped) on a connection that is then closed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client, get, proxy, test_dir};

/// A server answering by path, in pieces a few milliseconds apart, on
/// keep-alive connections; counts the connections it was given.
async fn scripted() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).to_string();
                    seen.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let pieces: &[&[u8]] = match path.as_str() {
                        "/both" => &[
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
                            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                        ],
                        "/bad-chunk" => &[
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n",
                        ],
                        "/odd" => &[
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3",
                            b"\r\nabc\r",
                            b"\n4;x=y\r\ndefg\r\n",
                            b"0\r\n",
                            b"\r\n",
                        ],
                        // The server dies half-way through its body.
                        "/cut" => &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"],
                        _ => &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
                    };
                    for piece in pieces {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    if path == "/cut" {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn config(server: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{server}"]
max_fails = 0
read_timeout = "2s"

[[route]]
path = "/"
upstream = "app"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_bodies_in_odd_reads_arrive_whole() {
    let (server, accepted) = scripted().await;
    let p = proxy(&test_dir("up-reuse"), &config(&server)).await;
    let c = client();
    for _ in 0..3 {
        let (status, _, body) = get(&c, &format!("http://{}/ok", p.addr())).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
        let (status, _, body) = get(&c, &format!("http://{}/odd", p.addr())).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"abcdefg"[..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for six");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunk_is_502_and_its_connection_is_not_reused() {
    let (server, accepted) = scripted().await;
    let p = proxy(&test_dir("up-bad-chunk"), &config(&server)).await;
    let c = client();
    let (status, _, _) = get(&c, &format!("http://{}/bad-chunk", p.addr())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _, body) = get(&c, &format!("http://{}/ok", p.addr())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a new connection after the fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_beside_chunked_is_not_forwarded_and_the_connection_closes() {
    let (server, accepted) = scripted().await;
    let p = proxy(&test_dir("up-te-cl"), &config(&server)).await;
    let c = client();
    let (status, headers, body) = get(&c, &format!("http://{}/both", p.addr())).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_ne!(
        headers.get("content-length").map(|v| v.as_bytes()),
        Some(&b"3"[..]),
        "the upstream's length is not passed on"
    );
    get(&c, &format!("http://{}/ok", p.addr())).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// A worker killed between its response head and its body (uvicorn writes
/// them apart): nothing reached the client yet, so an idempotent request
/// goes to another server instead of becoming a 502 (CI's reliability
/// suite caught one in 8,660 requests while a worker was killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_request_whose_body_is_cut_goes_to_another_server() {
    let (cutting, accepted) = scripted().await;
    let good = crate::support::backend(1).await;
    let cfg = format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{cutting}", "{}"]
max_fails = 0
read_timeout = "2s"

[[route]]
path = "/"
upstream = "app"
"#,
        good.addr
    );
    let p = proxy(&test_dir("up-cut"), &cfg).await;
    let c = client();
    for i in 0..4 {
        let (status, _, _) = get(&c, &format!("http://{}/cut", p.addr())).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
    }
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the cutting server was tried"
    );
    assert_eq!(good.hits.load(Ordering::SeqCst), 4);
}
