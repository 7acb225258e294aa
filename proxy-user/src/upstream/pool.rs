//! Keep-alive connections to one server: HTTP/1.1 connections handed out
//! one request at a time and taken back when the response body has been
//! read to its end, up to `keepalive` idle ones per worker.
//!
//! Idle connections above `keepalive` (a burst used more) are closed once
//! they have been idle for [`SURPLUS_IDLE`], the least recently used first,
//! rather than at once as nginx does: traffic that comes in waves larger
//! than `keepalive` finds its connections still open at the next wave
//! instead of closing and reopening them (with 80 requests in flight per
//! worker and `keepalive = 64`, one request in nine opened a connection).
//! There are never more connections than requests were in flight at once.
//!
//! A connection the server closed while idle is noticed when it is taken
//! (closed or not ready), or when sending fails before the request left; the
//! request then goes over a fresh connection, whatever its method, because
//! the server never saw it.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{Target, stall::WriteStall};
use crate::worker::{SLOTS, slot};

type Sender = SendRequest<Full<Bytes>>;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: the server never saw the request.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The connection failed during the exchange: the server may have seen it.
    #[error("exchange: {0}")]
    Exchange(#[source] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// The exchange stalled past `send_timeout` (or the connect timed out).
    pub fn timed_out(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            {
                return true;
            }
            source = e.source();
        }
        false
    }
}

/// How long idle connections above `keepalive` stay open.
pub const SURPLUS_IDLE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Pool {
    addr: Target,
    /// Per worker ([`crate::worker`], as nginx keeps them per worker
    /// process): idle connections, the most recently used last. A
    /// connection's I/O task runs on the thread that opened it, so handing
    /// it to another thread would cost a wakeup across threads on every read.
    idle: Vec<Mutex<VecDeque<Idle>>>,
    max_idle: usize,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    /// When it was put back.
    since: Instant,
}

/// A connection checked out for one exchange; give it back with [`Pool::put`].
pub struct Conn(Sender);

impl Pool {
    pub fn new(addr: Target, max_idle: usize) -> Pool {
        Pool {
            addr,
            idle: (0..SLOTS).map(|_| Mutex::new(VecDeque::new())).collect(),
            max_idle,
        }
    }

    /// Idle connections now, over all workers (for views and tests).
    pub fn idle(&self) -> usize {
        self.idle
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// The calling worker's idle connections.
    fn mine(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.idle[slot()].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` over an idle connection or a new one; a new connection
    /// times out writes that make no progress for `send_timeout`.
    pub async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
        connect_timeout: Duration,
        send_timeout: Duration,
    ) -> Result<(Response<Incoming>, Conn), SendError> {
        loop {
            let Some(mut sender) = self.take() else { break };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Conn(sender))),
                Err(mut e) => match e.take_message() {
                    // Never left: try the next idle connection or a fresh one.
                    Some(back) => req = back,
                    None => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
        // Boxed: a connection's set-up is most of this future's size, and
        // most requests find an idle connection (the proxy boxes this
        // future per request, see `http::proxy::forward`).
        let mut sender = Box::pin(self.connect(connect_timeout, send_timeout)).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(SendError::Exchange)?;
        Ok((resp, Conn(sender)))
    }

    /// Takes back a connection whose response was read to its end.
    /// `keepalive = 0` keeps none.
    pub fn put(&self, conn: Conn) {
        if conn.0.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.mine();
        idle.push_back(Idle {
            sender: conn.0,
            since: now,
        });
        trim(&mut idle, self.max_idle, now);
    }

    /// Closes the calling worker's idle connections above `keepalive` that
    /// have been idle for [`SURPLUS_IDLE`] (called when traffic stops too).
    pub fn trim(&self) {
        trim(&mut self.mine(), self.max_idle, Instant::now());
    }

    fn take(&self) -> Option<Sender> {
        let mut idle = self.mine();
        while let Some(c) = idle.pop_back() {
            if !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    async fn connect(&self, timeout: Duration, send: Duration) -> Result<Sender, SendError> {
        let timed_out = || {
            SendError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        };
        // One handshake per kind of stream (no per-read dispatch).
        match &self.addr {
            Target::Tcp(addr) => {
                let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(SendError::Connect)?;
                let _ = stream.set_nodelay(true);
                handshake(stream, send).await
            }
            Target::Unix(path) => {
                let stream = tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(SendError::Connect)?;
                handshake(stream, send).await
            }
        }
    }
}

/// HTTP/1.1 over a connected stream; its I/O task runs on this worker.
async fn handshake<S>(stream: S, send: Duration) -> Result<Sender, SendError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(WriteStall::new(stream, send)))
            .await
            .map_err(SendError::Exchange)?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// Drops idle connections (the least recently used first) while there are
/// more than `keep` and the oldest has been idle for [`SURPLUS_IDLE`].
fn trim(idle: &mut VecDeque<Idle>, keep: usize, now: Instant) {
    while idle.len() > keep
        && idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= SURPLUS_IDLE)
    {
        idle.pop_front();
    }
}
