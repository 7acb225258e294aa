//! The downstream connection guard: an I/O wrapper around each client
//! connection that enforces the client-side timeouts and runs the HTTP/1
//! framing check ([`super::framing`]).
//!
//! Timeouts, with nginx's names and meaning:
//! - `header_timeout`: a request head must arrive within it, counted from
//!   its first byte (from the accept for a connection's first request);
//! - `keepalive_timeout`: an idle connection (no request in progress,
//!   nothing being written) is closed after it;
//! - `send_timeout`: a write to the client that makes no progress for this
//!   long closes the connection.
//!
//! The same wrapper bounds writes to an upstream connection
//! ([`Guarded::upstream`]: `send_timeout` of an `[upstream.NAME]`, nginx's
//! `proxy_send_timeout`), where reads are the proxy's to time.
//!
//! While a request is being handled no read deadline applies (the handler
//! has its own, per phase), and an upgraded connection (a WebSocket tunnel)
//! is governed by its route's idle timeout instead.
//!
//! An idle HTTP/1 connection is parked after [`PARK_AFTER`] (see
//! [`super::park`]): the guard answers hyper's next read with end-of-file
//! and hands the socket back instead of shutting it down.
//!
//! One timer per connection, armed at or before the earliest deadline that
//! can apply and only moved later while requests flow: a keep-alive
//! connection does not register a timer per request, which would wake the
//! worker's event loop each time.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::{
    framing::{Fed, Scanner, Verdict},
    park::{PARK_AFTER, Parked, Slot},
};
use crate::config::HttpSettings;

/// The timeouts a guard enforces.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub keepalive: Duration,
    pub send: Duration,
}

impl From<&HttpSettings> for Timeouts {
    fn from(s: &HttpSettings) -> Timeouts {
        Timeouts {
            header: s.header_timeout,
            keepalive: s.keepalive_timeout,
            send: s.send_timeout,
        }
    }
}

/// What the request handlers and the I/O wrapper of one connection share.
#[derive(Debug)]
pub struct Watch {
    inner: Mutex<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Requests being handled (HTTP/2 handles several at once).
    busy: u32,
    /// When the last request finished, or the connection was accepted.
    idle_since: Instant,
    /// A request has been served: idleness is now keep-alive idleness.
    served: bool,
    /// The connection was upgraded; its tunnel times itself.
    tunnel: bool,
    /// Framing verdicts of heads read and not yet handled, in order. Once
    /// the check stops following a connection no more are added, and the
    /// requests after it are not judged.
    verdicts: VecDeque<Verdict>,
}

impl Watch {
    fn new(now: Instant) -> Watch {
        Watch {
            inner: Mutex::new(Shared {
                busy: 0,
                idle_since: now,
                served: false,
                tunnel: false,
                verdicts: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request in progress on a connection; dropping it ends the request.
pub struct Busy {
    watch: Arc<Watch>,
    /// Why the request's framing is ambiguous, if it is.
    pub ambiguous: Option<&'static str>,
}

impl Busy {
    /// Starts handling the next request read on the connection.
    pub fn enter(watch: &Arc<Watch>) -> Busy {
        let mut s = watch.lock();
        s.busy += 1;
        let verdict = s.verdicts.pop_front();
        Busy {
            watch: watch.clone(),
            ambiguous: match verdict {
                Some(Verdict::Ambiguous(why)) => Some(why),
                _ => None,
            },
        }
    }

    /// The response upgraded the connection: from now on it is a tunnel.
    pub fn upgraded(&self) {
        self.watch.lock().tunnel = true;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.watch.lock();
        s.busy -= 1;
        s.served = true;
        if s.busy == 0 {
            s.idle_since = Instant::now();
        }
    }
}

/// What happens when a read deadline passes.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// The connection is closed with this reason.
    Expire(&'static str),
    /// The connection is parked.
    Park,
}

/// A client connection with its timeouts and framing check.
pub struct Guarded<S> {
    /// `None` once handed back to the parking slot.
    io: Option<S>,
    /// Where the stream goes when the connection is parked; `None`: never parked.
    slot: Option<Arc<Slot<S>>>,
    /// Parking has begun: reads see end-of-file, shutdown hands the stream back.
    parking: bool,
    /// The last read found no data (so no bytes wait in a TLS session).
    drained: bool,
    /// Bytes read before the guard existed (a head read while parked),
    /// handed to the reader first; and how many of them have been.
    prefix: Vec<u8>,
    prefix_at: usize,
    watch: Arc<Watch>,
    timeouts: Timeouts,
    /// HTTP/2 has no heads to time or judge: only idleness applies.
    http2: bool,
    /// Whether reads have deadlines here (not on upstream connections).
    reads_bounded: bool,
    scanner: Option<Scanner>,
    /// When the head being read started arriving.
    head_since: Option<Instant>,
    /// Last successful write: a response still being written is not idle.
    last_write: Instant,
    /// When writes started making no progress.
    write_stalled: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    /// The timer's deadline, never later than the deadline it guards.
    armed: Instant,
    expired: Option<&'static str>,
}

impl<S> Guarded<S> {
    /// Guards `io`; `http2` when ALPN chose HTTP/2. The framing check runs
    /// on HTTP/1 connections when `max_head` is set.
    pub fn new(io: S, timeouts: Timeouts, http2: bool, max_head: Option<usize>) -> Guarded<S> {
        let now = Instant::now();
        let first = now + timeouts.header.min(timeouts.keepalive);
        Guarded {
            io: Some(io),
            slot: None,
            parking: false,
            drained: false,
            prefix: Vec::new(),
            prefix_at: 0,
            watch: Arc::new(Watch::new(now)),
            timeouts,
            http2,
            reads_bounded: true,
            scanner: max_head.filter(|_| !http2).map(Scanner::new),
            head_since: None,
            last_write: now,
            write_stalled: None,
            timer: Box::pin(tokio::time::sleep_until(first)),
            armed: first,
            expired: None,
        }
    }

    /// Guards an upstream connection: only stalled writes time out.
    pub fn upstream(io: S, send: Duration) -> Guarded<S> {
        let timeouts = Timeouts {
            header: send,
            keepalive: send,
            send,
        };
        let mut g = Guarded::new(io, timeouts, false, None);
        g.reads_bounded = false;
        g
    }

    /// Parks the connection into `slot` once it idles between requests
    /// (HTTP/1 only: the framing check must be following it).
    pub fn parking_into(mut self, slot: Arc<Slot<S>>) -> Guarded<S> {
        self.slot = Some(slot);
        self
    }

    /// A connection resumed from parking: it has served before, so
    /// idleness is keep-alive idleness.
    pub fn resumed(self) -> Guarded<S> {
        self.watch.lock().served = true;
        self
    }

    /// Bytes already read from the stream, to be read first.
    pub fn prefixed(mut self, bytes: Vec<u8>) -> Guarded<S> {
        self.prefix = bytes;
        self.prefix_at = 0;
        self
    }

    /// Idle since `since` (the accept, or the end of the last response),
    /// not since now: time spent parked counts toward the timeouts.
    pub fn idle_since(mut self, since: Instant) -> Guarded<S> {
        self.watch.lock().idle_since = since;
        self.last_write = since;
        self
    }

    pub fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// The deadline for the next request's bytes, if one applies now.
    fn read_deadline(&self) -> Option<(Instant, Deadline)> {
        if !self.reads_bounded {
            return None;
        }
        let s = self.watch.lock();
        if s.busy > 0 || s.tunnel {
            return None;
        }
        let idle = s.idle_since.max(self.last_write);
        if let Some(since) = self.head_since {
            return Some((
                since.max(s.idle_since) + self.timeouts.header,
                Deadline::Expire("request head timed out"),
            ));
        }
        if s.served || self.http2 {
            let parks = self.slot.is_some()
                && self.scanner.is_some()
                && self.drained
                && self.write_stalled.is_none()
                && PARK_AFTER < self.timeouts.keepalive;
            if parks {
                return Some((idle + PARK_AFTER, Deadline::Park));
            }
            Some((
                idle + self.timeouts.keepalive,
                Deadline::Expire("keep-alive idle timeout"),
            ))
        } else {
            Some((
                idle + self.timeouts.header,
                Deadline::Expire("no request head in time"),
            ))
        }
    }

    /// Hands the stream to the parking slot (once).
    fn hand_back(&mut self) {
        if let (Some(slot), Some(stream)) = (&self.slot, self.io.take()) {
            let s = self.watch.lock();
            slot.put(Parked {
                stream,
                idle_since: s.idle_since.max(self.last_write),
            });
        }
    }

    /// Waits for `deadline` on the connection's timer; `Ready` once it has
    /// passed.
    fn wait(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if self.armed > deadline || self.timer.is_elapsed() {
                // Earlier (rare: a write stall), or re-armed after firing.
                self.timer.as_mut().reset(deadline);
                self.armed = deadline;
            }
            ready!(self.timer.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
        }
    }

    /// No read deadline applies now (a request is being handled), but one
    /// will once it ends: the timer stays registered so that the
    /// connection is polled again then, and the deadline computed.
    /// Within [`PARK_AFTER`] when the connection can be parked, so that it
    /// is parked about then.
    fn keep_armed(&mut self, cx: &mut Context<'_>) {
        let mut period = self.timeouts.header.min(self.timeouts.keepalive);
        if self.slot.is_some() {
            period = period.min(PARK_AFTER);
        }
        let latest = Instant::now() + period;
        if self.timer.is_elapsed() || self.armed > latest {
            self.timer.as_mut().reset(latest);
            self.armed = latest;
        }
        let _ = self.timer.as_mut().poll(cx);
    }

    fn expire(&mut self, why: &'static str) -> io::Error {
        self.expired = Some(why);
        io::Error::new(io::ErrorKind::TimedOut, why)
    }

    fn check_expired(&self) -> io::Result<()> {
        match self.expired {
            Some(why) => Err(io::Error::new(io::ErrorKind::TimedOut, why)),
            None => Ok(()),
        }
    }

    /// A write is pending: bounded by `send_timeout`.
    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let since = *self.write_stalled.get_or_insert_with(Instant::now);
        match self.wait(cx, since + self.timeouts.send) {
            Poll::Ready(()) => Poll::Ready(self.expire("send timed out")),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote(&mut self) {
        self.write_stalled = None;
        self.last_write = Instant::now();
    }

    fn feed(&mut self, data: &[u8]) {
        let Some(scanner) = &mut self.scanner else {
            return;
        };
        let mut fed = Fed::default();
        scanner.feed(data, &mut fed);
        if scanner.in_head() {
            if self.head_since.is_none() {
                self.head_since = Some(Instant::now());
            }
        } else {
            self.head_since = None;
        }
        if !fed.verdicts.is_empty() {
            self.watch.lock().verdicts.extend(fed.verdicts);
        }
        if fed.stopped {
            self.scanner = None;
        }
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        if self.parking {
            self.hand_back();
        }
    }
}

/// The stream, or the error every call gets once it was handed back.
fn io<S: Unpin>(io: &mut Option<S>) -> io::Result<Pin<&mut S>> {
    io.as_mut()
        .map(Pin::new)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection parked"))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_expired()?;
        if this.parking {
            // End-of-file while idle: HTTP/1 ends the connection cleanly.
            return Poll::Ready(Ok(()));
        }
        if this.prefix_at < this.prefix.len() {
            let prefix = std::mem::take(&mut this.prefix);
            let (from, to) = (
                this.prefix_at,
                prefix.len().min(this.prefix_at + buf.remaining()),
            );
            buf.put_slice(&prefix[from..to]);
            this.feed(&prefix[from..to]);
            this.drained = false;
            if to < prefix.len() {
                this.prefix = prefix;
                this.prefix_at = to;
            } else {
                this.prefix_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match io(&mut this.io)?.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.drained = false;
                if buf.filled().len() > before {
                    this.feed(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.drained = true;
                match this.read_deadline() {
                    Some((deadline, what)) if this.wait(cx, deadline).is_ready() => match what {
                        Deadline::Expire(why) => Poll::Ready(Err(this.expire(why))),
                        Deadline::Park => {
                            this.parking = true;
                            Poll::Ready(Ok(()))
                        }
                    },
                    Some(_) => Poll::Pending,
                    None => {
                        if this.reads_bounded {
                            this.keep_armed(cx);
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.wrote();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_flush(cx) {
            Poll::Ready(r) => {
                if r.is_ok() {
                    this.write_stalled = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parking {
            // Not closed: the socket goes back to wait for the next request.
            self.hand_back();
            return Poll::Ready(Ok(()));
        }
        io(&mut self.io)?.poll_shutdown(cx)
    }
}
