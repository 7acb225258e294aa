//! rampart's own HTTP/1 server (issue 17; the only one since hyper's was
//! removed): what it does beyond what the other suites check (they all
//! run against it): pipelined requests answered in order,
//! `Expect: 100-continue`, chunked request bodies forwarded, a head and
//! body split at every byte, HTTP/1.0 keep-alive, a WebSocket upgrade.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{backend, proxy, test_dir};

/// Proxies everything to `upstream`; `/r` answers itself without reading
/// a body. `http1 = "rampart"` names the only HTTP/1 server, and is still
/// accepted.
fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        "[http]\nhttp1 = \"rampart\"\n\n[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [upstream.app]\nservers = [\"{upstream}\"]\n\n\
         [[route]]\npath = \"/r\"\nrespond = 200\nbody = \"here\\n\"\n\n\
         [[route]]\nupstream = \"app\"\n"
    )
}

/// One response read from `s` (head and a `content-length` body): its
/// head, lower-cased, and its body.
async fn response(s: &mut TcpStream, pending: &mut Vec<u8>) -> (String, String) {
    let end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, pending).await;
    };
    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
    pending.drain(..end);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    while pending.len() < length {
        read_more(s, pending).await;
    }
    let body = String::from_utf8_lossy(&pending[..length]).into_owned();
    pending.drain(..length);
    (head, body)
}

async fn read_more(s: &mut TcpStream, pending: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    assert!(n > 0, "closed early: {}", String::from_utf8_lossy(pending));
    pending.extend_from_slice(&buf[..n]);
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let b = backend(0).await;
    let p = proxy(&test_dir("h1-pipeline"), &config(b.addr)).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    // Four requests in one write: a GET, a body by length, a chunked body
    // (with an extension and a trailer), one answered by the proxy itself
    // and the last closing.
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-T: v\r\n\r\n\
          POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz\
          GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (head, body) = response(&mut s, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        seen.push((head, body));
    }
    let paths: Vec<String> = [0, 1, 2, 4]
        .iter()
        .map(|&i| json(&seen[i].1)["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/d"]);
    assert_eq!(json(&seen[1].1)["body_len"], 5);
    // The chunked body arrived whole (its data, not its framing).
    assert_eq!(json(&seen[2].1)["body_len"], 7);
    assert_eq!(seen[3].1, "here\n");
    assert!(seen[4].0.contains("connection: close"), "{}", seen[4].0);
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty() && pending.is_empty(),
        "closed after the last"
    );
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_when_the_body_is_wanted() {
    let b = backend(0).await;
    let p = proxy(&test_dir("h1-continue"), &config(b.addr)).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n",
    )
    .await
    .unwrap();
    // The body is not sent until the 100 comes.
    let mut pending = Vec::new();
    let (head, _) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 100 continue"), "{head}");
    s.write_all(b"abcdef").await.unwrap();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(json(&body)["body_len"], 6);

    // A route that never reads the body answers without a 100, and the
    // connection closes (the client may or may not send the body).
    s.write_all(
        b"POST /r HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "here\n");
}

/// A proxied request declaring a body over the route's `max_body` is
/// refused from its head: 413 with no 100 first (nothing of the body is
/// asked for). The request comes without a header map
/// (`http::request_map`): its length is the parsed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_refused_without_a_100() {
    let b = backend(0).await;
    let config = format!(
        "[http]\nmax_body = \"1k\"\n\n[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [upstream.app]\nservers = [\"{}\"]\n\n[[route]]\nupstream = \"app\"\n",
        b.addr
    );
    let p = proxy(&test_dir("h1-declared"), &config).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    let (head, _) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    // Within the limit, the same route reads and forwards the body.
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(json(&body)["body_len"], 6);
}

/// A keep-alive exchange whose head and chunked body arrive in two
/// pieces, split at every byte, gives the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_split_at_every_byte_is_read_the_same() {
    let b = backend(0).await;
    let p = proxy(&test_dir("h1-split"), &config(b.addr)).await;
    let raw: &[u8] = b"POST /split?q=1 HTTP/1.1\r\nHost: x\r\nX-Long: abcdefgh\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    let mut pending = Vec::new();
    for at in 1..raw.len() {
        s.write_all(&raw[..at]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        s.write_all(&raw[at..]).await.unwrap();
        let (head, body) = response(&mut s, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "split at {at}: {head}");
        let v = json(&body);
        assert_eq!(v["path"], "/split", "split at {at}");
        assert_eq!(v["body_len"], 5, "split at {at}");
    }
    assert_eq!(b.conns.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_keep_alive_and_bad_bodies() {
    let b = backend(0).await;
    let p = proxy(&test_dir("h1-ten"), &config(b.addr)).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(b"GET /r HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response(&mut s, &mut pending).await;
    assert!(head.contains("connection: keep-alive"), "{head}");
    s.write_all(b"GET /r HTTP/1.0\r\n\r\n").await.unwrap();
    let (head, _) = response(&mut s, &mut pending).await;
    assert!(head.contains("connection: close"), "{head}");

    // A broken chunked body: 400, and the request after it never served.
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all)).await;
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 400"), "{all}");
    assert_eq!(all.matches("HTTP/1.1 ").count(), 1, "{all}");
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_tunnels_through_the_own_server() {
    let b = backend(0).await;
    let p = proxy(&test_dir("h1-ws"), &config(b.addr)).await;
    let url = format!("ws://{}/ws", p.addr());
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["one", "two"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
}

/// An upstream answering each request head on each connection with
/// `answer`, as written (hyper's server would lower-case the names).
async fn scripted(answer: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// An upstream's head reaches an HTTP/1 client as the upstream wrote it
/// (its lines' order and names' case), less its hop-by-hop headers, with
/// the proxy's request id in place of its own and a date; on a kept
/// connection, request after request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_head_is_forwarded_as_it_came_with_the_proxys_edits() {
    let up = scripted(
        b"HTTP/1.1 200 OK\r\nX-Mixed-Case: A\r\nConnection: keep-alive, X-Hop\r\nX-Hop: h\r\n\
          X-Request-Id: theirs\r\nKeep-Alive: timeout=5\r\nContent-Type: text/plain\r\n\
          Content-Length: 2\r\n\r\nok",
    )
    .await;
    let p = proxy(&test_dir("h1-forwarded-head"), &config(up)).await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            read_more(&mut s, &mut pending).await;
        };
        while pending.len() < end + 2 {
            read_more(&mut s, &mut pending).await;
        }
        let head = String::from_utf8_lossy(&pending[..end]).into_owned();
        assert_eq!(&pending[end..end + 2], b"ok");
        pending.drain(..end + 2);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nX-Mixed-Case: A\r\nContent-Type: text/plain\r\n"),
            "{head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("x-hop") && !lower.contains("keep-alive"),
            "{head}"
        );
        assert!(!lower.contains("theirs"), "{head}");
        assert_eq!(lower.matches("\r\nx-request-id: ").count(), 1, "{head}");
        assert_eq!(
            lower.matches("\r\ncontent-length: 2\r\n").count(),
            1,
            "{head}"
        );
        assert_eq!(lower.matches("\r\ndate: ").count(), 1, "{head}");
    }
}
