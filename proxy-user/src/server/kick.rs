//! Kicks: a ban, or a list change that refuses a source, closes that
//! source's open connections too, not only its new ones (issue 13, item 7).
//!
//! Every open connection holds a [`Ticket`]: its place in its worker's
//! [`Registry`], which keeps the workers' connections by client address.
//! The daemon publishes each refusal as a [`Kick`] (the networks now
//! refused, minus the allowlist entries that still win) into [`Kicks`],
//! which looks each network up in every registry as one range of
//! addresses and marks exactly the connections inside it: a kick costs
//! O(workers x log connections + matches), and a connection it does not
//! close never hears of it (an escalation storm of thousands of bans a
//! second once woke every connection for every ban: issue 13's review).
//!
//! A marked connection closes at once wherever it is: its task waits on
//! [`Ticket::kicked`] beside its work (in-flight requests are dropped, an
//! HTTP/2 connection closes without a GOAWAY: in XDP mode the client's
//! packets are dropped anyway); a connection waiting in the lot (see
//! [`super::lot`]) is named to the lot's task, which closes its row.
//! Nothing is paid per request: polling [`Ticket::kicked`] is one atomic
//! load until a kick marks something in the registry.

use std::{
    collections::BTreeSet,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
};

use slab::Slab;
use tokio::sync::Notify;

use crate::cidr::Cidr;

/// Networks whose open connections close, except addresses in `except`
/// (allowlisted, which wins over bans and the blocklist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kick {
    pub nets: Vec<Cidr>,
    pub except: Vec<Cidr>,
}

/// Every registry, so that a kick reaches every worker's connections.
#[derive(Debug, Default)]
pub struct Kicks {
    registries: Mutex<Vec<Weak<Registry>>>,
    /// For connections outside a worker's registry (WebSocket tunnels).
    spare: Arc<Registry>,
    /// Connections marked by kicks so far.
    marked: AtomicU64,
}

impl Kicks {
    /// A registry for one worker's connections, reached by every kick from now on.
    pub fn registry(&self) -> Arc<Registry> {
        let registry = Arc::new(Registry::default());
        let mut all = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&registry));
        registry
    }

    /// Registers a connection from `ip` that has no worker registry at
    /// hand (a WebSocket tunnel, which outlives its request).
    pub fn register(&self, ip: IpAddr) -> Ticket {
        self.spare.register(ip)
    }

    /// Closes the open connections `kick` refuses; how many it marked.
    pub fn kick(&self, kick: Kick) -> usize {
        if kick.nets.is_empty() {
            return 0;
        }
        let registries: Vec<Arc<Registry>> = {
            let all = self.registries.lock().unwrap_or_else(|p| p.into_inner());
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let marked = registries
            .iter()
            .chain(std::iter::once(&self.spare))
            .map(|r| r.kick(&kick))
            .sum();
        self.marked.fetch_add(marked as u64, Ordering::Relaxed);
        marked
    }

    /// Connections marked by kicks so far.
    pub fn marked(&self) -> u64 {
        self.marked.load(Ordering::Relaxed)
    }
}

/// One worker's open connections, by client address.
#[derive(Debug, Default)]
pub struct Registry {
    book: Mutex<Book>,
    /// Bumped whenever a kick marks a connection here: until it moves, a
    /// waiting [`Kicked`] knows that its own connection was not marked.
    generation: AtomicU64,
    /// Wakes the lot's task when rows of it were kicked ([`Registry::take_rows`]).
    rows_kicked: Notify,
}

#[derive(Debug, Default)]
struct Book {
    /// (client address, slot): a kick's network is one range of it.
    by_addr: BTreeSet<(IpAddr, u32)>,
    slots: Slab<Slot>,
    /// Lot rows whose connections were marked, for the lot's task.
    rows: Vec<usize>,
}

#[derive(Debug)]
struct Slot {
    addr: IpAddr,
    kicked: bool,
    /// The lot row it waits in, if it was last seen there (the row may
    /// hold another connection since: see [`Registry::take_rows`]).
    row: Option<u32>,
    /// Its task, waiting on [`Ticket::kicked`].
    waker: Option<Waker>,
}

impl Registry {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection from `ip`; it leaves when the ticket is dropped.
    pub fn register(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let mut book = self.book();
        let slot = book.slots.insert(Slot {
            addr: ip,
            kicked: false,
            row: None,
            waker: None,
        });
        // More than u32::MAX open connections cannot happen (descriptors).
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        book.by_addr.insert((ip, slot));
        Ticket {
            registry: self.clone(),
            slot,
        }
    }

    /// Marks the connections `kick` refuses, and wakes them; how many.
    fn kick(&self, kick: &Kick) -> usize {
        let mut wakers = Vec::new();
        let mut marked = 0;
        let mut rows = false;
        {
            let mut guard = self.book();
            let Book {
                by_addr,
                slots,
                rows: kicked_rows,
            } = &mut *guard;
            for net in &kick.nets {
                let range = (net.addr(), 0)..=(net.last(), u32::MAX);
                for &(ip, slot) in by_addr.range(range) {
                    if kick.except.iter().any(|e| e.contains(ip)) {
                        continue;
                    }
                    let Some(s) = slots.get_mut(slot as usize) else {
                        continue;
                    };
                    if s.kicked {
                        continue;
                    }
                    s.kicked = true;
                    marked += 1;
                    if let Some(row) = s.row {
                        kicked_rows.push(row as usize);
                        rows = true;
                    }
                    wakers.extend(s.waker.take());
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

/// A connection's place in a [`Registry`], kept for the connection's life.
#[derive(Debug)]
pub struct Ticket {
    registry: Arc<Registry>,
    slot: u32,
}

impl Ticket {
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
        let mut book = self.registry.book();
        if let Some(s) = book.slots.try_remove(self.slot as usize) {
            book.by_addr.remove(&(s.addr, self.slot));
        }
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
    fn a_connection_costs_a_few_dozen_bytes() {
        // Beside its lot row or task: its slot, and its key in `by_addr`.
        let slot = std::mem::size_of::<Slot>();
        let key = std::mem::size_of::<(IpAddr, u32)>();
        println!("slot {slot} bytes, key {key} bytes");
        assert!(slot <= 48 && key <= 24, "slot {slot}, key {key}");
    }

    #[test]
    fn a_kick_marks_its_networks_except_the_allowlisted() {
        let k = Kicks::default();
        let r = k.registry();
        let t = |s: &str| r.register(ip(s));
        let (v6, v4, allowed, other, edge) = (
            t("2001:db8:1:2::77"),
            t("10.2.3.4"),
            t("10.1.3.4"),
            t("192.0.2.1"),
            t("10.255.255.255"),
        );
        let outside = t("11.0.0.0");
        let marked = k.kick(kick(&["2001:db8:1:2::/64", "10.0.0.0/8"], &["10.1.0.0/16"]));
        assert_eq!(marked, 3);
        assert!(v6.is_kicked() && v4.is_kicked() && edge.is_kicked());
        assert!(!allowed.is_kicked(), "allowlisted");
        assert!(!other.is_kicked() && !outside.is_kicked());
        assert_eq!(k.kick(kick(&["10.2.3.4"], &[])), 0, "marked once");
        // A dropped ticket leaves the registry.
        drop(v4);
        assert_eq!(r.book().by_addr.len(), 5);
        assert_eq!(k.marked(), 3);
    }

    #[test]
    fn a_kicked_row_is_named_to_the_lot_and_a_kicked_connection_is_not_parked() {
        let k = Kicks::default();
        let r = k.registry();
        let (a, b) = (r.register(ip("192.0.2.1")), r.register(ip("192.0.2.2")));
        assert!(a.park(7));
        k.kick(kick(&["192.0.2.0/24"], &[]));
        assert_eq!(r.take_rows(), [7]);
        assert!(a.is_kicked());
        assert!(r.take_rows().is_empty());
        assert!(!b.park(8), "kicked before it was parked");
    }

    #[tokio::test]
    async fn kicked_resolves_only_for_a_marked_connection() {
        let k = Kicks::default();
        let r = k.registry();
        let (a, b) = (r.register(ip("192.0.2.1")), r.register(ip("192.0.2.2")));
        let mut wait_a = std::pin::pin!(a.kicked());
        let mut wait_b = std::pin::pin!(b.kicked());
        let short = std::time::Duration::from_millis(20);
        assert!(tokio::time::timeout(short, &mut wait_a).await.is_err());
        assert!(tokio::time::timeout(short, &mut wait_b).await.is_err());
        k.kick(kick(&["192.0.2.1"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), &mut wait_a)
            .await
            .expect("a is kicked");
        assert!(
            tokio::time::timeout(short, &mut wait_b).await.is_err(),
            "b is not"
        );
        // A kick before the wait began still counts.
        k.kick(kick(&["192.0.2.0/24"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), b.kicked())
            .await
            .expect("b is kicked by the range");
        // The spare registry (tunnels) is kicked too.
        let tunnel = k.register(ip("198.51.100.9"));
        k.kick(kick(&["198.51.100.0/24"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), tunnel.kicked())
            .await
            .expect("the tunnel is kicked");
    }
}
