//! One worker's open connections, by client address: where a kick looks
//! for the connections it closes.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

use super::{Kick, Ticket, book::Book};

/// One worker's open connections, by client address.
#[derive(Debug, Default)]
pub struct Registry {
    book: Mutex<Book>,
    /// Bumped whenever a kick marks a connection here: until it moves, a
    /// waiting [`Kicked`] knows that its own connection was not marked.
    pub(super) generation: AtomicU64,
    /// Wakes the lot's task when rows of it were kicked ([`Registry::take_rows`]).
    rows_kicked: Notify,
}

impl Registry {
    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection from `ip`; it leaves when the ticket is dropped.
    pub fn register(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let slot = self.book().insert(ip);
        Ticket::new(self.clone(), slot)
    }

    /// Marks the connections `kick` refuses, and wakes them; how many.
    pub(super) fn kick(&self, kick: &Kick) -> usize {
        let mut wakers = Vec::new();
        let mut marked = 0;
        let mut rows = false;
        {
            let mut book = self.book();
            for net in &kick.nets {
                for head in book.buckets(net) {
                    let mut at = head;
                    while let Some(s) = book.slots.get_mut(at as usize) {
                        at = s.next;
                        let ip = s.addr;
                        if s.kicked
                            || !net.contains(ip)
                            || kick.except.iter().any(|e| e.contains(ip))
                        {
                            continue;
                        }
                        s.kicked = true;
                        marked += 1;
                        wakers.extend(s.waker.take());
                        if let Some(row) = s.row {
                            book.rows.push(row as usize);
                            rows = true;
                        }
                    }
                }
            }
            if marked > 0 {
                // Before any waker runs: a woken `Kicked` must see it moved.
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        for w in wakers {
            w.wake();
        }
        if rows {
            self.rows_kicked.notify_one();
        }
        marked
    }

    /// Resolves when rows of the lot may have been kicked (a kick while
    /// nobody waits is kept for the next wait).
    pub async fn rows_kicked(&self) {
        self.rows_kicked.notified().await
    }

    /// The lot rows kicked since the last call. A row's connection may
    /// have moved on since and another taken its place: close a row only
    /// if its ticket [`Ticket::is_kicked`].
    pub fn take_rows(&self) -> Vec<usize> {
        std::mem::take(&mut self.book().rows)
    }
}
