//! A connection's place in a [`Registry`], and the wait for a kick that
//! marks it.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll, Waker},
};

use super::Registry;

/// A connection's place in a [`Registry`], kept for the connection's life.
#[derive(Debug)]
pub struct Ticket {
    registry: Arc<Registry>,
    slot: u32,
}

impl Ticket {
    pub(super) fn new(registry: Arc<Registry>, slot: u32) -> Self {
        Ticket { registry, slot }
    }

    /// Whether a kick has marked it.
    pub fn is_kicked(&self) -> bool {
        let book = self.registry.book();
        book.slots.get(self.slot as usize).is_some_and(|s| s.kicked)
    }

    /// It waits in the lot's `row` from now on; `false` if it was kicked
    /// already (then it is to be closed, not parked).
    pub fn park(&self, row: usize) -> bool {
        let mut book = self.registry.book();
        let Some(s) = book.slots.get_mut(self.slot as usize) else {
            return false;
        };
        if s.kicked {
            return false;
        }
        // Rows are as many as open connections: far fewer than u32::MAX.
        s.row = u32::try_from(row).ok();
        s.waker = None;
        true
    }

    /// Resolves when a kick marks this connection (at once if one has).
    pub fn kicked(&self) -> Kicked<'_> {
        Kicked {
            ticket: self,
            seen: None,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.book().remove(self.slot);
    }
}

/// See [`Ticket::kicked`].
#[derive(Debug)]
pub struct Kicked<'a> {
    ticket: &'a Ticket,
    /// The registry's generation when this task's waker was left in the
    /// slot, and that waker: while neither changes, nothing to look at.
    seen: Option<(u64, Waker)>,
}

impl Future for Kicked<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ticket: &Ticket = self.ticket;
        let registry = &ticket.registry;
        let generation = registry.generation.load(Ordering::Acquire);
        if let Some((seen, waker)) = &self.seen
            && *seen == generation
            && waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        let mut book = registry.book();
        let Some(s) = book.slots.get_mut(ticket.slot as usize) else {
            return Poll::Pending;
        };
        if s.kicked {
            return Poll::Ready(());
        }
        s.waker = Some(cx.waker().clone());
        // Read under the lock that marks: a later mark moves it first.
        let generation = registry.generation.load(Ordering::Acquire);
        drop(book);
        self.seen = Some((generation, cx.waker().clone()));
        Poll::Pending
    }
}
