//! Parking idle keep-alive connections, as nginx does: an HTTP/1
//! connection that has been idle between requests for [`PARK_AFTER`] gives
//! up its HTTP state and buffers (hyper's read and write buffers, about
//! 16 KiB), and waits for its next request with nothing but the socket.
//! When bytes arrive, a fresh HTTP connection is built on the same socket.
//!
//! The guard ([`super::guard::Guarded`]) decides: only between requests
//! (nothing in flight, nothing of a new head read, the last response fully
//! written, the last read found no data), never on HTTP/2 or an upgraded
//! connection. It then ends the HTTP connection as if the client had
//! closed it while idle, and hands the socket back through a [`Slot`]
//! instead of shutting it down. The same wait covers a plain connection's
//! first request: no HTTP state exists until its first byte arrives.

use std::{
    future::Future,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{net::TcpStream, time::Instant};
use tokio_rustls::server::TlsStream;

/// Idleness between requests after which a connection is parked. Under
/// steady keep-alive traffic requests come sooner, so busy connections
/// never pay for rebuilding their HTTP state.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// A parked connection: the socket and since when it has been idle.
pub struct Parked<S> {
    pub stream: S,
    pub idle_since: Instant,
}

/// Where a guard hands its stream back when it parks.
pub struct Slot<S>(Mutex<Option<Parked<S>>>);

impl<S> Slot<S> {
    pub fn new() -> Arc<Slot<S>> {
        Arc::new(Slot(Mutex::new(None)))
    }

    pub(super) fn put(&self, parked: Parked<S>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(parked);
    }

    /// The parked stream, if the guard parked it.
    pub fn take(&self) -> Option<Parked<S>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A client stream that can wait for readability without a buffer.
pub trait Parkable {
    /// Whether the first request may be awaited parked. Not over TLS: the
    /// handshake may have brought the request's first bytes into the TLS
    /// session's buffer already, where the socket cannot signal them.
    const FIRST_REQUEST: bool;

    /// Resolves when the socket has bytes to read (or is closed).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Parkable for TcpStream {
    const FIRST_REQUEST: bool = true;

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}

/// A TLS connection is parked only when the session had no plaintext
/// left (the guard's last read found none), so the socket's readability
/// is the next request's.
impl Parkable for TlsStream<TcpStream> {
    const FIRST_REQUEST: bool = false;

    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.get_ref().0.readable()
    }
}
