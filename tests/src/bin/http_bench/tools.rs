//! Load generators, the backend, and certificates.

use std::{convert::Infallible, net::SocketAddr, path::Path, process::Command};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::rt::TokioIo;

/// A fixed-response backend on a thread of its own; returns its address.
pub fn backend() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"hello world\n\n",
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    addr
}

pub fn certs(dir: &Path) {
    tests::certs::self_signed(dir, "site");
    // HAProxy wants the certificate and key in one file.
    let pem = [
        std::fs::read(dir.join("site.crt")).unwrap(),
        std::fs::read(dir.join("site.key")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("site.pem"), pem).unwrap();
}

pub struct Wrk {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn wrk(url: &str, conns: u32, secs: u64) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0));
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .map_or(f64::NAN, |v| to_ms(v.trim()))
    };
    Wrk {
        rps,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
    }
}

fn to_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// Runs h2load; returns requests per second.
pub fn h2load(url: &str, args: &[&str]) -> f64 {
    let out = Command::new("h2load")
        .args(args)
        .arg(url)
        .output()
        .expect("h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|s| s.trim().strip_suffix(" req/s"))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}
