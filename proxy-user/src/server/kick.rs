//! Kicks: a ban, or a list change that refuses a source, closes that
//! source's open connections too, not only its new ones (issue 13, item 7).
//!
//! The daemon publishes each refusal as a [`Kick`] (the networks now
//! refused, minus the allowlist entries that still win) into [`Kicks`],
//! which numbers them. Every connection task waits on the kicks beside
//! its work ([`Kicks::kicked`]), and the lot checks its waiting rows (see
//! [`super::lot`]); a connection whose client a newer kick refuses is
//! closed at once: in-flight requests are dropped, an HTTP/2 connection
//! is closed without a GOAWAY (in XDP mode the client's packets are
//! dropped anyway).
//!
//! Nothing is paid per request: a waiting task registers its waker once
//! ([`Waiter`], a lock when it starts and when it ends), and each poll
//! after that is one atomic load (a task is polled a few times per
//! request; a `watch` receiver's `changed()` took the watch's lock at
//! each). A kick wakes every registered task once.

use std::{
    collections::VecDeque,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
};

use slab::Slab;

use crate::cidr::Cidr;

/// Kicks kept for connections that have not looked yet; a connection that
/// fell further behind checks the ones kept (it is woken within
/// milliseconds of each kick, so this never happens in practice).
const KEPT: usize = 4096;

/// Networks whose open connections close, except addresses in `except`
/// (allowlisted, which wins over bans and the blocklist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kick {
    pub nets: Vec<Cidr>,
    pub except: Vec<Cidr>,
}

impl Kick {
    fn refuses(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip)) && !self.except.iter().any(|e| e.contains(ip))
    }
}

/// The kicks published so far, numbered from 1.
#[derive(Debug, Default)]
pub struct Kicks {
    /// The latest kick's number (0 before the first).
    generation: AtomicU64,
    kept: Mutex<VecDeque<(u64, Kick)>>,
    /// The tasks to wake at each kick.
    waiting: Mutex<Slab<Waker>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Kicks {
    /// Closes the open connections `kick` refuses.
    pub fn kick(&self, kick: Kick) {
        if kick.nets.is_empty() {
            return;
        }
        let mut kept = lock(&self.kept);
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((generation, kick));
        // Published after it is kept (see `refused_since`), and before the
        // wakes (see `Waiter::poll_after`).
        self.generation.store(generation, Ordering::Release);
        drop(kept);
        for (_, waker) in lock(&self.waiting).iter() {
            waker.wake_by_ref();
        }
    }

    /// The number of the latest kick: a connection accepted now need not
    /// look at kicks up to it (the gate already refused their sources).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a kick after `seen` refuses `ip`, and the latest kick's number.
    pub fn refused_since(&self, seen: u64, ip: IpAddr) -> (bool, u64) {
        // The usual case, no kick since: no lock shared by the workers.
        if self.generation() <= seen {
            return (false, seen);
        }
        let kept = lock(&self.kept);
        let latest = kept.back().map_or(seen, |(g, _)| *g);
        let refused = kept
            .iter()
            .rev()
            .take_while(|(g, _)| *g > seen)
            .any(|(_, k)| k.refuses(ip));
        (refused, latest.max(seen))
    }

    /// Resolves when a kick after `seen` refuses `ip`; never otherwise.
    pub fn kicked(&self, seen: u64, ip: IpAddr) -> Kicked<'_> {
        Kicked {
            waiter: self.waiter(),
            seen,
            ip,
        }
    }

    /// A place among the tasks woken by kicks (for the lot, which then
    /// checks its rows).
    pub fn waiter(&self) -> Waiter<'_> {
        Waiter {
            kicks: self,
            key: None,
            waker: None,
        }
    }
}

/// A task's place among those a kick wakes: its waker, registered at its
/// first wait and again only if the task's waker changes.
#[derive(Debug)]
pub struct Waiter<'a> {
    kicks: &'a Kicks,
    /// Its entry in `kicks.waiting`.
    key: Option<usize>,
    /// The waker registered there.
    waker: Option<Waker>,
}

impl Waiter<'_> {
    /// Ready with the latest kick's number once it is after `seen`.
    pub fn poll_after(&mut self, cx: &mut Context<'_>, seen: u64) -> Poll<u64> {
        let latest = self.kicks.generation();
        if latest > seen {
            return Poll::Ready(latest);
        }
        // Registered with this waker: a later kick wakes it.
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let waker = cx.waker().clone();
        {
            let mut waiting = lock(&self.kicks.waiting);
            match self.key {
                Some(key) => waiting[key] = waker.clone(),
                None => self.key = Some(waiting.insert(waker.clone())),
            }
        }
        self.waker = Some(waker);
        // A kick published meanwhile may have woken the tasks before this
        // one was among them: look again.
        let latest = self.kicks.generation();
        if latest > seen {
            Poll::Ready(latest)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(&self.kicks.waiting).remove(key);
        }
    }
}

/// See [`Kicks::kicked`].
#[derive(Debug)]
pub struct Kicked<'a> {
    waiter: Waiter<'a>,
    /// The last kick looked at.
    seen: u64,
    ip: IpAddr,
}

impl Future for Kicked<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            let Poll::Ready(latest) = this.waiter.poll_after(cx, this.seen) else {
                return Poll::Pending;
            };
            let (refused, checked) = this.waiter.kicks.refused_since(this.seen, this.ip);
            if refused {
                return Poll::Ready(());
            }
            this.seen = checked.max(latest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn kick(nets: &[&str], except: &[&str]) -> Kick {
        Kick {
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            except: except.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_kick_refuses_its_networks_except_the_allowlisted() {
        let k = Kicks::default();
        let seen = k.generation();
        k.kick(kick(&["2001:db8:1:2::/64", "10.0.0.0/8"], &["10.1.0.0/16"]));
        assert_eq!(k.refused_since(seen, ip("2001:db8:1:2::77")), (true, 1));
        assert_eq!(k.refused_since(seen, ip("10.2.3.4")), (true, 1));
        assert_eq!(
            k.refused_since(seen, ip("10.1.3.4")),
            (false, 1),
            "allowlisted"
        );
        assert_eq!(k.refused_since(seen, ip("192.0.2.1")), (false, 1));
        assert_eq!(
            k.refused_since(1, ip("10.2.3.4")),
            (false, 1),
            "seen already"
        );
    }

    #[tokio::test]
    async fn kicked_resolves_only_for_a_refused_client() {
        let k = std::sync::Arc::new(Kicks::default());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let seen = k.generation();
        let wait_a = tokio::spawn({
            let k = k.clone();
            async move { k.kicked(seen, a).await }
        });
        let mut wait_b = std::pin::pin!(k.kicked(seen, b));
        tokio::task::yield_now().await;
        k.kick(kick(&["192.0.2.1"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), wait_a)
            .await
            .expect("a is kicked")
            .unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut wait_b)
                .await
                .is_err(),
            "b is not"
        );
        // A kick published before the wait began still counts.
        k.kick(kick(&["192.0.2.0/24"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), wait_b)
            .await
            .expect("b is kicked by the range");
    }

    /// A task registers its waker once however often it is polled, again
    /// only when its waker changes, and leaves when its wait is dropped.
    #[test]
    fn a_waiting_task_is_registered_once_and_leaves_when_dropped() {
        let k = Kicks::default();
        let seen = k.generation();
        let mut wait = k.kicked(seen, ip("192.0.2.1"));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        }
        assert_eq!(lock(&k.waiting).len(), 1);
        let other = Waker::from(std::sync::Arc::new(Noted));
        assert!(
            Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&other))
                .is_pending()
        );
        assert_eq!(lock(&k.waiting).len(), 1, "replaced, not added");
        // A kick for someone else wakes it; it looks and waits on.
        k.kick(kick(&["198.51.100.0/24"], &[]));
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        k.kick(kick(&["192.0.2.0/24"], &[]));
        assert!(Pin::new(&mut wait).poll(&mut cx).is_ready());
        drop(wait);
        assert_eq!(lock(&k.waiting).len(), 0);
    }

    struct Noted;

    impl std::task::Wake for Noted {
        fn wake(self: std::sync::Arc<Self>) {}
    }
}
