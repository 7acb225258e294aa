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
//! A connection is rampart's own ([`super::exchange`]): no task of its
//! own, polled by the request that uses it, so it stays on the worker that
//! opened it (its socket is registered with that worker's event loop).
//!
//! A connection the server closed while idle (or on which it sent bytes
//! nobody asked for) is noticed when it is taken, or when the request's
//! first write fails before any byte left; the request then goes over
//! another connection, whatever its method, because the server never saw it.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use super::{
    Target,
    conn::Conn,
    exchange::{Failed, SendError},
    head::Answer,
    stall::WriteStall,
    stream::Stream,
};
use crate::worker::{SLOTS, slot};

/// How long idle connections above `keepalive` stay open.
pub const SURPLUS_IDLE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Pool {
    addr: Target,
    /// Per worker ([`crate::worker`], as nginx keeps them per worker
    /// process): idle connections, the most recently used last. A
    /// connection's socket is registered with the thread that opened it, so
    /// handing it to another thread would cost a wakeup across threads.
    idle: Vec<Mutex<VecDeque<Idle>>>,
    max_idle: usize,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    /// When it was put back.
    since: Instant,
}

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

    /// Sends `head` and `body` (written by `request_head`) over an idle
    /// connection or a new one, and reads the response head; a new
    /// connection times out writes that make no progress for
    /// `send_timeout`. The response's body holds the connection: give it
    /// back with [`Pool::put`] once [`super::ResponseBody::reusable`] says so.
    ///
    /// With `read_by`, the response head must have come by then, whatever
    /// the connection (a `TimedOut` [`SendError::Exchange`] otherwise): a
    /// reused connection times it with its own timer (no timer registered
    /// per request), a new one's set-up and exchange are timed together.
    pub async fn send(
        &self,
        head: &[u8],
        body: &Bytes,
        method: &Method,
        (connect_timeout, send_timeout): (Duration, Duration),
        read_by: Option<Instant>,
    ) -> Result<Answer, SendError> {
        while let Some(conn) = self.take() {
            match conn.exchange(head, body, method, read_by).await {
                Ok(resp) => return Ok(resp),
                // Never left: try the next idle connection or a fresh one.
                Err(Failed::NotSent(_)) => {}
                Err(Failed::Sent(e)) => return Err(e),
            }
        }
        // Boxed: a connection's set-up (and its timeout) is most of this
        // future's size, and most requests find an idle connection.
        Box::pin(async move {
            let fresh = async {
                let conn = self.connect(connect_timeout, send_timeout).await?;
                match conn.exchange(head, body, method, read_by).await {
                    Ok(resp) => Ok(resp),
                    Err(Failed::NotSent(e)) => Err(SendError::Exchange(e)),
                    Err(Failed::Sent(e)) => Err(e),
                }
            };
            let Some(read_by) = read_by else {
                return fresh.await;
            };
            tokio::time::timeout_at(read_by, fresh)
                .await
                .unwrap_or_else(|_| {
                    Err(SendError::Exchange(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no response head within read_timeout",
                    )))
                })
        })
        .await
    }

    /// Takes back a connection whose response was read to its end.
    /// `keepalive = 0` keeps none.
    pub fn put(&self, conn: Conn) {
        if self.max_idle > 0 {
            self.put_at(conn, Instant::now());
        }
    }

    /// [`Pool::put`] at `now`, a time the caller has read already (the
    /// clock is read once per exchange where it can be).
    pub fn put_at(&self, conn: Conn, now: Instant) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.mine();
        idle.push_back(Idle { conn, since: now });
        trim(&mut idle, self.max_idle, now);
    }

    /// Closes the calling worker's idle connections above `keepalive` that
    /// have been idle for [`SURPLUS_IDLE`] (called when traffic stops too).
    pub fn trim(&self) {
        trim(&mut self.mine(), self.max_idle, Instant::now());
    }

    fn take(&self) -> Option<Conn> {
        let mut idle = self.mine();
        while let Some(c) = idle.pop_back() {
            if c.conn.usable() {
                return Some(c.conn);
            }
        }
        None
    }

    async fn connect(&self, timeout: Duration, send: Duration) -> Result<Conn, SendError> {
        let timed_out = || {
            SendError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        };
        let stream = match &self.addr {
            Target::Tcp(addr) => {
                let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(SendError::Connect)?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
            Target::Unix(path) => Stream::Unix(
                tokio::time::timeout(timeout, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(SendError::Connect)?,
            ),
        };
        Ok(Conn::new(WriteStall::new(stream, send)))
    }
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
