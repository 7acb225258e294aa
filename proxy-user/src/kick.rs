//! Kicks: a ban, or a list change that refuses a source, closes that
//! source's open connections too, not only its new ones (issue 13, item 7).
//!
//! Every open connection holds a [`Ticket`]: its place in its worker's
//! [`Registry`], which keeps the worker's connections by client address
//! (an IPv4 address, or an IPv6 address's /64). The daemon publishes each
//! refusal as a [`Kick`] (the networks now refused, minus the allowlist
//! entries that still win) into [`Kicks`], which looks each network up in
//! every registry and marks exactly the connections inside it: a ban of a
//! source costs one lookup per worker plus its matches, and a connection
//! it does not close never hears of it (an escalation storm of thousands
//! of bans a second once woke every connection for every ban: issue 13's
//! review). A network wider than a bucket (a list range, a source under an
//! `ipv6_prefix` shorter than /64) walks the worker's table of buckets.
//!
//! A marked connection closes at once wherever it is: its task waits on
//! [`Ticket::kicked`] beside its work (in-flight requests are dropped, an
//! HTTP/2 connection closes without a GOAWAY: in XDP mode the client's
//! packets are dropped anyway); a connection waiting in the lot (see
//! `server::lot`) is named to the lot's task, which closes its row.
//! Nothing is paid per request: polling [`Ticket::kicked`] is one atomic
//! load until a kick marks something in the registry.

use std::{
    collections::HashMap,
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

/// No slot: the end of a bucket's chain.
const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Book {
    /// The first connection of each bucket (an IPv4 address, or an IPv6
    /// /64), chained through the slots: one table and one slab for every
    /// connection, and no allocation of each one's own. (An ordered set
    /// of addresses, with a node allocation here and there among the
    /// connections' buffers, kept 450 bytes of heap resident per idle
    /// connection: RELIABILITY.md.)
    ///
    /// Keyed by foldhash with a random seed per table: the addresses are
    /// the clients' to choose, so the hash must not be predictable (no
    /// unkeyed hash), and SipHash cost about 0.5k instructions per
    /// connection (register and drop, issue 17).
    heads: HashMap<IpAddr, u32, foldhash::fast::RandomState>,
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
    /// Its neighbours in its bucket's chain ([`NONE`] at either end).
    prev: u32,
    next: u32,
    /// Its task, waiting on [`Ticket::kicked`].
    waker: Option<Waker>,
}

/// The bucket `ip` is chained in: an IPv4 address, an IPv6 address's /64
/// (the default `ipv6_prefix`, so a ban of a source is one bucket).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(_) => Cidr::masked(ip, BUCKET_V6).addr(),
    }
}

const BUCKET_V6: u8 = 64;

impl Book {
    /// The buckets `net` may have connections in: one when it fits in a
    /// bucket (an address, an IPv6 network of /64 or longer: every ban
    /// with the default `ipv6_prefix`), else those inside it (a list
    /// range, a shorter prefix: a walk of the table, never of the tasks).
    fn buckets(&self, net: &Cidr) -> Vec<u32> {
        let fits = net.is_host() || (net.addr().is_ipv6() && net.prefix_len() >= BUCKET_V6);
        if fits {
            return self
                .heads
                .get(&bucket(net.addr()))
                .copied()
                .into_iter()
                .collect();
        }
        self.heads
            .iter()
            .filter(|(b, _)| net.contains(**b))
            .map(|(_, head)| *head)
            .collect()
    }

    fn insert(&mut self, addr: IpAddr) -> u32 {
        // One lookup: the bucket's head is read and replaced in place.
        let head = self.heads.entry(bucket(addr)).or_insert(NONE);
        let next = *head;
        let entry = self.slots.vacant_entry();
        // More than u32::MAX open connections cannot happen (descriptors).
        let slot = u32::try_from(entry.key()).unwrap_or(NONE);
        *head = slot;
        entry.insert(Slot {
            addr,
            kicked: false,
            row: None,
            prev: NONE,
            next,
            waker: None,
        });
        if let Some(n) = self.slots.get_mut(next as usize) {
            n.prev = slot;
        }
        slot
    }

    fn remove(&mut self, slot: u32) {
        let Some(s) = self.slots.try_remove(slot as usize) else {
            return;
        };
        if let Some(p) = self.slots.get_mut(s.prev as usize) {
            p.next = s.next;
        } else if s.next == NONE {
            self.heads.remove(&bucket(s.addr));
        } else {
            self.heads.insert(bucket(s.addr), s.next);
        }
        if let Some(n) = self.slots.get_mut(s.next as usize) {
            n.prev = s.prev;
        }
        // A table emptied after a flood gives its room back.
        if self.heads.len() * 8 < self.heads.capacity() && self.heads.capacity() > 1024 {
            self.heads.shrink_to_fit();
        }
    }
}

impl Registry {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection from `ip`; it leaves when the ticket is dropped.
    pub fn register(self: &Arc<Self>, ip: IpAddr) -> Ticket {
        let slot = self.book().insert(ip);
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
        // Beside its lot row or task: its slot, and its bucket's head if
        // it is alone there.
        let slot = std::mem::size_of::<Slot>();
        let head = std::mem::size_of::<(IpAddr, u32)>();
        println!("slot {slot} bytes, head {head} bytes");
        assert!(slot <= 56 && head <= 24, "slot {slot}, head {head}");
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
        assert_eq!(r.book().slots.len(), 5);
        assert_eq!(k.marked(), 3);
        // Within one /64 bucket, a longer prefix or an address marks only its own.
        let (a, b, c) = (
            t("2001:db8:9:9::1"),
            t("2001:db8:9:9::1:1"),
            t("2001:db8:9:9:8000::1"),
        );
        assert_eq!(k.kick(kick(&["2001:db8:9:9::/96"], &[])), 2);
        assert!(a.is_kicked() && b.is_kicked() && !c.is_kicked());
        // A network wider than a bucket finds every bucket inside it.
        let d = t("2001:db8:9:7::1");
        assert_eq!(k.kick(kick(&["2001:db8:9::/48"], &[])), 2);
        assert!(c.is_kicked() && d.is_kicked());
    }

    #[test]
    fn each_table_hashes_addresses_with_its_own_key() {
        // The addresses are the clients' to choose: a hash without a
        // random key would let them aim every connection at one bucket of
        // the table. Two tables disagree on the same addresses.
        use std::hash::BuildHasher;
        let (a, b) = (Book::default(), Book::default());
        let ips = [ip("192.0.2.1"), ip("10.0.0.1"), ip("2001:db8::")];
        let hashes = |book: &Book| ips.map(|i| book.heads.hasher().hash_one(i));
        assert_ne!(hashes(&a), hashes(&b));
    }

    #[test]
    fn the_registry_agrees_with_a_list_of_its_connections() {
        // Connections that come and go in many buckets (IPv4 addresses and
        // IPv6 /64s, several to a bucket), kicked by addresses, /64s and
        // wider ranges, against a plain list of who is open and marked.
        let k = Kicks::default();
        let r = k.registry();
        let mut open: Vec<(IpAddr, Ticket)> = Vec::new();
        let mut marked: Vec<bool> = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..4000 {
            let n = next();
            let addr = if n % 2 == 0 {
                IpAddr::from([10, 0, (n >> 8) as u8 % 4, (n >> 16) as u8 % 16])
            } else {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                o[7] = (n >> 8) as u8 % 8;
                o[15] = (n >> 16) as u8 % 4;
                IpAddr::from(o)
            };
            match n >> 32 & 7 {
                0..=3 => {
                    open.push((addr, r.register(addr)));
                    marked.push(false);
                }
                4..=5 if !open.is_empty() => {
                    let i = (n >> 40) as usize % open.len();
                    drop(open.swap_remove(i));
                    marked.swap_remove(i);
                }
                6 if round % 8 == 0 => {
                    let net: Cidr = match n >> 40 & 3 {
                        0 => Cidr::masked(addr, if addr.is_ipv4() { 32 } else { 128 }),
                        1 => Cidr::masked(addr, if addr.is_ipv4() { 30 } else { 64 }),
                        2 => Cidr::masked(addr, if addr.is_ipv4() { 16 } else { 48 }),
                        _ => Cidr::masked(addr, if addr.is_ipv4() { 28 } else { 127 }),
                    };
                    let expected = open
                        .iter()
                        .zip(&marked)
                        .filter(|((a, _), m)| !**m && net.contains(*a))
                        .count();
                    let got = k.kick(Kick {
                        nets: vec![net],
                        except: Vec::new(),
                    });
                    assert_eq!(got, expected, "round {round}: {net:?}");
                    for ((a, _), m) in open.iter().zip(marked.iter_mut()) {
                        *m |= net.contains(*a);
                    }
                }
                _ => {}
            }
        }
        for ((a, t), m) in open.iter().zip(&marked) {
            assert_eq!(t.is_kicked(), *m, "{a}");
        }
        assert_eq!(r.book().slots.len(), open.len());
        drop(open);
        let book = r.book();
        assert!(book.heads.is_empty() && book.slots.is_empty());
    }

    #[test]
    fn chains_follow_connections_that_come_and_go() {
        let k = Kicks::default();
        let r = k.registry();
        let ip = ip("2001:db8::1");
        // Many in one bucket, dropped in every order: the chain stays whole.
        let mut tickets: Vec<Ticket> = (0..10).map(|_| r.register(ip)).collect();
        for i in [9, 0, 4, 5, 1] {
            drop(tickets.remove(i.min(tickets.len() - 1)));
        }
        let alive = tickets.len();
        tickets.push(r.register(ip));
        assert_eq!(k.kick(kick(&["2001:db8::/64"], &[])), alive + 1);
        assert!(tickets.iter().all(Ticket::is_kicked));
        drop(tickets);
        let book = r.book();
        assert!(book.heads.is_empty() && book.slots.is_empty());
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
