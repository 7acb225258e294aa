//! nginx's `return 444` (issue 16, "Server blocks"): a default server with
//! `respond = 444` refuses an unknown host by closing without an answer.
//! An HTTP/1.1 client reads end-of-file and not one byte; an HTTP/2
//! client's stream is reset (INTERNAL_ERROR, as nginx does) while the
//! connection serves its other streams. The request is still in the
//! access log with status 444 and counted in the route's 4xx.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{proxy, test_dir};

const CONFIG: &str = r#"
[http]
access_log = "access.log"

[[listener]]
bind = "127.0.0.1:0"
http2 = true

[[server]]
server_name = ["a.test"]
[[server.route]]
respond = 200
body = "a"

[[server]]
default_server = true
[[server.route]]
respond = 444
"#;

/// `head` on a new connection: every byte answered until the server
/// closes, within 5 s (a reset counts as closed; what came before is kept).
async fn raw(addr: SocketAddr, head: &str) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("closed within 5 s");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_444_closes_without_an_answer() {
    let dir = test_dir("close-444");
    let p = proxy(&dir, CONFIG).await;
    let unknown = "GET /x?y=1 HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n";
    let got = raw(p.addr(), unknown).await;
    assert!(
        got.is_empty(),
        "an unknown host: no bytes, got {:?}",
        String::from_utf8_lossy(&got)
    );
    let got = raw(
        p.addr(),
        "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "a.test: {text}");
    println!("figure: HTTP/1.1 unknown host: 0 bytes then EOF; a.test: 200");

    // HTTP/2 (h2c): the unknown host's stream is reset, the connection
    // goes on serving the known one.
    let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let get = |host: &str| {
        Request::get(format!("http://{host}/h2"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let err = sender
        .send_request(get("unknown.test"))
        .await
        .expect_err("an unknown host's stream is reset");
    let chain = format!("{err:?}");
    assert!(
        chain.contains("Reset") && chain.contains("INTERNAL_ERROR"),
        "RST_STREAM with INTERNAL_ERROR: {chain}"
    );
    for _ in 0..2 {
        sender.ready().await.expect("the connection is still open");
        let resp = sender.send_request(get("a.test")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    println!("figure: HTTP/2 unknown host: {chain}; a.test on the same connection: 200");

    // Logged as nginx logs it: status 444, 0 bytes.
    let log = dir.join("access.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(" 444 "))
            .map(str::to_string)
            .collect();
        if lines.len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lines.len(), 2, "two 444 lines: {lines:?}");
    assert!(
        lines[0].contains("\"GET /x?y=1 HTTP/1.1\" 444 0 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /h2 HTTP/2.0\" 444 0 "),
        "{}",
        lines[1]
    );
    // Counted: the default server's route has the two 4xx.
    let stats = p
        .ok(proxy_user::control_socket::protocol::Request::Stats)
        .await;
    let fourxx: u64 = stats["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["4xx"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(fourxx, 2, "{stats}");
}
