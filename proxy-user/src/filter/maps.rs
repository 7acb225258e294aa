//! Typed access to the pinned maps. Everything that writes a kernel map goes
//! through [`FilterMaps`]; the daemon, the CLI and the tests open the same pins.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray, lpm_trie::Key};
use proxy_common::{
    ban::{self, Ban},
    config::{self as kcfg, FilterConfig},
    index::{self, BucketV4, BucketV6},
    list::{ListValue, MAX_RANGE_PROBES, ORIGIN_CONFIG, V4, V6},
    pin,
    source::SourceState,
    stats::{self, Counter},
};

use super::{FilterError, clock, lists, lists::List};
use crate::cidr::Cidr;

/// Below this many ranges in a family, the LPM trie (whose cost grows with
/// its size) is cheaper than hash probes; measured with `cargo xtask bench xdp`.
const PROBE_MIN_RANGES: usize = 128;

/// Handles on every pinned map of one loaded filter.
pub struct FilterMaps {
    pub(super) dir: PathBuf,
    pub(super) config: Array<MapData, FilterConfig>,
    pub(super) verdicts: PerCpuArray<MapData, Counter>,
    pub(super) allow_v4: LpmTrie<MapData, V4, ListValue>,
    pub(super) allow_v6: LpmTrie<MapData, V6, ListValue>,
    pub(super) block_v4: LpmTrie<MapData, V4, ListValue>,
    pub(super) block_v6: LpmTrie<MapData, V6, ListValue>,
    pub(super) block_addr_v4: HashMap<MapData, V4, ListValue>,
    pub(super) block_addr_v6: HashMap<MapData, V6, ListValue>,
    pub(super) block_index_v4: Array<MapData, BucketV4>,
    pub(super) block_index_v6: Array<MapData, BucketV6>,
    pub(super) range_index_v4: Array<MapData, BucketV4>,
    pub(super) range_index_v6: Array<MapData, BucketV6>,
    pub(super) bans_v4: HashMap<MapData, V4, Ban>,
    pub(super) bans_v6: HashMap<MapData, V6, Ban>,
    pub(super) sources_v4: HashMap<MapData, V4, SourceState>,
    pub(super) sources_v6: HashMap<MapData, V6, SourceState>,
}

/// One ban as stored in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanEntry {
    pub addr: IpAddr,
    /// Time left; `None` for a ban without expiry. Zero once expired.
    pub remaining: Option<Duration>,
    pub origin: u32,
}

/// One source as seen by the limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The limiter key: an IPv4 address, or an IPv6 prefix.
    pub source: Cidr,
    pub state: SourceState,
}

fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(
    dir: &Path,
    name: &str,
) -> Result<T, FilterError> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|_| FilterError::NotPinned {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    })?;
    let map = Map::from_map_data(data).map_err(FilterError::map(name))?;
    T::try_from(map).map_err(FilterError::map(name))
}

fn v4(ip: Ipv4Addr) -> V4 {
    ip.octets()
}

fn v6(ip: Ipv6Addr) -> V6 {
    ip.octets()
}

impl FilterMaps {
    /// Opens the maps pinned in `dir` (normally `/sys/fs/bpf/rampart`).
    pub fn open(dir: &Path) -> Result<FilterMaps, FilterError> {
        Ok(FilterMaps {
            dir: dir.to_path_buf(),
            config: open(dir, pin::CONFIG)?,
            verdicts: open(dir, pin::VERDICTS)?,
            allow_v4: open(dir, pin::ALLOW_V4)?,
            allow_v6: open(dir, pin::ALLOW_V6)?,
            block_v4: open(dir, pin::BLOCK_V4)?,
            block_v6: open(dir, pin::BLOCK_V6)?,
            block_addr_v4: open(dir, pin::BLOCK_ADDR_V4)?,
            block_addr_v6: open(dir, pin::BLOCK_ADDR_V6)?,
            block_index_v4: open(dir, pin::BLOCK_INDEX_V4)?,
            block_index_v6: open(dir, pin::BLOCK_INDEX_V6)?,
            range_index_v4: open(dir, pin::RANGE_INDEX_V4)?,
            range_index_v6: open(dir, pin::RANGE_INDEX_V6)?,
            bans_v4: open(dir, pin::BANS_V4)?,
            bans_v6: open(dir, pin::BANS_V6)?,
            sources_v4: open(dir, pin::SOURCES_V4)?,
            sources_v6: open(dir, pin::SOURCES_V6)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    // === settings ===

    pub fn config(&self) -> Result<FilterConfig, FilterError> {
        self.config
            .get(&kcfg::CONFIG_KEY, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// Writes new settings in place (the program sees them on its next packet),
    /// keeping the `FLAG_HAS_*` hints true to the maps' contents.
    pub fn write_config(&mut self, mut value: FilterConfig) -> Result<(), FilterError> {
        // The hints about map contents are not the caller's to set: keep what is installed.
        let installed = self.config()?;
        value.flags =
            (value.flags & 0xff) | self.presence_flags() | (installed.flags & kcfg::CONTENT_HINTS);
        value.probes_v4 = installed.probes_v4;
        value.probes_v6 = installed.probes_v6;
        value.index_mask_v4 = installed.index_mask_v4;
        value.index_mask_v6 = installed.index_mask_v6;
        value.range_mask_v4 = installed.range_mask_v4;
        value.range_mask_v6 = installed.range_mask_v6;
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// Sets or clears content hints (`config::CONTENT_HINTS` bits) in place.
    pub(super) fn set_hint(&mut self, flags: u32, on: bool) -> Result<(), FilterError> {
        let mut value = self.config()?;
        let before = value.flags;
        if on {
            value.flags |= flags;
        } else {
            value.flags &= !flags;
        }
        if value.flags == before {
            return Ok(());
        }
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// Whether `cidr` shares any address with an allowlist entry.
    fn overlaps_allow(&self, cidr: Cidr) -> Result<bool, FilterError> {
        Ok(self
            .entries(List::Allow)?
            .iter()
            .any(|(a, _)| overlap(*a, cidr)))
    }

    /// Whether some blocklist entry or ban shares an address with `allow`.
    fn overlaps_drops(&self, allow: &[Cidr]) -> Result<bool, FilterError> {
        if allow.is_empty() {
            return Ok(false);
        }
        let hits = |c: Cidr| allow.iter().any(|a| overlap(*a, c));
        Ok(self.entries(List::Block)?.into_iter().any(|(c, _)| hits(c))
            || self.bans()?.into_iter().any(|b| hits(Cidr::host(b.addr))))
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
    fn refresh_ranges(&mut self) -> Result<(), FilterError> {
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

    /// Recomputes the `FLAG_HAS_*` hints after a list or ban change.
    fn refresh_flags(&mut self) -> Result<(), FilterError> {
        let current = self.config()?;
        self.write_config(current)
    }

    fn presence_flags(&self) -> u32 {
        let mut flags = 0;
        let mut mark = |present: bool, flag: u32| {
            if present {
                flags |= flag;
            }
        };
        mark(
            self.allow_v4.keys().next().is_some(),
            kcfg::FLAG_HAS_ALLOW_V4,
        );
        mark(
            self.allow_v6.keys().next().is_some(),
            kcfg::FLAG_HAS_ALLOW_V6,
        );
        mark(
            self.block_v4.keys().next().is_some(),
            kcfg::FLAG_HAS_BLOCK_V4,
        );
        mark(
            self.block_v6.keys().next().is_some(),
            kcfg::FLAG_HAS_BLOCK_V6,
        );
        mark(
            self.block_addr_v4.keys().next().is_some(),
            kcfg::FLAG_HAS_BLOCK_ADDR_V4,
        );
        mark(
            self.block_addr_v6.keys().next().is_some(),
            kcfg::FLAG_HAS_BLOCK_ADDR_V6,
        );
        mark(self.bans_v4.keys().next().is_some(), kcfg::FLAG_HAS_BANS_V4);
        mark(self.bans_v6.keys().next().is_some(), kcfg::FLAG_HAS_BANS_V6);
        flags
    }

    // === lists ===

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

    fn insert_raw(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError> {
        let value = ListValue { origin };
        let len = cidr.prefix_len() as u32;
        match (list, cidr.addr()) {
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
        }
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

    fn remove_raw(&mut self, list: List, cidr: Cidr) -> bool {
        let len = cidr.prefix_len() as u32;
        match (list, cidr.addr()) {
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
        }
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
        let (add, remove) = lists::diff(&installed, &desired);
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

    // === bans ===

    /// Bans `addr` for `ttl` (`None`: until removed).
    pub fn ban(
        &mut self,
        addr: IpAddr,
        ttl: Option<Duration>,
        origin: u32,
    ) -> Result<(), FilterError> {
        let expires_at_ns = match ttl {
            None => ban::NEVER,
            Some(t) => {
                clock::monotonic_ns().saturating_add(t.as_nanos().min(u64::MAX as u128) as u64)
            }
        };
        let value = Ban {
            expires_at_ns,
            origin,
            _pad: 0,
        };
        if self.overlaps_allow(Cidr::host(addr))? {
            self.set_hint(kcfg::FLAG_ALLOW_OVERLAPS, true)?;
        }
        match addr {
            IpAddr::V4(ip) => self
                .bans_v4
                .insert(v4(ip), value, 0)
                .map_err(FilterError::map(pin::BANS_V4))?,
            IpAddr::V6(ip) => self
                .bans_v6
                .insert(v6(ip), value, 0)
                .map_err(FilterError::map(pin::BANS_V6))?,
        }
        self.refresh_flags()
    }

    /// Lifts the ban on `addr`; returns whether there was one.
    pub fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        let removed = match addr {
            IpAddr::V4(ip) => self.bans_v4.remove(&v4(ip)).is_ok(),
            IpAddr::V6(ip) => self.bans_v6.remove(&v6(ip)).is_ok(),
        };
        self.refresh_flags()?;
        Ok(removed)
    }

    pub fn bans(&self) -> Result<Vec<BanEntry>, FilterError> {
        let now = clock::monotonic_ns();
        let entry = |addr: IpAddr, b: Ban| BanEntry {
            addr,
            remaining: (b.expires_at_ns != ban::NEVER)
                .then(|| Duration::from_nanos(b.expires_at_ns.saturating_sub(now))),
            origin: b.origin,
        };
        let mut out = Vec::new();
        for item in self.bans_v4.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V4))?;
            out.push(entry(IpAddr::from(k), b));
        }
        for item in self.bans_v6.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V6))?;
            out.push(entry(IpAddr::from(k), b));
        }
        Ok(out)
    }

    /// Deletes expired bans (the program also deletes one when it next sees it).
    pub fn sweep_bans(&mut self) -> Result<usize, FilterError> {
        let expired: Vec<IpAddr> = self
            .bans()?
            .into_iter()
            .filter(|b| b.remaining == Some(Duration::ZERO))
            .map(|b| b.addr)
            .collect();
        for addr in &expired {
            match addr {
                IpAddr::V4(ip) => drop(self.bans_v4.remove(&v4(*ip))),
                IpAddr::V6(ip) => drop(self.bans_v6.remove(&v6(*ip))),
            }
        }
        self.refresh_flags()?;
        Ok(expired.len())
    }

    // === counters ===

    /// Packets and bytes per verdict, summed over CPUs, in verdict order.
    pub fn verdicts(&self) -> Result<[Counter; stats::VERDICTS as usize], FilterError> {
        let mut out = [Counter::default(); stats::VERDICTS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .verdicts
                .get(&(i as u32), 0)
                .map_err(FilterError::map(pin::VERDICTS))?;
            for c in per_cpu.iter() {
                slot.packets += c.packets;
                slot.bytes += c.bytes;
            }
        }
        Ok(out)
    }

    /// Every tracked source with its limiter state and counters.
    pub fn sources(&self) -> Result<Vec<SourceEntry>, FilterError> {
        let v6_len = self.config()?.v6_prefix_len.clamp(1, 128) as u8;
        let mut out = Vec::new();
        for item in self.sources_v4.iter() {
            let (k, state) = item.map_err(FilterError::map(pin::SOURCES_V4))?;
            out.push(SourceEntry {
                source: Cidr::host(IpAddr::from(k)),
                state,
            });
        }
        for item in self.sources_v6.iter() {
            let (k, state) = item.map_err(FilterError::map(pin::SOURCES_V6))?;
            out.push(SourceEntry {
                source: net(IpAddr::from(k), v6_len as u32),
                state,
            });
        }
        Ok(out)
    }

    /// The limiter entry for `ip` (masked to the IPv6 prefix), if tracked.
    pub fn source(&self, ip: IpAddr) -> Result<Option<SourceState>, FilterError> {
        let found = match ip {
            IpAddr::V4(ip) => self.sources_v4.get(&v4(ip), 0),
            IpAddr::V6(ip) => {
                let mask = proxy_common::config::v6_mask_bytes(self.config()?.v6_prefix_len);
                let mut key = v6(ip);
                for (k, m) in key.iter_mut().zip(mask) {
                    *k &= m;
                }
                self.sources_v6.get(&key, 0)
            }
        };
        match found {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(FilterError::Map {
                name: "sources".into(),
                source: e,
            }),
        }
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

/// A network from a trie key; keys hold no host bits, so this cannot fail.
fn net(addr: IpAddr, len: u32) -> Cidr {
    format!("{addr}/{len}").parse().unwrap_or(Cidr::host(addr))
}
