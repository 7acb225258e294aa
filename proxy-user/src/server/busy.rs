//! What a connection's request handlers and its guard
//! ([`super::guard::Guarded`]) share: how many requests are in progress,
//! and since when the connection has idled. A request in progress is a
//! [`Busy`] (on HTTP/1 until its response has been written, on HTTP/2 until
//! its handler returned); read deadlines apply only while there is none.

use std::{
    sync::{Arc, Mutex},
    task::Waker,
};

use tokio::time::Instant;

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
    /// Woken when `busy` drops to 0: the connection's task, waiting for a
    /// long request's end (see `guard::timer::Timer::keep_armed`).
    pub(super) on_idle: Option<Waker>,
}

impl Activity {
    /// Awaiting a head since `awaiting.since`; served before if it resumed.
    pub(super) fn awaiting(&mut self, awaiting: super::lifecycle::Awaiting) {
        self.idle_since = awaiting.since;
        self.served |= awaiting.resumed;
    }
}

impl Watch {
    pub(super) fn new(now: Instant) -> Watch {
        Watch {
            inner: Mutex::new(Activity {
                busy: 0,
                idle_since: now,
                served: false,
                tunnel: false,
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
}

impl Busy {
    /// Starts handling the next request read on the connection.
    pub fn enter(watch: &Arc<Watch>) -> Busy {
        watch.lock().busy += 1;
        Busy {
            watch: watch.clone(),
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
