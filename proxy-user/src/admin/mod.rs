//! The admin listener (loopback by default, `[admin] bind`): `/metrics` in
//! the Prometheus text format, `/healthz` (the process answers), `/readyz`
//! (listeners bound and the filter attached or deliberately absent), and the
//! status page at `/` with its JSON at `/status.json`.
//!
//! Only requests whose `Host` names the listener are answered ([`host`]).
//! `/status.json` walks the kernel maps and reads the state file: it is
//! built on a blocking thread, at most once per [`STATUS_FRESH`], and every
//! request in between gets that snapshot; `/metrics` is rendered on a
//! blocking thread too, so the listener's task never waits on either.

mod host;
mod scrape;
mod status;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{config::FilterSettings, filter::FilterMaps, http::SharedState};
use scrape::render;

/// The status page: one self-contained file (no external assets), which
/// polls `/status.json` and draws its charts itself.
const STATUS_PAGE: &str = include_str!("status.html");

/// How long one `/status.json` snapshot is served before a new one is built.
pub const STATUS_FRESH: Duration = Duration::from_millis(500);

/// What the admin listener reads.
#[derive(Clone)]
pub struct Admin {
    pub shared: SharedState,
    /// The filter's settings when XDP runs (its maps are read per scrape).
    pub kernel: Option<Arc<FilterSettings>>,
    /// The last `/status.json` and when it was built; the lock also makes
    /// concurrent requests wait for one build instead of starting their own.
    pub status: Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>,
}

impl Admin {
    pub fn new(shared: SharedState, kernel: Option<Arc<FilterSettings>>) -> Admin {
        Admin {
            shared,
            kernel,
            status: Arc::default(),
        }
    }

    /// The current `/status.json`: the cached one while fresh, else a new
    /// one built on a blocking thread.
    async fn status_json(&self) -> Bytes {
        let mut slot = self.status.lock().await;
        if let Some((at, body)) = &*slot
            && at.elapsed() < STATUS_FRESH
        {
            return body.clone();
        }
        let admin = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let state = admin.shared.load();
            Bytes::from(status::status(&admin, &state).to_string())
        })
        .await;
        match built {
            Ok(body) => {
                *slot = Some((Instant::now(), body.clone()));
                body
            }
            Err(e) => {
                log::error!("building /status.json: {e}");
                Bytes::from_static(b"{}")
            }
        }
    }
}

/// Binds the admin listener; a bind error stops the start.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    if !addr.ip().is_loopback() {
        log::warn!(
            "admin listener on {addr}: not loopback; metrics and state are visible from the network"
        );
    }
    // SO_REUSEPORT (as the listeners): during a binary upgrade the new
    // daemon binds it while the old one still serves it.
    crate::server::bind(addr, 128)
}

/// Serves admin requests until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, admin: Admin) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return log::error!("admin listener: {e}"),
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(answer(&admin, local, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

async fn answer(admin: &Admin, local: SocketAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let state = admin.shared.load();
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if !host::allowed(host, local, &state.config.admin.allowed_hosts) {
        return reply(
            StatusCode::MISDIRECTED_REQUEST,
            "text/plain",
            "this admin listener answers only to localhost, a loopback address, its own address \
             or a name in [admin] allowed_hosts\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let admin = admin.clone();
            let text = tokio::task::spawn_blocking(move || {
                let state = admin.shared.load();
                let maps = admin
                    .kernel
                    .as_ref()
                    .and_then(|s| Some((FilterMaps::open(&s.pin_dir).ok()?, s.clone())));
                render(&state, maps.as_ref().map(|(m, s)| (m, &**s)))
            })
            .await
            .unwrap_or_default();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/status.json" => reply(
            StatusCode::OK,
            "application/json",
            admin.status_json().await,
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if state.services.metrics.ready() => {
            reply(StatusCode::OK, "text/plain", "ready\n")
        }
        "/readyz" => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n"),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /, /status.json, /metrics, /healthz, /readyz\n",
        ),
    }
}

/// Where the filter's pinned maps are, for scrapes.
pub fn kernel_of(settings: Option<&FilterSettings>, attached: bool) -> Option<Arc<FilterSettings>> {
    settings.filter(|_| attached).map(|s| Arc::new(s.clone()))
}
