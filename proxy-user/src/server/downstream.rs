//! HTTP on a downstream connection, from a whole request head until the
//! connection closes or parks: the guard ([`super::guard`]) around the
//! stream, the hyper connection for its protocol, and the service that
//! hands each request to [`crate::http::handle`].

use std::{os::fd::RawFd, sync::Arc};

use hyper::{Request, StatusCode, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::sync::watch;

use super::{
    busy,
    guard::Guarded,
    h1_conn, head_limits,
    lifecycle::{Awaiting, MaxHead, Timeouts},
    park::Slot,
    quiet, stall,
};
use crate::http::{self, ConnInfo, State};

/// The answer to a head cut off inside its request line (see
/// [`Downstream::serve`]).
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 17\r\nconnection: close\r\n\r\n414 URI Too Long\n";

/// HTTP/1 response bodies larger than this (or of unknown length) keep
/// their request in progress until they have been sent ([`busy::BusyBody`]).
const STREAMED: u64 = 64 << 10;

/// hyper's own count of headers per HTTP/1 head (its `DEFAULT_MAX_HEADERS`),
/// for which it parses into room it neither allocates nor initialises. Told
/// any count, hyper initialises that many header slots for every head it
/// parses (1.6k instructions per GET under callgrind), so it is told
/// only a larger `max_headers`: up to this one, the framing check refuses
/// a head with more headers before hyper parses it ([`head_limits`], 431).
const HYPER_MAX_HEADERS: usize = 100;

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

    /// Requests come as HTTP/1 heads (to await, judge and park between),
    /// at least until an h2c preface.
    fn has_heads(self) -> bool {
        self != Protocol::Http2
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
        let limits = head_limits::HeadLimits {
            line: settings.max_header_line,
            headers: settings.max_headers,
        };
        if protocol.has_heads() && limits.request_line_overflows(&head, max_head.bytes()) {
            // The head was cut at max_head inside its request line: 414, as
            // for a request line over the limit within a head (hyper would
            // answer 431 for the head's size).
            let mut stream = stream;
            let refusal = tokio::time::timeout(timeouts.send, async {
                use tokio::io::AsyncWriteExt;
                stream.write_all(URI_TOO_LONG).await?;
                stream.shutdown().await
            });
            let _ = refusal.await;
            log::debug!("{}: request line too long: 414", info.client);
            return;
        }
        // rampart's own HTTP/1 server, when configured; an h2c preface
        // still goes to hyper.
        let own_h1 = settings.http1 == crate::config::Http1Server::Rampart
            && protocol.has_heads()
            && !(protocol == Protocol::Http1OrH2c && head.starts_with(b"PRI * HTTP/2.0\r\n"));
        if own_h1 {
            // The driver follows heads and bodies itself: no framing
            // check in the guard, and the head read so far is its buffer.
            let mut guarded = Guarded::new(stream, timeouts, false, None)
                .driven()
                .awaiting(awaiting)
                .parking_into(slot);
            if let Some(fd) = plain_fd {
                guarded = guarded.body_lowat(fd);
            }
            let h1 = h1_conn::H1 {
                info,
                snapshot,
                limits: crate::h1::request::Limits {
                    max_head: max_head.bytes(),
                    line: settings.max_header_line,
                    headers: settings.max_headers,
                },
                draining,
            };
            // Boxed: inline, its state would make every connection's
            // future (hyper's too) that much larger to build and move
            // (+15k instructions per new connection under callgrind).
            return Box::pin(h1_conn::serve(guarded, h1, head)).await;
        }
        let http2_only = protocol == Protocol::Http2;
        let mut guarded = Guarded::new(stream, timeouts, http2_only, Some(max_head.bytes()))
            .head_limits(limits)
            .awaiting(awaiting)
            .prefixed(head);
        if protocol.has_heads() {
            guarded = guarded.parking_into(slot);
        }
        if let Some(fd) = plain_fd {
            guarded = guarded.body_lowat(fd);
        }
        let watch = guarded.watch().clone();
        let max_header_list = settings.max_header_size as u32;
        // The connection's share of request body memory (its HTTP/2 streams
        // together; an HTTP/1 connection has one body at a time).
        let conn_budget = (protocol != Protocol::Http1)
            .then(|| http::budget::ConnBudget::new(settings.body_memory_per_connection));
        let (snapshot, conn) = (snapshot.clone(), *info);
        // HTTP/2 streams' tasks, each reset once its response stalls for send_timeout.
        let streams = stall::Streams::new(timeouts.send);
        let executor = streams.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            let snapshot = snapshot.clone();
            let busy = busy::Busy::enter(&watch);
            // HTTP/2 heads are not scanned: their fields are checked here.
            let refused = match req.version() {
                hyper::Version::HTTP_2 => limits.check_fields(req.headers()),
                _ => busy.refused,
            };
            if let Some((status, why)) = refused {
                req.extensions_mut()
                    .insert(http::RefusedHead { status, why });
            }
            if let Some(b) = &conn_budget
                && req.version() == hyper::Version::HTTP_2
            {
                req.extensions_mut().insert(b.clone());
            }
            let http1 = req.version() < hyper::Version::HTTP_2;
            let clock = (!http1).then(|| streams.clock());
            async move {
                let resp = http::handle(snapshot, conn, req.map(http::RequestBody::Hyper)).await;
                if resp.extensions().get::<http::Closed>().is_some() {
                    // `respond = 444`: hyper ends an HTTP/1 connection on
                    // a service error without writing, and resets an
                    // HTTP/2 stream (INTERNAL_ERROR) with the others going on.
                    return Err(http::Closed);
                }
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    busy.upgraded();
                }
                // On HTTP/1, a body that is more than one buffer (streamed
                // from an upstream or a file) keeps the request in progress
                // until it has been sent: the connection must not be parked
                // meanwhile. (HTTP/2 connections are not parked; a stream
                // whose client never opens its window is reset after
                // send_timeout, see `stall`.)
                let streamed = http1
                    && hyper::body::Body::size_hint(resp.body())
                        .exact()
                        .is_none_or(|n| n > STREAMED);
                let resp = if streamed {
                    resp.map(|b| http::Body::new(busy::BusyBody::new(b, busy)))
                } else {
                    drop(busy);
                    resp
                };
                let resp = match clock {
                    Some(clock) => resp.map(|b| http::Body::new(stall::Sending::new(b, clock))),
                    None => resp,
                };
                Ok::<_, http::Closed>(resp)
            }
        });
        // Timeouts on the client side are the guard's; hyper's own header
        // timer would be registered anew for every request.
        let mut builder = auto::Builder::new(executor);
        builder
            .http1()
            .max_buf_size(max_head.bytes())
            .keep_alive(true);
        if settings.max_headers > HYPER_MAX_HEADERS {
            builder.http1().max_headers(settings.max_headers);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(128)
            .max_header_list_size(max_header_list)
            .adaptive_window(false)
            .initial_stream_window_size(http::budget::H2_STREAM_WINDOW)
            .initial_connection_window_size(http::budget::H2_CONNECTION_WINDOW);
        // After ALPN `h2`, only HTTP/2: a client that sends anything else gets
        // a connection error, not an HTTP/1 answer (RFC 9113 §3.4, h2spec 3.5/2).
        // Over TLS otherwise (ALPN `http/1.1`, or none), and on plain listeners
        // without `http2`, only HTTP/1: HTTP/2 over TLS is negotiated by ALPN
        // (§3.2), never sniffed. hyper-util's `http1_only` does nothing with
        // upgrades (its docs say so), so HTTP/1 alone is hyper's own builder.
        let io = TokioIo::new(guarded);
        let ended = match protocol {
            Protocol::Http2 => {
                let builder = builder.http2_only();
                drive!(builder.serve_connection(io, service), draining)
            }
            Protocol::Http1OrH2c => drive!(
                builder.serve_connection_with_upgrades(io, service),
                draining
            ),
            Protocol::Http1 => {
                let mut h1 = hyper::server::conn::http1::Builder::new();
                h1.max_buf_size(max_head.bytes()).keep_alive(true);
                if settings.max_headers > HYPER_MAX_HEADERS {
                    h1.max_headers(settings.max_headers);
                }
                drive!(h1.serve_connection(io, service).with_upgrades(), draining)
            }
        };
        if let Err(e) = ended {
            log::debug!("{}: connection ended: {e}", conn.client);
        }
    }
}
