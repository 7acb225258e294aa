//! Allow and block lists: where an entry lives in the kernel, and how the
//! configured lists are reconciled with what is installed.
//!
//! Reconciling computes a diff and applies inserts before removals, so there
//! is never a moment when a list is emptier than both the old and the new
//! configuration. Only entries that came from the configuration are touched;
//! entries added at runtime (CLI, escalation) keep their place.

use std::{collections::BTreeSet, net::IpAddr};

use aya::maps::lpm_trie::Key;
use proxy_common::{
    config as kcfg, index,
    list::{ListValue, MAX_RANGE_PROBES, ORIGIN_CONFIG},
    pin,
};

use super::{
    FilterError, FilterMaps,
    maps::{net, v4, v6},
};
use crate::cidr::Cidr;

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Allow,
    Block,
}

/// How views name an entry's origin (`proxy_common::list::ORIGIN_*`), as
/// the state file records it.
pub fn origin_name(origin: u32) -> &'static str {
    match origin {
        ORIGIN_CONFIG => "config",
        proxy_common::list::ORIGIN_CLI => "cli",
        proxy_common::list::ORIGIN_ESCALATION => "auto-ban",
        _ => "unknown",
    }
}

/// What to insert and what to remove to go from `installed` to `desired`.
pub fn diff(installed: &BTreeSet<Cidr>, desired: &BTreeSet<Cidr>) -> (Vec<Cidr>, Vec<Cidr>) {
    let add = desired.difference(installed).copied().collect();
    let remove = installed.difference(desired).copied().collect();
    (add, remove)
}

// === impl FilterMaps: list contents ===

/// Below this many ranges in a family, the LPM trie (whose cost grows with
/// its size) is cheaper than hash probes; measured with `cargo xtask bench xdp`.
const PROBE_MIN_RANGES: usize = 128;

impl FilterMaps {
    /// Whether `cidr` shares any address with an allowlist entry.
    pub(super) fn overlaps_allow(&self, cidr: Cidr) -> Result<bool, FilterError> {
        Ok(self
            .entries(List::Allow)?
            .iter()
            .any(|(a, _)| overlap(*a, cidr)))
    }

    /// Whether some blocklist entry or ban shares an address with `allow`.
    pub(super) fn overlaps_drops(&self, allow: &[Cidr]) -> Result<bool, FilterError> {
        if allow.is_empty() {
            return Ok(false);
        }
        let hits = |c: Cidr| allow.iter().any(|a| overlap(*a, c));
        let prefix = self.ipv6_prefix()?;
        Ok(self.entries(List::Block)?.into_iter().any(|(c, _)| hits(c))
            || (self.bans()?.into_iter()).any(|b| hits(crate::source::prefix(b.addr, prefix))))
    }

    /// Recomputes `FLAG_ALLOW_OVERLAPS` from the maps. Walks the whole
    /// blocklist, but only when the allowlist is not empty.
    pub fn recompute_overlap(&mut self) -> Result<bool, FilterError> {
        let allow: Vec<Cidr> = self
            .entries(List::Allow)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let on = self.overlaps_drops(&allow)?;
        self.set_hint(kcfg::FLAG_ALLOW_OVERLAPS, on)?;
        Ok(on)
    }

    /// Recomputes which prefix lengths the blocklist ranges use, and whether
    /// the program may probe the range index (few lengths) instead of the
    /// trie. The index always holds every range it has room for, so
    /// switching is safe at any time.
    pub(super) fn refresh_ranges(&mut self) -> Result<(), FilterError> {
        let lens4: Vec<u32> = self
            .block_v4
            .keys()
            .filter_map(Result::ok)
            .map(|k| k.prefix_len())
            .collect();
        let lens6: Vec<u32> = self
            .block_v6
            .keys()
            .filter_map(Result::ok)
            .map(|k| k.prefix_len())
            .collect();
        let mut value = self.config()?;
        let use4 = worth_probing(&lens4);
        let use6 = worth_probing(&lens6);
        value.probes_v4 = Default::default();
        value.probes_v6 = Default::default();
        if let Some(lens) = &use4 {
            for (slot, len) in value.probes_v4.iter_mut().zip(lens) {
                *slot = index::probe_v4(*len);
            }
        }
        if let Some(lens) = &use6 {
            for (slot, len) in value.probes_v6.iter_mut().zip(lens) {
                *slot = index::probe_v6(*len);
            }
        }
        for (on, flag) in [
            (use4.is_some(), kcfg::FLAG_RANGES_INDEXED_V4),
            (use6.is_some(), kcfg::FLAG_RANGES_INDEXED_V6),
        ] {
            if on {
                value.flags |= flag;
            } else {
                value.flags &= !flag;
            }
        }
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// Puts `cidr` on `list` with `origin`. Single blocked addresses go in the
    /// exact-address hash, everything else in the LPM trie.
    pub fn insert(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError> {
        // Raise the overlap hint before the entry exists, so an allowlisted
        // source is never dropped by the new entry, not even for a packet.
        let overlapping = match list {
            List::Block => self.overlaps_allow(cidr)?,
            List::Allow => self.overlaps_drops(&[cidr])?,
        };
        if overlapping {
            self.set_hint(kcfg::FLAG_ALLOW_OVERLAPS, true)?;
        }
        self.insert_raw(list, cidr, origin)?;
        if list == List::Block {
            self.index_insert(cidr)?;
        }
        if list == List::Block && !cidr.is_host() {
            self.refresh_ranges()?;
        }
        self.refresh_flags()
    }

    pub(super) fn insert_raw(
        &mut self,
        list: List,
        cidr: Cidr,
        origin: u32,
    ) -> Result<(), FilterError> {
        let value = ListValue { origin };
        let len = cidr.prefix_len() as u32;
        self.allow_changed |= list == List::Allow;
        if list == List::Block {
            // Its bit before the program can meet the entry (`listed.rs`).
            self.list_mark_block(cidr);
        }
        let written = match (list, cidr.addr()) {
            (List::Block, IpAddr::V4(ip)) if cidr.is_host() => self
                .block_addr_v4
                .insert(v4(ip), value, 0)
                .map_err(FilterError::map(pin::BLOCK_ADDR_V4)),
            (List::Block, IpAddr::V6(ip)) if cidr.is_host() => self
                .block_addr_v6
                .insert(v6(ip), value, 0)
                .map_err(FilterError::map(pin::BLOCK_ADDR_V6)),
            (List::Block, IpAddr::V4(ip)) => {
                self.block_v4
                    .insert(&Key::new(len, v4(ip)), value, 0)
                    .map_err(FilterError::map(pin::BLOCK_V4))?;
                Ok(())
            }
            (List::Block, IpAddr::V6(ip)) => {
                self.block_v6
                    .insert(&Key::new(len, v6(ip)), value, 0)
                    .map_err(FilterError::map(pin::BLOCK_V6))?;
                Ok(())
            }
            (List::Allow, IpAddr::V4(ip)) => self
                .allow_v4
                .insert(&Key::new(len, v4(ip)), value, 0)
                .map_err(FilterError::map(pin::ALLOW_V4)),
            (List::Allow, IpAddr::V6(ip)) => self
                .allow_v6
                .insert(&Key::new(len, v6(ip)), value, 0)
                .map_err(FilterError::map(pin::ALLOW_V6)),
        };
        if list == List::Block {
            // And again: a rebuild racing with this write keeps it.
            self.list_mark_block(cidr);
        }
        written
    }

    /// Takes `cidr` off `list`; returns whether it was there.
    pub fn remove(&mut self, list: List, cidr: Cidr) -> Result<bool, FilterError> {
        if list == List::Block {
            self.index_remove(cidr)?;
        }
        let removed = self.remove_raw(list, cidr);
        if list == List::Block && !cidr.is_host() {
            self.refresh_ranges()?;
        }
        self.refresh_flags()?;
        if list == List::Allow {
            self.recompute_overlap()?;
        }
        Ok(removed)
    }

    pub(super) fn remove_raw(&mut self, list: List, cidr: Cidr) -> bool {
        let len = cidr.prefix_len() as u32;
        self.allow_changed |= list == List::Allow;
        let removed = match (list, cidr.addr()) {
            (List::Block, IpAddr::V4(ip)) if cidr.is_host() => {
                self.block_addr_v4.remove(&v4(ip)).is_ok()
            }
            (List::Block, IpAddr::V6(ip)) if cidr.is_host() => {
                self.block_addr_v6.remove(&v6(ip)).is_ok()
            }
            (List::Block, IpAddr::V4(ip)) => self.block_v4.remove(&Key::new(len, v4(ip))).is_ok(),
            (List::Block, IpAddr::V6(ip)) => self.block_v6.remove(&Key::new(len, v6(ip))).is_ok(),
            (List::Allow, IpAddr::V4(ip)) => self.allow_v4.remove(&Key::new(len, v4(ip))).is_ok(),
            (List::Allow, IpAddr::V6(ip)) => self.allow_v6.remove(&Key::new(len, v6(ip))).is_ok(),
        };
        // Its bit stays until the next rebuild of the listed-source filter.
        self.listed_removed += u64::from(removed && list == List::Block);
        removed
    }

    /// Every entry of `list` with its origin.
    pub fn entries(&self, list: List) -> Result<Vec<(Cidr, u32)>, FilterError> {
        let mut out = Vec::new();
        let tries = match list {
            List::Allow => [(&self.allow_v4, pin::ALLOW_V4)],
            List::Block => [(&self.block_v4, pin::BLOCK_V4)],
        };
        for (trie, name) in tries {
            for item in trie.iter() {
                let (k, v) = item.map_err(FilterError::map(name))?;
                out.push((net(IpAddr::from(k.data()), k.prefix_len()), v.origin));
            }
        }
        let tries6 = match list {
            List::Allow => [(&self.allow_v6, pin::ALLOW_V6)],
            List::Block => [(&self.block_v6, pin::BLOCK_V6)],
        };
        for (trie, name) in tries6 {
            for item in trie.iter() {
                let (k, v) = item.map_err(FilterError::map(name))?;
                out.push((net(IpAddr::from(k.data()), k.prefix_len()), v.origin));
            }
        }
        if list == List::Block {
            for item in self.block_addr_v4.iter() {
                let (k, v) = item.map_err(FilterError::map(pin::BLOCK_ADDR_V4))?;
                out.push((Cidr::host(IpAddr::from(k)), v.origin));
            }
            for item in self.block_addr_v6.iter() {
                let (k, v) = item.map_err(FilterError::map(pin::BLOCK_ADDR_V6))?;
                out.push((Cidr::host(IpAddr::from(k)), v.origin));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes the configuration-owned entries of `list` equal to `desired`:
    /// inserts first, then removes, leaving runtime entries alone.
    pub fn reconcile(
        &mut self,
        list: List,
        desired: &[Cidr],
    ) -> Result<(usize, usize), FilterError> {
        let installed: BTreeSet<Cidr> = self
            .entries(list)?
            .into_iter()
            .filter(|(_, o)| *o == ORIGIN_CONFIG)
            .map(|(c, _)| c)
            .collect();
        let desired: BTreeSet<Cidr> = desired.iter().copied().collect();
        let (add, remove) = diff(&installed, &desired);
        for cidr in &add {
            self.insert_raw(list, *cidr, ORIGIN_CONFIG)?;
            if list == List::Block {
                self.index_insert(*cidr)?;
            }
        }
        // Flags first so that new entries are consulted before stale ones go.
        self.refresh_flags()?;
        for cidr in &remove {
            if list == List::Block {
                self.index_remove(*cidr)?;
            }
            self.remove_raw(list, *cidr);
        }
        if list == List::Block {
            self.refresh_ranges()?;
        }
        self.refresh_flags()?;
        Ok((add.len(), remove.len()))
    }
}

/// The prefix lengths to probe, longest first, if probing beats the trie:
/// enough ranges for the trie to be slow, few enough lengths, and no /0
/// (which has no host bit to mark).
fn worth_probing(lens: &[u32]) -> Option<Vec<u32>> {
    let distinct: BTreeSet<u32> = lens.iter().copied().collect();
    (lens.len() >= PROBE_MIN_RANGES && distinct.len() <= MAX_RANGE_PROBES && !distinct.contains(&0))
        .then(|| distinct.into_iter().rev().collect())
}

/// Whether two networks share an address (one contains the other's base).
fn overlap(a: Cidr, b: Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<Cidr> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn diff_adds_new_and_removes_stale_only() {
        let installed = set(&["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]);
        let desired = set(&["10.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"]);
        let (add, remove) = diff(&installed, &desired);
        assert_eq!(add, vec!["198.51.100.0/24".parse().unwrap()]);
        assert_eq!(remove, vec!["192.0.2.1".parse().unwrap()]);
        let (add, remove) = diff(&desired, &desired);
        assert!(add.is_empty() && remove.is_empty());
    }
}
