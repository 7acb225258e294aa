//! The admin listener (loopback by default, `[admin] bind`): `/metrics` in
//! the Prometheus text format, `/healthz` (the process answers), `/readyz`
//! (listeners bound and the filter attached or deliberately absent), and the
//! status page at `/` with its JSON at `/status.json`.

mod status;

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{config::FilterSettings, filter::FilterMaps, http::Shared, metrics::render::render};

/// The status page: one self-contained file (no external assets), which
/// polls `/status.json` and draws its charts itself.
const STATUS_PAGE: &str = include_str!("status.html");

/// What the admin listener reads.
#[derive(Clone)]
pub struct Admin {
    pub shared: Shared,
    /// The filter's settings when XDP runs (its maps are read per scrape).
    pub kernel: Option<Arc<FilterSettings>>,
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
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(answer(&admin, req)) }
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

fn answer(admin: &Admin, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let state = admin.shared.load();
    match req.uri().path() {
        "/metrics" => {
            let maps = admin
                .kernel
                .as_ref()
                .and_then(|s| Some((FilterMaps::open(&s.pin_dir).ok()?, s.clone())));
            let text = render(&state, maps.as_ref().map(|(m, s)| (m, &**s)));
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
            status::status(admin, &state).to_string(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if state.metrics.ready() => reply(StatusCode::OK, "text/plain", "ready\n"),
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
