//! Accepting connections and serving HTTP on them.
//!
//! One accept loop per listener: a semaphore caps concurrent connections
//! (more wait in the kernel's backlog), accept errors back off and never stop
//! the loop, and each connection gets its own task with named timeouts: the
//! TLS handshake, the request head (slowloris), and keep-alive idleness.
//! On shutdown the loops stop accepting and hyper's graceful shutdown lets
//! in-flight requests finish within the grace period.

mod framing;
pub(crate) mod guard;
mod listener;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use hyper::{Request, StatusCode, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
pub use listener::bind;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::Listener,
    http::{self, ConnInfo, Shared, State},
};

/// A listener ready to serve: its settings, socket and TLS acceptor.
pub struct Bound {
    pub config: Listener,
    pub socket: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }
}

/// Serves every listener until `shutdown` resolves, then lets in-flight
/// requests finish for at most the grace period.
pub async fn serve(
    listeners: Vec<Bound>,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for bound in listeners {
        let (state, graceful, stop) = (state.clone(), graceful.clone(), stop_rx.clone());
        loops.push(tokio::spawn(accept_loop(bound, state, graceful, stop)));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let grace = state.load().config.http.grace_period;
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("grace period of {grace:?} over; closing the remaining connections");
    }
}

async fn accept_loop(
    bound: Bound,
    state: Shared,
    graceful: Arc<GracefulShutdown>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(bound.config.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            a = bound.socket.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, client) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE and friends: wait and try again; never give up the listener.
                log::warn!(
                    "accept on {}: {e}; retrying in {backoff:?}",
                    bound.config.bind
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // Without XDP, the lists, bans and connection rate are enforced
        // here, before any TLS work: a refused connection is just closed.
        let snapshot = state.load();
        if !snapshot.gate.admit(client.ip()).admitted() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo {
            client,
            https: bound.tls.is_some(),
            redirect_https: bound.config.redirect_https,
        };
        let tls = bound.tls.clone();
        let handshake = bound
            .config
            .tls
            .as_ref()
            .map_or(Duration::from_secs(10), |t| t.handshake_timeout);
        let http2 = bound.config.http2;
        let graceful = graceful.clone();
        // The configuration snapshot this connection serves with, taken
        // once: a reload applies to new connections, and requests do not
        // touch the shared lock (which every worker would contend for).
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve_conn(stream, conn, snapshot, &graceful, http2, false).await,
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls_stream)) => {
                        let alpn_h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        serve_conn(tls_stream, conn, snapshot, &graceful, http2, alpn_h2).await
                    }
                    Ok(Err(e)) => log::debug!("{client}: TLS handshake failed: {e}"),
                    Err(_) => log::debug!("{client}: TLS handshake timed out after {handshake:?}"),
                },
            }
        });
    }
}

async fn serve_conn<S>(
    stream: S,
    conn: ConnInfo,
    snapshot: Arc<State>,
    graceful: &GracefulShutdown,
    http2: bool,
    alpn_h2: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = &snapshot.config.http;
    let max_head = settings.max_header_size.max(8192);
    let guarded = guard::Guarded::new(stream, settings.into(), alpn_h2, Some(max_head));
    let watch = guarded.watch().clone();
    let max_header_list = settings.max_header_size as u32;
    let service = service_fn(move |mut req: Request<Incoming>| {
        let snapshot = snapshot.clone();
        let busy = guard::Busy::enter(&watch);
        if let Some(why) = busy.ambiguous {
            req.extensions_mut().insert(http::AmbiguousFraming(why));
        }
        async move {
            let resp = http::handle(snapshot, conn, req).await;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.upgraded();
            }
            drop(busy);
            Ok::<_, Infallible>(resp)
        }
    });
    // Timeouts on the client side are the guard's; hyper's own header
    // timer would be registered anew for every request.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(max_head).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(max_header_list);
    let builder = if http2 { builder } else { builder.http1_only() };
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(guarded), service)
        .into_owned();
    if let Err(e) = graceful.watch(connection).await {
        log::debug!("{}: connection ended: {e}", conn.client);
    }
}
