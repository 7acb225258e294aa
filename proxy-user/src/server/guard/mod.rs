//! The downstream connection guard: an I/O wrapper around each client
//! connection that enforces the client-side timeouts.
//!
//! The guard tells the connection's phase from what it sees and is told (a
//! request in progress, a head arriving as the HTTP/1 server says, an
//! upgrade) and asks [`super::lifecycle`]
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
//! [`super::park`]): the guard answers the HTTP/1 server's next read with
//! end-of-file and hands the socket back instead of shutting it down.
//!
//! One timer per connection ([`timer`]), armed at or before the earliest
//! deadline that can apply and only moved later while requests flow: a
//! keep-alive connection does not register a timer per request, which
//! would wake the worker's event loop each time. The guard's reads and
//! writes are in [`stream`].

mod stream;
#[cfg(test)]
mod tests;
mod timer;

use std::{
    io,
    sync::Arc,
    task::{Context, Poll},
};

use timer::Timer;
use tokio::time::Instant;

use super::{
    busy::Watch,
    lifecycle::{Awaiting, Phase, Timeouts},
    lowat::BodyMark,
    park::{Parked, Slot},
};
use crate::later::Later;

/// A client connection with its timeouts.
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
    /// HTTP/2 has no heads to time: only idleness applies.
    http2: bool,
    /// What the body being read still owes, as the HTTP/1 server reading
    /// through the guard ([`super::h1_conn`]) says ([`Guarded::body_left`]).
    body_left: Option<u64>,
    /// When the head being read started arriving, as the HTTP/1 server
    /// says ([`Guarded::head_started`]).
    head_since: Option<Instant>,
    /// Last successful write: a response still being written is not idle.
    last_write: Instant,
    /// When writes started making no progress.
    write_stalled: Option<Instant>,
    /// The connection's one timer, for every deadline.
    timer: Timer,
    expired: Option<&'static str>,
    /// The socket's receive low-water mark, on plain connections.
    lowat: Option<BodyMark>,
}

impl<S> Guarded<S> {
    /// Guards `io`; `http2` when ALPN chose HTTP/2.
    pub fn new(io: S, timeouts: Timeouts, http2: bool) -> Guarded<S> {
        Guarded::built(io, timeouts, http2, None, None, None)
    }

    /// An HTTP/1 connection's guard, as [`Guarded::new`] then
    /// [`awaiting`](Guarded::awaiting), [`parking_into`](Guarded::parking_into)
    /// and, for a plain socket `lowat_fd`, [`body_lowat`](Guarded::body_lowat),
    /// but built whole: each step of the builder moved the guard, a
    /// `memcpy` each per connection (issue 17).
    pub fn http1(
        io: S,
        timeouts: Timeouts,
        awaiting: Awaiting,
        slot: Arc<Slot<S>>,
        lowat_fd: Option<std::os::fd::RawFd>,
    ) -> Guarded<S> {
        Guarded::built(
            io,
            timeouts,
            false,
            Some(awaiting),
            Some(slot),
            lowat_fd.map(BodyMark::new),
        )
    }

    #[inline(always)]
    fn built(
        io: S,
        timeouts: Timeouts,
        http2: bool,
        awaiting: Option<Awaiting>,
        slot: Option<Arc<Slot<S>>>,
        lowat: Option<BodyMark>,
    ) -> Guarded<S> {
        let now = Instant::now();
        let first = now.later(timeouts.soonest_read(false));
        let watch = Watch::new(now);
        let mut last_write = now;
        if let Some(awaiting) = awaiting {
            watch.lock().awaiting(awaiting);
            last_write = awaiting.since;
        }
        Guarded {
            io: Some(io),
            slot,
            parking: false,
            drained: false,
            prefix: Vec::new(),
            prefix_at: 0,
            watch: Arc::new(watch),
            timeouts,
            http2,
            body_left: None,
            head_since: None,
            last_write,
            write_stalled: None,
            timer: Timer::new(first),
            expired: None,
            lowat,
        }
    }

    /// Wakes reads of a request body only once the rest of it has arrived
    /// (see [`super::lowat`]); `fd` is the plain socket this guard holds.
    /// (Connections are built whole by [`Guarded::http1`].)
    #[cfg(test)]
    pub fn body_lowat(mut self, fd: std::os::fd::RawFd) -> Guarded<S> {
        self.lowat = Some(BodyMark::new(fd));
        self
    }

    /// A head began arriving at `at`; `None`: no head is partly read.
    pub fn head_started(&mut self, at: Option<Instant>) {
        self.head_since = at;
    }

    /// What the request body being read still owes before anything else
    /// can come (`None` outside a body, or unknown).
    pub fn body_left(&mut self, left: Option<u64>) {
        if self.body_left.is_none()
            && left.is_some()
            && let Some(mark) = &mut self.lowat
        {
            // The body's data starts (its first bytes may have come with
            // the head): its reads are timed from now.
            mark.body_read();
        }
        self.body_left = left;
    }

    /// Parks the connection into `slot` once it idles between requests
    /// (HTTP/1 only: its server tells the guard where heads are).
    #[cfg(test)]
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
        self.watch.lock().awaiting(awaiting);
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
        if self.write_stalled.is_some() {
            // The last response is not all written yet: not idle.
            return Phase::Sending;
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
                parkable: self.slot.is_some() && self.drained,
            },
            phase => phase,
        }
    }

    /// Hands the stream to the parking slot (once).
    fn hand_back(&mut self) {
        if let (Some(lowat), Some(_)) = (&mut self.lowat, &self.io) {
            lowat.release();
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
        self.timer.wait(cx, deadline)
    }

    /// No read deadline applies now (a request is being handled): keeps
    /// the timer registered for when one will ([`Timer::keep_armed`]).
    fn keep_armed(&mut self, cx: &mut Context<'_>) {
        let period = self.timeouts.soonest_read(self.slot.is_some());
        self.timer.keep_armed(cx, period, &self.watch);
    }

    /// Has the socket's receive low-water mark follow what the body being
    /// read still owes ([`BodyMark::follow`]).
    fn set_lowat(&mut self, cx: &mut Context<'_>) {
        if self.lowat.is_none() {
            return;
        }
        let left = self.body_left.unwrap_or(1);
        let timeouts = self.timeouts;
        if let Some(mark) = &mut self.lowat {
            mark.follow(cx, left, &timeouts);
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
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        if self.parking {
            self.hand_back();
        }
    }
}
