//! Upstream servers on Unix sockets (`unix:/run/app.sock`, nginx `server
//! unix:...;`), as Uvicorn (`--uds`) and Gunicorn are often run: requests,
//! least_conn between sockets, keep-alive, WebSockets and active health
//! checks work as they do over TCP.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use hyper::{StatusCode, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::UnixListener, sync::oneshot};

use crate::support::{answer, client, get, json, proxy, test_dir};

/// The support backend (`support::answer`), served over HTTP/1.1 on a
/// Unix socket at `path` until dropped.
struct SocketBackend {
    hits: Arc<AtomicUsize>,
    conns: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

fn socket_backend(id: usize, path: &Path) -> SocketBackend {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let (counter, accepted) = (hits.clone(), conns.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => a.unwrap(),
                _ = &mut stopped => return,
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    answer(id, req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    SocketBackend {
        hits,
        conns,
        _stop: stop,
    }
}

fn config(sockets: &[PathBuf], extra: &str) -> String {
    let servers: Vec<String> = sockets
        .iter()
        .map(|p| format!("\"unix:{}\"", p.display()))
        .collect();
    format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [upstream.app]\nbalance = \"least_conn\"\nservers = [{}]\n{extra}\n\n\
         [[route]]\nupstream = \"app\"\n",
        servers.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_least_conn_keepalive_and_websockets_over_unix_sockets() {
    let dir = test_dir("unix");
    let sockets = [dir.join("a.sock"), dir.join("b.sock")];
    let bs = [
        socket_backend(1, &sockets[0]),
        socket_backend(2, &sockets[1]),
    ];
    let p = proxy(&dir, &config(&sockets, "")).await;
    let c = client();
    let base = format!("http://{}", p.addr());
    for _ in 0..20 {
        let (status, _, body) = get(&c, &format!("{base}/api/items?q=1")).await;
        assert_eq!(status, StatusCode::OK);
        let v = json(&body);
        assert_eq!(v["path"], "/api/items");
        assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(v["headers"]["host"], p.addr().to_string());
    }
    let hits: Vec<usize> = bs.iter().map(|b| b.hits.load(Ordering::Relaxed)).collect();
    assert_eq!(hits.iter().sum::<usize>(), 20);
    // Idle servers take turns under least_conn, per worker thread.
    assert!(hits.iter().all(|&h| (5..=15).contains(&h)), "{hits:?}");
    // Keep-alive: the connections to the sockets are reused.
    let conns: usize = bs.iter().map(|b| b.conns.load(Ordering::Relaxed)).sum();
    assert!(conns <= 6, "{conns} connections for 20 sequential requests");
    // The views name the socket as written.
    let state = p.shared.load();
    let names: Vec<String> = state.groups["app"]
        .backends()
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    assert_eq!(
        names,
        sockets
            .iter()
            .map(|s| format!("unix:{}", s.display()))
            .collect::<Vec<_>>()
    );
    // A WebSocket is tunnelled to the socket's server.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr()))
        .await
        .unwrap();
    ws.send("over a socket".into()).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "over a socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_socket_out_and_bring_it_back() {
    let dir = test_dir("unix-health");
    let sockets = [dir.join("a.sock"), dir.join("b.sock")];
    let a = socket_backend(1, &sockets[0]);
    let b = socket_backend(2, &sockets[1]);
    let extra = "max_fails = 0\n\n[upstream.app.health_check]\npath = \"/health\"\n\
                 interval = \"100ms\"\ntimeout = \"1s\"\nfails = 2\npasses = 1";
    let p = proxy(&dir, &config(&sockets, extra)).await;
    let c = client();
    let url = format!("http://{}/x", p.addr());
    let state = p.shared.load();
    let group = state.groups["app"].clone();
    let is = |i: usize, want: &str| group.backends()[i].state(tokio::time::Instant::now()) == want;
    // b's server goes away, its socket file with it (as when Uvicorn stops).
    drop(b);
    std::fs::remove_file(&sockets[1]).unwrap();
    wait_for(|| is(1, "down"), "the dead socket taken out").await;
    assert!(is(0, "up"));
    let before = a.hits.load(Ordering::Relaxed);
    for _ in 0..10 {
        let (status, _, body) = get(&c, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["id"], 1, "only the live socket answers");
    }
    assert!(a.hits.load(Ordering::Relaxed) >= before + 10);
    // A new server on the same path passes the check and takes requests again.
    let b = socket_backend(2, &sockets[1]);
    wait_for(|| is(1, "up"), "the socket back in rotation").await;
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await.0, StatusCode::OK);
    }
    assert!(
        b.hits.load(Ordering::Relaxed) >= 3,
        "b takes its share again"
    );
}

async fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
