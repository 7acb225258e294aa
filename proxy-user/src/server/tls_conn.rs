//! A TLS connection's task: the handshake within its timeout, then HTTP
//! on the connection while requests come. Between requests, and while a
//! request head arrives, it waits in its task holding only the session
//! and the bytes of the head read so far ([`super::park::read_head`]): the
//! TLS session is state the lot cannot hold.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{
    downstream::{Downstream, Protocol},
    lifecycle::{Awaiting, MaxHead, Timeouts},
    park, preface,
};
use crate::{
    http::{ConnInfo, State},
    metrics::ListenerMetrics,
};

/// What a TLS connection's handshake needs.
pub(super) struct Tls {
    pub acceptor: TlsAcceptor,
    /// Its timeout ([`super::lifecycle::tls_handshake`]).
    pub handshake: Duration,
    pub metrics: Arc<ListenerMetrics>,
}

/// The TLS handshake (within its timeout), then HTTP on the connection.
pub(super) async fn serve(
    stream: tokio::net::TcpStream,
    tls: Tls,
    info: ConnInfo,
    snapshot: Arc<State>,
    draining: watch::Receiver<bool>,
) {
    let client = info.client;
    let accepted = tokio::time::timeout(tls.handshake, tls.acceptor.accept(stream)).await;
    match accepted {
        Ok(Ok(tls_stream)) => {
            tls.metrics.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            let protocol = Protocol::tls(tls_stream.get_ref().1.alpn_protocol() == Some(b"h2"));
            // The server the SNI name selects: each request's host must select it too.
            let sni = tls_stream.get_ref().1.server_name();
            let info = ConnInfo {
                sni_server: crate::http::vhost::by_sni(&snapshot.config, info.listener, sni),
                ..info
            };
            let http = serve_http(tls_stream, info, snapshot, draining, tls.metrics, protocol);
            Box::pin(http).await
        }
        Ok(Err(e)) => {
            tls.metrics.tls_failed.fetch_add(1, Ordering::Relaxed);
            log::debug!("{client}: TLS handshake failed: {e}")
        }
        Err(_) => {
            tls.metrics.tls_timed_out.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "{client}: TLS handshake timed out after {:?}",
                tls.handshake
            )
        }
    }
}

/// Serves one TLS connection until it closes: HTTP on it while requests
/// come, parked (see [`park`]) while it idles between them and while a
/// request head is arriving.
async fn serve_http<S>(
    mut stream: S,
    info: ConnInfo,
    snapshot: Arc<State>,
    mut draining: watch::Receiver<bool>,
    metrics: Arc<ListenerMetrics>,
    protocol: Protocol,
) where
    S: park::Readiness + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = &snapshot.config.http;
    let timeouts = Timeouts::of(settings);
    let max_head = MaxHead::of(settings);
    let mut awaiting = Awaiting::first(tokio::time::Instant::now());
    loop {
        // HTTP/2 has no heads to wait for; after ALPN `h2` the connection
        // speaks only HTTP/2, and its preface is checked first (due as a
        // first head is).
        let head = if protocol == Protocol::Http2 {
            let due = awaiting.deadline(&timeouts, None);
            let read = tokio::time::timeout_at(due, preface::read(&mut stream));
            tokio::select! {
                r = read => match r {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(why)) => {
                        log::debug!("{}: no HTTP/2 preface: {why:?}", info.client);
                        return;
                    }
                    Err(_) => {
                        log::debug!("{}: no HTTP/2 preface in time", info.client);
                        return;
                    }
                },
                _ = draining.wait_for(|d| *d) => return,
            }
        } else {
            let _waiting = metrics.waiting();
            let read = park::read_head(&mut stream, awaiting, &timeouts, max_head.bytes());
            tokio::select! {
                h = read => match h {
                    Ok(head) => head,
                    Err(why) => {
                        log::debug!("{}: no request head: {why:?}", info.client);
                        return;
                    }
                },
                _ = draining.wait_for(|d| *d) => return,
            }
        };
        let slot = park::Slot::new();
        let downstream = Downstream {
            info: &info,
            snapshot: &snapshot,
            protocol,
            awaiting,
            timeouts,
            max_head,
            slot: slot.clone(),
            plain_fd: None,
            draining: &mut draining,
        };
        // Boxed: the HTTP state machine is large, and a parked connection's
        // task must not keep room for it. Built in its box ([`in_place`]).
        super::in_place::boxed(|| downstream.serve(stream, head)).await;
        match slot.take() {
            Some(p) => {
                stream = p.stream;
                awaiting = Awaiting::next(p.idle_since);
            }
            None => return,
        }
    }
}
