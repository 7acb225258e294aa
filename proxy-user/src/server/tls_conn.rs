//! A TLS connection's task: the handshake within its timeout, then HTTP
//! on the connection while requests come. Between requests, and while a
//! request head arrives, it waits in its task holding only the session
//! and the bytes of the head read so far ([`super::park::read_head`]): the
//! TLS session is state the lot cannot hold.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    net::TcpStream,
    sync::{Semaphore, watch},
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{
    downstream::{Downstream, Protocol},
    lifecycle::{Awaiting, HandshakeTimeouts, MaxHead, Timeouts},
    park, preface,
};
use crate::{
    http::{ConnInfo, State},
    later::Later,
    metrics::ListenerMetrics,
};

/// How often a handshake past its `busy_handshake_timeout` checks again
/// whether its listener has become busy: a listener that fills sheds its
/// slow handshakes within this.
const RECHECK: Duration = Duration::from_secs(1);

/// What a TLS connection's handshake needs.
pub(super) struct Tls {
    pub acceptor: TlsAcceptor,
    /// Its timeouts ([`super::lifecycle::tls_handshake`]).
    pub handshake: HandshakeTimeouts,
    /// Whether its listener has room for it to take longer.
    pub room: Room,
    pub metrics: Arc<ListenerMetrics>,
}

/// A listener's connection cap, as its accept loop holds it.
pub(super) struct Room {
    pub limit: Arc<Semaphore>,
    pub max: usize,
}

impl Room {
    /// More than half of the listener's `max_connections` are open.
    fn busy(&self) -> bool {
        let open = self.max.saturating_sub(self.limit.available_permits());
        open > self.max / 2
    }
}

/// How a handshake ended.
// Moved once, from the handshake to its match: boxing the stream would
// cost an allocation per connection.
#[allow(clippy::large_enum_variant)]
enum Handshake {
    Done(std::io::Result<TlsStream<TcpStream>>),
    /// `handshake_timeout` passed.
    TimedOut,
    /// `busy_handshake_timeout` passed while the listener was busy.
    Shed,
}

/// Runs the handshake: for up to `busy_handshake_timeout`, and past it
/// for up to `handshake_timeout` while the listener has room. A client
/// that opens many connections at once finishes their handshakes late
/// because it is busy, not because it is hostile: it gets the time
/// (nginx's 60 s) unless the connections it holds are needed.
async fn handshake(stream: TcpStream, tls: &Tls) -> Handshake {
    let accepted = Instant::now();
    let full = accepted.later(tls.handshake.full);
    let mut due = accepted.later(tls.handshake.busy);
    let mut accept = std::pin::pin!(tls.acceptor.accept(stream));
    loop {
        match tokio::time::timeout_at(due, &mut accept).await {
            Ok(done) => return Handshake::Done(done),
            Err(_) if due >= full => return Handshake::TimedOut,
            Err(_) if tls.room.busy() => return Handshake::Shed,
            Err(_) => due = Instant::now().later(RECHECK).min(full),
        }
    }
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
    match handshake(stream, &tls).await {
        Handshake::Done(Ok(tls_stream)) => {
            tls.metrics.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            let protocol = Protocol::tls(tls_stream.get_ref().1.alpn_protocol() == Some(b"h2"));
            // The server the SNI name selects: each request's host must select it too.
            let sni = tls_stream.get_ref().1.server_name();
            let info = ConnInfo {
                sni_server: crate::http::vhost::by_sni(&snapshot.config, info.listener, sni),
                ..info
            };
            // A client that finished its handshake late may be late with
            // its request for the same reason (busy with many): while the
            // listener has room its first head is timed as a keep-alive one
            // (`keepalive_timeout` until its first byte, then
            // `header_timeout`); a slow head is still closed at `header_timeout`.
            let now = Instant::now();
            let awaiting = if tls.room.busy() {
                Awaiting::first(now)
            } else {
                Awaiting::next(now)
            };
            let http = serve_http(
                tls_stream,
                info,
                snapshot,
                draining,
                tls.metrics,
                protocol,
                awaiting,
            );
            Box::pin(http).await
        }
        Handshake::Done(Err(e)) => {
            tls.metrics.tls_failed.fetch_add(1, Ordering::Relaxed);
            log::debug!("{client}: TLS handshake failed: {e}")
        }
        Handshake::TimedOut => {
            tls.metrics.tls_timed_out.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "{client}: TLS handshake timed out after {:?}",
                tls.handshake.full
            )
        }
        Handshake::Shed => {
            tls.metrics.tls_shed.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "{client}: TLS handshake closed after {:?}: the listener is busy",
                tls.handshake.busy
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
    mut awaiting: Awaiting,
) where
    S: park::Readiness + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = &snapshot.config.http;
    let timeouts = Timeouts::of(settings);
    let max_head = MaxHead::of(settings);
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
