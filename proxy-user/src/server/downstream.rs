//! HTTP on a downstream connection, from a whole request head until the
//! connection closes or parks: HTTP/1 on rampart's own server
//! ([`super::h1_conn`]), HTTP/2 (ALPN `h2`, or h2c with prior knowledge)
//! on hyper's, each through the connection guard ([`super::guard`]),
//! every request handed to [`crate::http::handle`].

use std::{os::fd::RawFd, sync::Arc};

use hyper::{Request, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use super::{
    busy,
    guard::Guarded,
    h1_conn,
    lifecycle::{Awaiting, MaxHead, Timeouts},
    park::Slot,
    quiet, stall,
};
use crate::http::{self, ConnInfo, State};

/// The first line of an HTTP/2 connection preface (RFC 9113 §3.4): on a
/// plain listener with `http2`, a head that starts with it is h2c.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Which HTTP a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1 only: over TLS when ALPN did not choose `h2` (HTTP/2 over
    /// TLS is negotiated, never sniffed: RFC 9113 §3.2), or on a plain
    /// listener without `http2`.
    Http1,
    /// HTTP/1, or HTTP/2 with prior knowledge (h2c): a plain listener with
    /// `http2`.
    Http1OrH2c,
    /// HTTP/2 only: ALPN chose `h2`. A client that sends anything else
    /// gets a connection error, not an HTTP/1 answer (RFC 9113 §3.4).
    Http2,
}

impl Protocol {
    /// On a plain listener, which offers h2c when `http2`.
    pub fn plain(http2: bool) -> Protocol {
        if http2 {
            Protocol::Http1OrH2c
        } else {
            Protocol::Http1
        }
    }

    /// Over TLS, as ALPN chose.
    pub fn tls(alpn_h2: bool) -> Protocol {
        if alpn_h2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }
}

/// A downstream connection whose request head has arrived, as HTTP is
/// served on it: who it is, what it serves with, and where it stands in
/// its lifecycle.
pub struct Downstream<'a, S> {
    pub info: &'a ConnInfo,
    /// The configuration it was accepted under.
    pub snapshot: &'a Arc<State>,
    pub protocol: Protocol,
    /// Since when it has awaited this head, and whether it was served
    /// before: where its next deadlines count from.
    pub awaiting: Awaiting,
    pub timeouts: Timeouts,
    pub max_head: MaxHead,
    /// Where an idle HTTP/1 connection parks (see [`super::park`]).
    pub slot: Arc<Slot<S>>,
    /// The socket of a plain connection (the stream itself), whose request
    /// bodies then wake it only once they have arrived ([`super::lowat`]).
    pub plain_fd: Option<RawFd>,
    /// Says when the worker drains.
    pub draining: &'a mut watch::Receiver<bool>,
}

/// Runs a hyper connection until it ends; when the worker drains, in-flight
/// requests finish and idle connections close (hyper's graceful shutdown).
/// Its error, as text for the log.
macro_rules! drive {
    ($connection:expr, $draining:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        // Biased: the connection first, and no random pick per poll; the
        // drain is looked at only once it was signalled (see `quiet`).
        let ended = tokio::select! {
            biased;
            r = connection.as_mut() => Some(r),
            _ = quiet::Quiet::new($draining.wait_for(|d| *d)) => None,
        };
        match ended {
            Some(r) => r,
            None => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
        .map_err(|e| e.to_string())
    }};
}

impl<S> Downstream<'_, S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    /// Runs HTTP on `stream`, whose first bytes (`head`) were read already,
    /// until the connection ends or is parked into the slot.
    pub async fn serve(self, stream: S, head: Vec<u8>) {
        let Downstream {
            info,
            snapshot,
            protocol,
            awaiting,
            timeouts,
            max_head,
            slot,
            plain_fd,
            draining,
        } = self;
        let settings = &snapshot.config.http;
        let h2c = protocol == Protocol::Http1OrH2c && head.starts_with(H2C_PREFACE);
        if protocol == Protocol::Http2 || h2c {
            let h2 = H2 {
                info,
                snapshot,
                alpn: protocol == Protocol::Http2,
                timeouts,
                awaiting,
                draining,
            };
            // Boxed: hyper's HTTP/2 state would make every HTTP/1
            // connection's future that much larger to build and move.
            return Box::pin(h2.serve(stream, head)).await;
        }
        // HTTP/1: rampart's own server follows heads and bodies itself
        // and tells the guard where they are; the head read so far is its
        // buffer.
        let guarded = Guarded::http1(stream, timeouts, awaiting, slot, plain_fd);
        let h1 = h1_conn::H1 {
            info,
            snapshot,
            limits: crate::h1::request::Limits {
                max_head: max_head.bytes(),
                line: settings.max_header_line,
                headers: settings.max_headers,
            },
            draining,
            plain: plain_fd.is_some(),
        };
        // Inline: the caller boxes this future (see `super::tests`).
        h1_conn::serve(guarded, h1, head).await
    }
}

/// An HTTP/2 connection, on hyper's server: after ALPN `h2`, or a plain
/// listener's h2c preface.
struct H2<'a> {
    info: &'a ConnInfo,
    snapshot: &'a Arc<State>,
    /// ALPN chose `h2` (else h2c with prior knowledge).
    alpn: bool,
    timeouts: Timeouts,
    awaiting: Awaiting,
    draining: &'a mut watch::Receiver<bool>,
}

impl H2<'_> {
    /// Serves HTTP/2 on `stream`, whose first bytes (`head`, the preface
    /// or part of it) were read already, until the connection ends.
    async fn serve<S>(self, stream: S, head: Vec<u8>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let H2 {
            info,
            snapshot,
            alpn,
            timeouts,
            awaiting,
            draining,
        } = self;
        let settings = &snapshot.config.http;
        let guarded = Guarded::new(stream, timeouts, alpn)
            .awaiting(awaiting)
            .prefixed(head);
        let watch = guarded.watch().clone();
        let (line, most) = (settings.max_header_line, settings.max_headers);
        // The connection's share of request body memory (its streams together).
        let conn_budget = http::budget::ConnBudget::new(settings.body_memory_per_connection);
        let (snapshot, conn) = (snapshot.clone(), *info);
        // Streams' tasks, each reset once its response stalls for send_timeout.
        let streams = stall::Streams::new(timeouts.send);
        let executor = streams.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let snapshot = snapshot.clone();
            let busy = busy::Busy::enter(&watch);
            if let Some((status, why)) = check_fields(line, most, req.headers()) {
                req.extensions_mut()
                    .insert(http::RefusedHead { status, why });
            }
            req.extensions_mut().insert(conn_budget.clone());
            let clock = streams.clock();
            async move {
                let resp = http::handle(snapshot, conn, req.map(http::RequestBody::Hyper))
                    .await
                    .into_response();
                drop(busy);
                if resp.extensions().get::<http::Closed>().is_some() {
                    // `respond = 444`: hyper resets the stream
                    // (INTERNAL_ERROR), the others go on.
                    return Err(http::Closed);
                }
                debug_assert_ne!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
                // A stream whose client never opens its window is reset
                // after send_timeout (see `stall`).
                Ok::<_, http::Closed>(resp.map(|b| http::Body::new(stall::Sending::new(b, clock))))
            }
        });
        let mut builder = hyper::server::conn::http2::Builder::new(executor);
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(128)
            .max_header_list_size(settings.max_header_size as u32)
            .adaptive_window(false)
            .initial_stream_window_size(http::budget::H2_STREAM_WINDOW)
            .initial_connection_window_size(http::budget::H2_CONNECTION_WINDOW);
        let ended = drive!(
            builder.serve_connection(TokioIo::new(guarded), service),
            draining
        );
        if let Err(e) = ended {
            log::debug!("{}: connection ended: {e}", conn.client);
        }
    }
}

/// HTTP/2's header fields against the HTTP/1 head's limits, as nginx
/// applies `large_client_header_buffers` to them: a field (`name: value`,
/// as an HTTP/1 line) over `line` bytes, or more than `most` fields, is
/// 431. Cookie crumbs (RFC 9113 §8.2.3 lets a client split the cookie
/// into one field per pair) are not counted.
fn check_fields(
    line: usize,
    most: usize,
    fields: &hyper::HeaderMap,
) -> Option<(u16, &'static str)> {
    let mut count = 0;
    for (name, value) in fields {
        if name.as_str().len() + 2 + value.len() > line {
            return Some((431, "header field too long"));
        }
        if name != hyper::header::COOKIE {
            count += 1;
        }
    }
    (count > most).then_some((431, "too many header fields"))
}
