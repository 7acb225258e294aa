//! What a connection's request handlers and its guard
//! ([`super::guard::Guarded`]) share: how many requests are in progress,
//! since when the connection has idled, and the framing check's verdicts.
//! A request in progress is a [`Busy`]; read deadlines apply only while
//! there is none.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::framing::Verdict;

/// What the request handlers and the I/O wrapper of one connection share.
#[derive(Debug)]
pub struct Watch {
    inner: Mutex<Activity>,
}

/// The shared state, under the [`Watch`]'s lock.
#[derive(Debug)]
pub(super) struct Activity {
    /// Requests being handled (HTTP/2 handles several at once).
    pub(super) busy: u32,
    /// When the last request finished, or the connection was accepted.
    pub(super) idle_since: Instant,
    /// A request has been served: idleness is now keep-alive idleness.
    pub(super) served: bool,
    /// The connection was upgraded; its tunnel times itself.
    pub(super) tunnel: bool,
    /// Framing verdicts of heads read and not yet handled, in order. Once
    /// the check stops following a connection no more are added, and the
    /// requests after it are not judged.
    pub(super) verdicts: VecDeque<Verdict>,
    /// Woken when `busy` drops to 0: the connection's task, waiting for a
    /// long request's end (see `guard::timer::Timer::keep_armed`).
    pub(super) on_idle: Option<Waker>,
}

impl Watch {
    pub(super) fn new(now: Instant) -> Watch {
        Watch {
            inner: Mutex::new(Activity {
                busy: 0,
                idle_since: now,
                served: false,
                tunnel: false,
                verdicts: VecDeque::new(),
                on_idle: None,
            }),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Has `waker` woken when no request is in progress any more; false
    /// when none is now.
    pub(super) fn wake_when_idle(&self, waker: &Waker) -> bool {
        let mut s = self.lock();
        if s.busy == 0 {
            return false;
        }
        if !s.on_idle.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.on_idle = Some(waker.clone());
        }
        true
    }
}

/// A request in progress on a connection; dropping it ends the request.
pub struct Busy {
    watch: Arc<Watch>,
    /// The status and reason the framing check refuses the request with:
    /// 400 for ambiguous framing, 414 or 431 for a head over its limits.
    pub refused: Option<(u16, &'static str)>,
}

impl Busy {
    /// Starts handling the next request read on the connection.
    pub fn enter(watch: &Arc<Watch>) -> Busy {
        let mut s = watch.lock();
        s.busy += 1;
        let verdict = s.verdicts.pop_front();
        Busy {
            watch: watch.clone(),
            refused: match verdict {
                Some(Verdict::Ambiguous(why)) => Some((400, why)),
                Some(Verdict::TooLarge { status, why }) => Some((status, why)),
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
        let woken = {
            let mut s = self.watch.lock();
            s.busy -= 1;
            s.served = true;
            if s.busy == 0 {
                s.idle_since = Instant::now();
                s.on_idle.take()
            } else {
                None
            }
        };
        if let Some(w) = woken {
            w.wake();
        }
    }
}

/// A response body still being sent: the request stays in progress (a
/// [`Busy`]) until it has been sent or dropped. Without it a streamed
/// response whose upstream paused for a second counted as an idle
/// connection, and was parked with the response half sent.
pub struct BusyBody<B> {
    inner: B,
    _busy: Busy,
}

impl<B> BusyBody<B> {
    pub fn new(inner: B, busy: Busy) -> BusyBody<B> {
        BusyBody { inner, _busy: busy }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for BusyBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
