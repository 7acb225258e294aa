//! The admin listener (issue 13): it answers only to a `Host` naming it
//! (DNS rebinding), and `/status.json` is a snapshot built at most once per
//! 500 ms, however many requests come.

use std::{
    collections::HashSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use proxy_user::admin::STATUS_FRESH;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{Proxy, proxy, test_dir};

const CONFIG: &str = "[admin]\nbind = \"127.0.0.1:0\"\nallowed_hosts = [\"rampart.internal\"]\n\n\
                      [[listener]]\nbind = \"127.0.0.1:0\"\n\n[[route]]\nrespond = 200\n";

/// The daemon with its admin listener; where that listens.
async fn admin_listener() -> (Proxy, SocketAddr) {
    let p = proxy(&test_dir("admin"), CONFIG).await;
    let addr = p.handle().admin().expect("an admin listener");
    (p, addr)
}

/// One HTTP/1.1 request with `host` (none: an HTTP/1.0 request without
/// one); returns the status and the body.
async fn get(addr: SocketAddr, path: &str, host: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = match host {
        Some(h) => format!("GET {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        None => format!("GET {path} HTTP/1.0\r\n\r\n"),
    };
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("answered within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn admin_answers_only_hosts_that_name_it() {
    let (_p, addr) = admin_listener().await;
    let port = addr.port();
    for path in ["/status.json", "/metrics", "/"] {
        for host in [
            "attacker.example".to_string(),
            format!("attacker.example:{port}"),
            format!("localhost.attacker.example:{port}"),
            format!("10.0.0.1:{port}"),
        ] {
            let (status, _) = get(addr, path, Some(&host)).await;
            assert_eq!(status, 421, "{path} with Host: {host}");
        }
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            "rampart.internal".to_string(),
        ] {
            let (status, _) = get(addr, path, Some(&host)).await;
            assert_eq!(status, 200, "{path} with Host: {host}");
        }
        assert_eq!(get(addr, path, None).await.0, 200, "{path} without Host");
    }
    println!(
        "figure: Host attacker.example -> 421; localhost, 127.0.0.1, [admin] allowed_hosts -> 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_is_built_at_most_once_per_500ms() {
    let (_p, addr) = admin_listener().await;
    let host = format!("127.0.0.1:{}", addr.port());
    let started = Instant::now();
    let mut bodies = HashSet::new();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        let batch: Vec<_> = (0..20)
            .map(|_| {
                let host = host.clone();
                tokio::spawn(async move { get(addr, "/status.json", Some(&host)).await })
            })
            .collect();
        for t in batch {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, 200);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            bodies.insert(v["time_ms"].as_u64().unwrap());
            n += 1;
        }
    }
    let elapsed = started.elapsed();
    // A new snapshot at most once per STATUS_FRESH (plus the first).
    let most = (elapsed.as_millis() / STATUS_FRESH.as_millis()) as usize + 1;
    println!(
        "figure: {n} requests in {elapsed:?} were answered from {} snapshot(s) (at most {most})",
        bodies.len()
    );
    assert!(
        bodies.len() <= most,
        "{} snapshots for {n} requests in {elapsed:?}",
        bodies.len()
    );
}
