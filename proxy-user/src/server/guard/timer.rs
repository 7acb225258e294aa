//! A connection's one timer: armed at or before the earliest read or write
//! deadline that can apply, and only moved later while requests flow, so
//! that a keep-alive connection does not register a timer per request
//! (which would wake the worker's event loop each time).

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use crate::{later::Later, server::busy::Watch};

pub(super) struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// The timer's deadline, never later than the deadline it guards.
    armed: Instant,
    /// Armed by [`Timer::keep_armed`], not for a deadline.
    armed_busy: bool,
}

impl Timer {
    /// A timer that fires at `first`.
    pub(super) fn new(first: Instant) -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(first)),
            armed: first,
            armed_busy: false,
        }
    }

    /// Waits for `deadline`; `Ready` once it has passed.
    pub(super) fn wait(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            if self.armed > deadline || self.sleep.is_elapsed() {
                // Earlier (rare: a write stall), or re-armed after firing.
                self.sleep.as_mut().reset(deadline);
                self.armed = deadline;
                self.armed_busy = false;
            }
            ready!(self.sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
        }
    }

    /// No read deadline applies now (a request is being handled), but one
    /// will once it ends, and the connection must be polled then for it to
    /// be computed (the server may not read again by itself).
    ///
    /// The timer stays registered for that, within `period` (the soonest a
    /// read deadline can come: within
    /// [`PARK_AFTER`](crate::server::lifecycle::PARK_AFTER) when the
    /// connection can be parked, so that it is parked about then): a short
    /// request costs no wake of its own. A request still in progress when
    /// that timer fires (a slow body, a long poll) has its end wake the
    /// connection instead (through `watch`), so that it costs one wake,
    /// not one a period.
    pub(super) fn keep_armed(&mut self, cx: &mut Context<'_>, period: Duration, watch: &Watch) {
        if self.armed_busy && self.sleep.is_elapsed() {
            if !watch.wake_when_idle(cx.waker()) {
                // It just ended: poll again to compute the deadline.
                cx.waker().wake_by_ref();
            }
            return;
        }
        let latest = Instant::now().later(period);
        if self.sleep.is_elapsed() || self.armed > latest {
            self.sleep.as_mut().reset(latest);
            self.armed = latest;
            self.armed_busy = true;
        }
        let _ = self.sleep.as_mut().poll(cx);
    }
}
