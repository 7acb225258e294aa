//! The table behind a [`Registry`](super::Registry): connections in
//! buckets by client address, each bucket a chain of slots.

use std::{collections::HashMap, net::IpAddr, task::Waker};

use slab::Slab;

use crate::cidr::Cidr;

/// No slot: the end of a bucket's chain.
const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(super) struct Book {
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
    pub(super) heads: HashMap<IpAddr, u32, foldhash::fast::RandomState>,
    pub(super) slots: Slab<Slot>,
    /// Lot rows whose connections were marked, for the lot's task.
    pub(super) rows: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) addr: IpAddr,
    pub(super) kicked: bool,
    /// The lot row it waits in, if it was last seen there (the row may
    /// hold another connection since: see
    /// [`Registry::take_rows`](super::Registry::take_rows)).
    pub(super) row: Option<u32>,
    /// Its neighbours in its bucket's chain ([`NONE`] at either end).
    prev: u32,
    pub(super) next: u32,
    /// Its task, waiting on [`Ticket::kicked`](super::Ticket::kicked).
    pub(super) waker: Option<Waker>,
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
    pub(super) fn buckets(&self, net: &Cidr) -> Vec<u32> {
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

    pub(super) fn insert(&mut self, addr: IpAddr) -> u32 {
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

    pub(super) fn remove(&mut self, slot: u32) {
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
