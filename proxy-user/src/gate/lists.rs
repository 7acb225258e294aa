//! The gate's allowlist, blocklist and bans: each entry kept with its
//! origin (as `list` views show it) beside a set built for lookups.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Duration,
};

use tokio::time::Instant;

use super::Gate;
use crate::{
    cidr::{Cidr, CidrSet},
    filter::{BanEntry, List},
};

#[derive(Debug, Default)]
pub(super) struct Lists {
    /// Entries with their origin, as `list` views show them...
    pub(super) allow: BTreeMap<Cidr, u32>,
    pub(super) block: BTreeMap<Cidr, u32>,
    /// ...and as lookups read them.
    pub(super) allow_set: CidrSet,
    pub(super) block_set: CidrSet,
    /// Banned sources ([`source::key`]): expiry (`None`: until removed) and origin.
    pub(super) bans: HashMap<IpAddr, (Option<Instant>, u32)>,
}

impl Lists {
    pub(super) fn rebuild(&mut self) {
        self.allow_set = CidrSet::build(self.allow.keys());
        self.block_set = CidrSet::build(self.block.keys());
    }

    pub(super) fn list(&mut self, list: List) -> &mut BTreeMap<Cidr, u32> {
        match list {
            List::Allow => &mut self.allow,
            List::Block => &mut self.block,
        }
    }
}

// === impl Gate: its lists and bans ===

impl Gate {
    pub fn insert(&self, list: List, cidr: Cidr, origin: u32) {
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        lists.list(list).insert(cidr, origin);
        match list {
            List::Allow => lists.allow_set.add(cidr),
            List::Block => lists.block_set.add(cidr),
        }
    }

    pub fn remove(&self, list: List, cidr: Cidr) -> bool {
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        let removed = lists.list(list).remove(&cidr).is_some();
        if removed {
            match list {
                List::Allow => lists.allow_set.del(cidr),
                List::Block => lists.block_set.del(cidr),
            }
        }
        removed
    }

    pub fn entries(&self, list: List) -> Vec<(Cidr, u32)> {
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        lists.list(list).iter().map(|(c, o)| (*c, *o)).collect()
    }

    /// Bans the source `addr` belongs to (for IPv6, its whole prefix).
    pub fn ban(&self, addr: IpAddr, ttl: Option<Duration>, origin: u32) {
        let expiry = ttl.map(|t| crate::later::Later::later(Instant::now(), t));
        let key = self.key(addr);
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        lists.bans.insert(key, (expiry, origin));
    }

    pub fn unban(&self, addr: IpAddr) -> bool {
        let key = self.key(addr);
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        lists.bans.remove(&key).is_some()
    }

    /// Lifts the bans stored under exactly `keys` (not masked again).
    pub fn lift_bans(&self, keys: &[IpAddr]) -> usize {
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter(|k| lists.bans.remove(k).is_some())
            .count()
    }

    /// Whether the source `addr` belongs to is banned now.
    pub fn banned(&self, addr: IpAddr) -> bool {
        let key = self.key(addr);
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        lists
            .bans
            .get(&key)
            .is_some_and(|(expiry, _)| expiry.is_none_or(|t| Instant::now() < t))
    }

    pub fn bans(&self) -> Vec<BanEntry> {
        let now = Instant::now();
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        lists
            .bans
            .iter()
            .map(|(addr, (expiry, origin))| BanEntry {
                addr: *addr,
                remaining: expiry.map(|t| t.saturating_duration_since(now)),
                origin: *origin,
            })
            .collect()
    }

    /// Removes expired bans; returns how many.
    pub fn sweep_bans(&self) -> usize {
        let now = Instant::now();
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        let before = lists.bans.len();
        lists
            .bans
            .retain(|_, (expiry, _)| expiry.is_none_or(|t| now < t));
        before - lists.bans.len()
    }
}
