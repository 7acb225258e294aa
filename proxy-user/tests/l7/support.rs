//! Test support: backends and a proxy in this process, on 127.0.0.1:0.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_user::{
    config::Config,
    daemon,
    http::{Shared, State},
    server,
};
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot};

/// A backend that answers with what it received, as JSON, tagged with its id.
/// `/slow` waits 2 s, `/status/N` answers N, `/big/N` sends N bytes, `/ws` is a WebSocket echo.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

pub async fn backend(id: usize) -> Backend {
    backend_at(id, "127.0.0.1:0".parse().unwrap()).await
}

/// As [`backend`], on a given address.
pub async fn backend_at(id: usize, addr: SocketAddr) -> Backend {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let counter = hits.clone();
    let accepted = conns.clone();
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
    Backend {
        addr,
        hits,
        conns,
        _stop: stop,
    }
}

pub async fn answer(
    id: usize,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/ws" {
        let key = req.headers().get("sec-websocket-key").cloned().unwrap();
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let io = TokioIo::new(upgrade.await.unwrap());
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                io,
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() || msg.is_binary() {
                    let _ = ws.send(msg).await;
                }
            }
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let Some(n) = path.strip_prefix("/big/") {
        return Ok(Response::new(Full::new(Bytes::from(vec![
            b'b';
            n.parse()
                .unwrap()
        ]))));
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(Full::new(Bytes::from(format!("backend {id} says {code}"))));
        *r.status_mut() = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return Ok(r);
    }
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let v = json!({ "id": id, "method": method, "path": path, "query": query, "headers": headers, "body_len": body });
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("connection", "keep-alive".parse().unwrap());
    Ok(r)
}

/// The proxy, serving a configuration, until dropped.
pub struct Proxy {
    pub addrs: Vec<SocketAddr>,
    pub shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub dir: PathBuf,
}

impl Proxy {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Stops accepting and waits for in-flight requests (the grace period).
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.take().unwrap().await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for a test's files (config, static root, certificates).
pub fn test_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-l7-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the proxy on `config` (TOML, written to `dir/rampart.toml`).
pub async fn proxy(dir: &Path, config: &str) -> Proxy {
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config).unwrap();
    let cfg = Arc::new(Config::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let listeners = daemon::bind_all(&cfg).unwrap();
    let addrs = listeners.iter().map(|l| l.local_addr()).collect();
    let shared = Shared::new(State::build(cfg, None));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listeners, shared.clone(), async move {
        let _ = stopped.await;
    }));
    Proxy {
        addrs,
        shared,
        stop: Some(stop),
        task: Some(task),
        dir: dir.to_path_buf(),
    }
}

pub type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A simple GET; returns status, headers and body.
pub async fn get(client: &Client, url: &str) -> (StatusCode, hyper::HeaderMap, Bytes) {
    send(
        client,
        Request::get(url).body(Full::new(Bytes::new())).unwrap(),
    )
    .await
}

pub async fn send(
    client: &Client,
    req: Request<Full<Bytes>>,
) -> (StatusCode, hyper::HeaderMap, Bytes) {
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

pub fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}
