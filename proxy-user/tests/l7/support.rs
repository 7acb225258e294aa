//! Test support: backends and the daemon in this process, on 127.0.0.1:0.

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
    control_socket::protocol::{self, Reply},
    daemon::{Daemon, Handle, Io},
    http::SharedState,
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
    r.headers_mut()
        .insert("x-powered-by", "test-backend".parse().unwrap());
    Ok(r)
}

/// The whole daemon in this process, serving a configuration, until
/// dropped: [`Daemon::start`] with the userspace gate (no privilege), its
/// state file in the test's directory, one worker (so that upstream
/// keep-alive pools are one per proxy, as the tests count them).
pub struct Proxy {
    pub addrs: Vec<SocketAddr>,
    pub shared: SharedState,
    handle: Option<Handle>,
    /// The configuration file, which `Request::Reload` re-reads.
    pub path: PathBuf,
    pub dir: PathBuf,
}

impl Proxy {
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn handle(&self) -> &Handle {
        self.handle.as_ref().expect("running")
    }

    /// A control request, as `rampart` would send it.
    pub async fn command(&self, request: protocol::Request) -> Reply {
        self.handle().command(request).await
    }

    /// A control request that must succeed; its data.
    pub async fn ok(&self, request: protocol::Request) -> serde_json::Value {
        let shown = format!("{request:?}");
        let reply = self.command(request).await;
        assert!(reply.ok, "{shown}: {:?}", reply.error);
        reply.data
    }

    /// Writes a new configuration file and reloads it, as `rampart reload` does.
    pub async fn reload(&self, config: &str) -> Reply {
        std::fs::write(&self.path, hermetic(&self.dir, config)).unwrap();
        self.command(protocol::Request::Reload).await
    }

    /// Stops accepting and waits for in-flight requests (the grace period).
    pub async fn shutdown(mut self) {
        let handle = self.handle.take().unwrap();
        handle.shutdown(None).await.unwrap();
    }

    /// As [`Proxy::shutdown`], with another grace period; how long it took.
    pub async fn shutdown_within(mut self, grace: Duration) -> Duration {
        let started = std::time::Instant::now();
        let handle = self.handle.take().unwrap();
        handle.shutdown(Some(grace)).await.unwrap();
        started.elapsed()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the handle stops the daemon (nobody could otherwise).
        drop(self.handle.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for a test's files (config, static root, certificates).
/// A [`Proxy`] removes its directory when it drops; every directory made
/// here is also removed when the test binary exits, a failed run included
/// (the harness exits through `exit`, which runs `atexit` handlers), so
/// tests that keep files without a `Proxy`, or panic first, leave nothing.
pub fn test_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-l7-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    remove_at_exit(dir.clone());
    dir
}

fn remove_at_exit(dir: PathBuf) {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    static HOOK: std::sync::Once = std::sync::Once::new();
    extern "C" fn remove_all() {
        let dirs = DIRS.lock().map(|d| d.clone()).unwrap_or_default();
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    // SAFETY: registers a plain function with no arguments; it only
    // removes directories this binary made.
    HOOK.call_once(|| unsafe {
        libc::atexit(remove_all);
    });
    if let Ok(mut d) = DIRS.lock() {
        d.push(dir);
    }
}

/// `config`, kept to the test: the state file in `dir` and no admin
/// listener on its default port, unless it has its own `[control]` or `[admin]`.
fn hermetic(dir: &Path, config: &str) -> String {
    let mut text = config.to_string();
    if !config.contains("[control]") {
        text += &format!(
            "\n[control]\nsocket = \"{d}/control.sock\"\nstate_file = \"{d}/state.json\"\n",
            d = dir.display()
        );
    }
    if !config.contains("[admin]") {
        text += "\n[admin]\nbind = \"off\"\n";
    }
    text
}

/// Starts the daemon on `config` (TOML, written to `dir/rampart.toml`).
pub async fn proxy(dir: &Path, config: &str) -> Proxy {
    let path = dir.join("rampart.toml");
    std::fs::write(&path, hermetic(dir, config)).unwrap();
    let mut cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    cfg.http.workers = 1;
    let io = Io::in_process(&cfg, Some(path.clone())).unwrap();
    let handle = Daemon::start(cfg, io).unwrap_or_else(|e| panic!("{e:#}"));
    Proxy {
        addrs: handle.listeners().to_vec(),
        shared: handle.shared().clone(),
        handle: Some(handle),
        path,
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

/// A connection to `to` from the local address `src` (all of 127/8 is
/// local: 127.0.0.2 and 127.0.0.3 are two sources to the daemon).
pub async fn connect_from(src: &str, to: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// One request on `s` (kept alive); its status, or `None` when the daemon
/// closed the connection without answering (the gate refused the source).
pub async fn status_on(s: &mut tokio::net::TcpStream, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return None;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer or a close within 5 s")
        {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        if body.len() >= length {
            return head.get(9..12).and_then(|s| s.parse().ok());
        }
    }
}

/// A request from `src` on a new connection: its status, or `None` if refused.
pub async fn status_from(src: &str, to: SocketAddr, path: &str) -> Option<u16> {
    status_on(&mut connect_from(src, to).await, path).await
}

/// Waits up to `within` for `done`, checking every 20 ms.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
