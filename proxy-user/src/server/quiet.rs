//! A wait polled only when it was woken.
//!
//! A connection's task waits on a rare event beside its work (the worker
//! draining at shutdown): `select!` polls every branch each time the task
//! is woken, a few times per request, and a `watch` wait takes the watch's
//! lock at each of those polls to register its waker again. [`Quiet`]
//! polls the wait it wraps with a waker of its own, and polls it again
//! only once that waker was woken: its other polls are an atomic swap and
//! a waker comparison (with the select biased, 0.5k instructions fewer per
//! keep-alive GET under callgrind).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

/// Wraps `inner`, a wait that is seldom ready.
pub struct Quiet<F> {
    inner: F,
    /// The flag, and the waker `inner` is polled with (it raises the
    /// flag): made at the first poll, so a wait never polled costs no
    /// allocation.
    flag: Option<(Arc<Flag>, Waker)>,
    /// The task's waker the flag wakes (a copy, to compare without a lock).
    task: Option<Waker>,
}

/// Raised when the wrapped wait's waker is woken, which wakes the task.
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<F: Future> Quiet<F> {
    pub fn new(inner: F) -> Quiet<F> {
        Quiet {
            inner,
            flag: None,
            task: None,
        }
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is pinned with `self` and never moved out of it
        // (there is no `Drop` and no other access to it); the other fields
        // are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let (flag, waker) = this.flag.get_or_insert_with(|| {
            let flag = Arc::new(Flag {
                // Raised: the first poll polls `inner`.
                woken: AtomicBool::new(true),
                task: Mutex::new(None),
            });
            (flag.clone(), Waker::from(flag))
        });
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let task = cx.waker().clone();
            *flag.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.clone());
            this.task = Some(task);
        }
        // Lowered before `inner` is polled: a wake during the poll raises
        // it again. A wake before the new task waker was stored raised it
        // too, and is seen here.
        if !flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        inner.poll(&mut Context::from_waker(waker))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls; ready once `ready` is set, waking the waker it
    /// was last polled with when `fire` is called.
    #[derive(Default)]
    struct Event {
        polls: AtomicUsize,
        ready: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    impl Event {
        fn fire(&self) {
            self.ready.store(true, Ordering::Release);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    struct Wait<'a>(&'a Event);

    impl Future for Wait<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::Relaxed);
            if self.0.ready.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn the_wait_is_polled_once_then_only_when_woken() {
        let event = Event::default();
        let mut quiet = std::pin::pin!(Quiet::new(Wait(&event)));
        let wakes = Arc::new(Wakes::default());
        let task = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&task);
        for _ in 0..5 {
            assert!(quiet.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(event.polls.load(Ordering::Relaxed), 1);
        // Its event wakes the task, and the next poll is ready.
        event.fire();
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        assert!(quiet.as_mut().poll(&mut cx).is_ready());
        assert_eq!(event.polls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_new_task_waker_is_the_one_woken() {
        let event = Event::default();
        let mut quiet = std::pin::pin!(Quiet::new(Wait(&event)));
        let first = Arc::new(Wakes::default());
        let second = Arc::new(Wakes::default());
        let waker = Waker::from(first.clone());
        assert!(
            quiet
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let waker = Waker::from(second.clone());
        assert!(
            quiet
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        event.fire();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
        assert!(
            quiet
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    }
}
