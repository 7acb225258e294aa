//! The downstream connection guard: an I/O wrapper around each client
//! connection that enforces the client-side timeouts and runs the HTTP/1
//! framing check ([`super::framing`]).
//!
//! The guard tells the connection's phase from what it sees (a request in
//! progress, a head arriving, an upgrade) and asks [`super::lifecycle`]
//! for that phase's deadline: `header_timeout` for a head,
//! `keepalive_timeout` while idle, `send_timeout` for a write that makes
//! no progress.
//!
//! While a request is being handled (until its response body has been
//! sent, see [`super::busy::BusyBody`]) no read deadline applies: the
//! handler has its own, per phase (`body_timeout` between reads of the
//! request body, the upstream's timeouts), and an upgraded connection (a WebSocket tunnel)
//! is governed by its route's idle timeout instead.
//!
//! An idle HTTP/1 connection is parked after
//! [`PARK_AFTER`](super::lifecycle::PARK_AFTER) (see
//! [`super::park`]): the guard answers hyper's next read with end-of-file
//! and hands the socket back instead of shutting it down.
//!
//! One timer per connection, armed at or before the earliest deadline that
//! can apply and only moved later while requests flow: a keep-alive
//! connection does not register a timer per request, which would wake the
//! worker's event loop each time.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::{
    busy::Watch,
    framing::{Fed, Scanner},
    head_limits::HeadLimits,
    lifecycle::{Awaiting, Due, Expiry, Phase, Timeouts},
    lowat::RcvLowat,
    park::{Parked, Slot},
};
use crate::later::Later;

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
    /// The timer was armed by [`Guarded::keep_armed`], not for a deadline.
    armed_busy: bool,
    expired: Option<&'static str>,
    /// The socket's receive low-water mark, on plain connections.
    lowat: Option<RcvLowat>,
    /// Last read that returned bytes of a request body (the only reads
    /// [`Guarded::set_lowat`] times: a clock read per read costs more than
    /// the rest of a read's bookkeeping here).
    last_read: Instant,
    /// While the mark holds a body's bytes back: when to lower it so that
    /// what has arrived is read within `body_timeout` (created on first use).
    nudge: Option<Pin<Box<Sleep>>>,
}

impl<S> Guarded<S> {
    /// Guards `io`; `http2` when ALPN chose HTTP/2. The framing check runs
    /// on HTTP/1 connections when `max_head` is set.
    pub fn new(io: S, timeouts: Timeouts, http2: bool, max_head: Option<usize>) -> Guarded<S> {
        let now = Instant::now();
        let first = now.later(timeouts.soonest_read(false));
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
            scanner: max_head.filter(|_| !http2).map(Scanner::new),
            head_since: None,
            last_write: now,
            write_stalled: None,
            timer: Box::pin(tokio::time::sleep_until(first)),
            armed: first,
            armed_busy: false,
            expired: None,
            lowat: None,
            last_read: now,
            nudge: None,
        }
    }

    /// Wakes reads of a request body only once the rest of it has arrived
    /// (see [`super::lowat`]); `fd` is the plain socket this guard holds.
    pub fn body_lowat(mut self, fd: std::os::fd::RawFd) -> Guarded<S> {
        self.lowat = Some(RcvLowat::new(fd));
        self
    }

    /// Refuses HTTP/1 heads over `limits` (414 or 431, see
    /// [`super::framing::Verdict::TooLarge`]).
    pub fn head_limits(mut self, limits: HeadLimits) -> Guarded<S> {
        self.scanner = self.scanner.take().map(|s| s.limited(limits));
        self
    }

    /// Parks the connection into `slot` once it idles between requests
    /// (HTTP/1 only: the framing check must be following it).
    pub fn parking_into(mut self, slot: Arc<Slot<S>>) -> Guarded<S> {
        self.slot = Some(slot);
        self
    }

    /// Bytes already read from the stream, to be read first.
    pub fn prefixed(mut self, bytes: Vec<u8>) -> Guarded<S> {
        self.prefix = bytes;
        self.prefix_at = 0;
        self
    }

    /// Awaiting its head since `awaiting.since` (the accept, or the end of
    /// the last response), not since now: time spent parked counts toward
    /// the timeouts. A resumed connection has served before, so its
    /// idleness is keep-alive idleness.
    pub fn awaiting(mut self, awaiting: Awaiting) -> Guarded<S> {
        {
            let mut s = self.watch.lock();
            s.idle_since = awaiting.since;
            s.served |= awaiting.resumed;
        }
        self.last_write = awaiting.since;
        self
    }

    pub fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// The connection's phase, for its read deadline ([`Phase::due`]).
    fn phase(&self) -> Phase {
        let s = self.watch.lock();
        if s.tunnel {
            return Phase::Tunnel;
        }
        if s.busy > 0 {
            return Phase::Request;
        }
        // Since the last response was handled and written (the accept,
        // before the first).
        let idle = s.idle_since.max(self.last_write);
        let awaiting = Awaiting {
            since: idle,
            resumed: s.served || self.http2,
        };
        // A head that began arriving during the last request (pipelined)
        // is timed from that request's end.
        match awaiting.phase(self.head_since.map(|b| b.max(s.idle_since))) {
            Phase::Idle { since, .. } => Phase::Idle {
                since,
                parkable: self.slot.is_some()
                    && self.scanner.is_some()
                    && self.drained
                    && self.write_stalled.is_none(),
            },
            phase => phase,
        }
    }

    /// Hands the stream to the parking slot (once).
    fn hand_back(&mut self) {
        if let (Some(lowat), Some(_)) = (&mut self.lowat, &self.io) {
            lowat.want(1);
        }
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
                self.armed_busy = false;
            }
            ready!(self.timer.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
        }
    }

    /// No read deadline applies now (a request is being handled), but one
    /// will once it ends, and the connection must be polled then for it to
    /// be computed (hyper may not read again by itself).
    ///
    /// The timer stays registered for that, within
    /// [`PARK_AFTER`](super::lifecycle::PARK_AFTER) when the connection
    /// can be parked, so that it is parked about then: a short
    /// request costs no wake of its own. A request still in progress when
    /// that timer fires (a slow body, a long poll) has its end wake the
    /// connection instead, so that it costs one wake, not one a period.
    fn keep_armed(&mut self, cx: &mut Context<'_>) {
        if self.armed_busy && self.timer.is_elapsed() {
            if !self.watch.wake_when_idle(cx.waker()) {
                // It just ended: poll again to compute the deadline.
                cx.waker().wake_by_ref();
            }
            return;
        }
        let period = self.timeouts.soonest_read(self.slot.is_some());
        let latest = Instant::now().later(period);
        if self.timer.is_elapsed() || self.armed > latest {
            self.timer.as_mut().reset(latest);
            self.armed = latest;
            self.armed_busy = true;
        }
        let _ = self.timer.as_mut().poll(cx);
    }

    /// Sets the socket's receive low-water mark to what the body being read
    /// still owes. The handler times the body between reads
    /// (`body_timeout`), and bytes held back by the mark are not reads: so
    /// half a `body_timeout` after the last read the mark drops to 1, which
    /// makes what has arrived readable (Linux signals readiness when the
    /// mark is lowered below what is queued), and a body trickling in
    /// slower than the mark costs a wake per half `body_timeout`.
    fn set_lowat(&mut self, cx: &mut Context<'_>) {
        if self.lowat.is_none() {
            return;
        }
        let left = self.scanner().and_then(|s| s.body_left()).unwrap_or(1);
        let Some(lowat) = &mut self.lowat else { return };
        if left <= 1 {
            lowat.want(1);
            return;
        }
        let at = self.timeouts.body_nudge(self.last_read);
        if Instant::now() >= at {
            lowat.want(1);
            return;
        }
        lowat.want(left);
        let nudge = self
            .nudge
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if nudge.deadline() != at {
            nudge.as_mut().reset(at);
        }
        if nudge.as_mut().poll(cx).is_ready() {
            lowat.want(1);
        }
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
        match self.wait(cx, self.timeouts.send_due(since)) {
            Poll::Ready(()) => Poll::Ready(self.expire("send timed out")),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote(&mut self) {
        self.write_stalled = None;
        self.last_write = Instant::now();
    }

    /// The framing check, while it follows the connection: not once an
    /// upgrade it saw asked for has made the connection a tunnel.
    fn scanner(&mut self) -> Option<&mut Scanner> {
        if self.scanner.as_ref().is_some_and(Scanner::upgrade_asked) && self.watch.lock().tunnel {
            self.scanner = None;
            self.head_since = None;
        }
        self.scanner.as_mut()
    }

    fn feed(&mut self, data: &[u8]) {
        let Some(scanner) = self.scanner() else {
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
                    if this.lowat.is_some()
                        && this
                            .scanner
                            .as_ref()
                            .is_some_and(|s| s.body_left().is_some())
                    {
                        this.last_read = Instant::now();
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.drained = true;
                this.set_lowat(cx);
                match this.phase().due(&this.timeouts) {
                    Due::At(deadline, what) if this.wait(cx, deadline).is_ready() => match what {
                        Expiry::Close(why) => Poll::Ready(Err(this.expire(why))),
                        Expiry::Park => {
                            this.parking = true;
                            Poll::Ready(Ok(()))
                        }
                    },
                    Due::At(..) | Due::Never => Poll::Pending,
                    Due::AfterRequest => {
                        this.keep_armed(cx);
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

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        task::{Wake, Waker},
        time::Duration,
    };

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::server::{busy::Busy, lifecycle::PARK_AFTER};

    /// Counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn read<S: AsyncRead + Unpin>(g: &mut Guarded<S>, waker: &Waker) -> Poll<io::Result<usize>> {
        let mut buf = [0u8; 256];
        let mut rb = ReadBuf::new(&mut buf);
        let mut cx = Context::from_waker(waker);
        Pin::new(g)
            .poll_read(&mut cx, &mut rb)
            .map_ok(|()| rb.filled().len())
    }

    use super::super::lowat::mark as rcvlowat;

    /// While a body is due, a plain connection's reads wait for what it
    /// still owes (capped at 16 KiB); once it is in, for any byte again.
    #[tokio::test]
    async fn a_body_due_sets_the_sockets_low_water_mark() {
        use std::os::fd::AsRawFd;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let fd = server.as_raw_fd();
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            keepalive: Duration::from_secs(75),
            send: Duration::from_secs(60),
            body: Duration::from_secs(60),
        };
        let mut g = Guarded::new(server, timeouts, false, Some(8192)).body_lowat(fd);
        let waker = Waker::from(Arc::new(Wakes::default()));
        // Sends `bytes`, then reads until all of them are in (the guard's
        // last read found nothing more).
        async fn send_and_read(
            client: &mut tokio::net::TcpStream,
            g: &mut Guarded<tokio::net::TcpStream>,
            waker: &Waker,
            bytes: &[u8],
        ) {
            client.write_all(bytes).await.unwrap();
            let mut got = 0;
            while got < bytes.len() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                while let Poll::Ready(n) = read(g, waker) {
                    got += n.unwrap();
                }
            }
        }
        let head = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc";
        send_and_read(&mut client, &mut g, &waker, head).await;
        let _busy = Busy::enter(g.watch());
        assert_eq!(rcvlowat(fd), 16 * 1024);
        send_and_read(&mut client, &mut g, &waker, &[b'x'; 99_990]).await;
        assert_eq!(rcvlowat(fd), 7, "the body's last 7 bytes");
        send_and_read(&mut client, &mut g, &waker, b"1234567").await;
        assert_eq!(rcvlowat(fd), 1, "no body due");
    }

    /// A request that takes a minute (a slow body, a long poll) used to
    /// wake its connection every second to look for a deadline; now the
    /// keep-alive timer fires once, the request's end wakes it, and the
    /// connection is then parked on time.
    #[tokio::test(start_paused = true)]
    async fn a_long_request_wakes_its_connection_when_it_ends_not_every_second() {
        let (mut client, server) = tokio::io::duplex(1024);
        let timeouts = Timeouts {
            header: Duration::from_secs(10),
            keepalive: Duration::from_secs(75),
            send: Duration::from_secs(60),
            body: Duration::from_secs(60),
        };
        let mut g = Guarded::new(server, timeouts, false, Some(8192)).parking_into(Slot::new());
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(read(&mut g, &waker), Poll::Ready(Ok(n)) if n > 0));
        let busy = Busy::enter(g.watch());
        let mut polls = 0;
        for _ in 0..60 {
            if polls <= wakes.0.load(Ordering::SeqCst) {
                // Woken (or the first time): polled, as the task would be.
                assert!(read(&mut g, &waker).is_pending());
                polls += 1;
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let during = wakes.0.load(Ordering::SeqCst);
        assert!(during <= 2, "{during} wakes during a one-minute request");
        drop(busy);
        assert_eq!(wakes.0.load(Ordering::SeqCst), during + 1, "its end wakes");
        assert!(read(&mut g, &waker).is_pending());
        tokio::time::advance(PARK_AFTER).await;
        assert_eq!(
            read(&mut g, &waker).map(|r| r.unwrap()),
            Poll::Ready(0),
            "parked (end-of-file) a second after the request"
        );
    }
}
