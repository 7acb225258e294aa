//! Typed access to the pinned maps. Everything that writes a kernel map goes
//! through [`FilterMaps`]; the daemon, the CLI and the tests open the same pins.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Instant,
};

use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray};
use proxy_common::{
    ban::{Ban, BanBucketV4, BanBucketV6},
    config::{self as kcfg, FilterConfig},
    index::{BucketV4, BucketV6},
    list::{ListValue, V4, V6},
    listed::{ADDR, BAN},
    pin,
    source::SourceState,
    stats::{self, Counter},
};

use super::{
    FilterError, clock,
    listed::{ListedFilter, block_entry, hash_of},
};
use crate::cidr::Cidr;

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
    pub(super) ban_index_v4: Array<MapData, BanBucketV4>,
    pub(super) ban_index_v6: Array<MapData, BanBucketV6>,
    pub(super) sources_v4: HashMap<MapData, V4, SourceState>,
    pub(super) sources_v6: HashMap<MapData, V6, SourceState>,
    /// Config map rewrites with the presence flags recomputed, each a scan
    /// of every map (see [`FilterMaps::presence_rewrites`]).
    pub(super) presence_rewrites: u64,
    /// The allowlist changed (or this handle is new) since the allowlist
    /// generation last moved on (`allow_gen.rs`).
    pub(super) allow_changed: bool,
    /// The listed-source filter (`listed.rs`), whose bits every ban and
    /// blocklist entry written through this handle sets first; `None` for
    /// a pin directory whose program has none.
    pub(super) listed: Option<super::listed::ListedFilter>,
    /// Bans and blocklist entries removed through this handle since its
    /// last rebuild of the listed-source filter.
    pub(super) listed_removed: u64,
}

/// One source as seen by the limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceEntry {
    /// The limiter key: an IPv4 address, or an IPv6 prefix.
    pub source: Cidr,
    pub state: SourceState,
}

pub(super) fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(
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

pub(super) fn v4(ip: Ipv4Addr) -> V4 {
    ip.octets()
}

pub(super) fn v6(ip: Ipv6Addr) -> V6 {
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
            ban_index_v4: open(dir, pin::BAN_INDEX_V4)?,
            ban_index_v6: open(dir, pin::BAN_INDEX_V6)?,
            sources_v4: open(dir, pin::SOURCES_V4)?,
            sources_v6: open(dir, pin::SOURCES_V6)?,
            presence_rewrites: 0,
            allow_changed: true,
            listed: super::listed::ListedFilter::open(dir)?,
            listed_removed: 0,
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
        self.presence_rewrites += 1;
        value.flags = (value.flags & 0xff)
            | self.presence_flags()
            | (installed.flags & kcfg::CONTENT_HINTS)
            | super::settings::clock_flags(&value, super::clock::coarse_tick_ns());
        value.probes_v4 = installed.probes_v4;
        value.probes_v6 = installed.probes_v6;
        value.index_mask_v4 = installed.index_mask_v4;
        value.index_mask_v6 = installed.index_mask_v6;
        value.range_mask_v4 = installed.range_mask_v4;
        value.range_mask_v6 = installed.range_mask_v6;
        value.ban_mask_v4 = installed.ban_mask_v4;
        value.ban_mask_v6 = installed.ban_mask_v6;
        value.admit_seed = match installed.admit_seed {
            0 => random_seed(),
            kept => kept,
        };
        self.allow_generation(&installed, &mut value);
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// How many times this handle rewrote the config map with the presence
    /// flags recomputed: each looks for a first key in every map (about a
    /// millisecond when a large hash map is empty), so batched work pays one.
    pub fn presence_rewrites(&self) -> u64 {
        self.presence_rewrites
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

    /// Recomputes the `FLAG_HAS_*` hints after a list or ban change.
    pub(super) fn refresh_flags(&mut self) -> Result<(), FilterError> {
        let current = self.config()?;
        self.write_config(current)
    }

    pub(super) fn presence_flags(&self) -> u32 {
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

    // === counters ===

    /// Packets and bytes per verdict, summed over CPUs, in verdict order.
    pub fn verdicts(&self) -> Result<[Counter; stats::VERDICTS as usize], FilterError> {
        let mut out = [Counter::default(); stats::VERDICTS as usize];
        // A map of an object with fewer verdicts (benchmarks load older
        // builds' objects) leaves the newer verdicts at zero.
        let held = self.verdicts.len() as usize;
        for (i, slot) in out.iter_mut().enumerate().take(held) {
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

    /// Forgets every IPv6 source's limiter state (after the prefix that
    /// makes one changed); how many there were.
    pub fn forget_sources_v6(&mut self) -> Result<usize, FilterError> {
        let keys: Vec<V6> = self.sources_v6.keys().filter_map(Result::ok).collect();
        for k in &keys {
            // One the program evicted meanwhile is gone already.
            let _ = self.sources_v6.remove(k);
        }
        Ok(keys.len())
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

/// A nonzero random key for the first stage's slot hash (and a fresh
/// allowlist generation).
pub(super) fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into our buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let seed = u64::from_ne_bytes(bytes);
    if n == 8 && seed != 0 {
        return seed;
    }
    // getrandom cannot fail for 8 bytes once the pool is ready; should it,
    // the clock still keeps the seed from being known in advance.
    clock::monotonic_ns() | 1
}

/// A network from a trie key; keys hold no host bits, so this cannot fail.
pub(super) fn net(addr: IpAddr, len: u32) -> Cidr {
    format!("{addr}/{len}").parse().unwrap_or(Cidr::host(addr))
}

// === impl FilterMaps: the listed-source filter (`listed.rs`) ===

impl FilterMaps {
    /// Marks an entry of `kind` whose key hashes to `hash` in the
    /// listed-source filter, if there is one.
    pub(super) fn list_mark(&self, kind: u32, hash: u64) {
        if let Some(l) = &self.listed {
            l.mark(kind, hash);
        }
    }

    /// Marks the ban on the source key `key`.
    pub(super) fn list_mark_ban(&self, key: IpAddr) {
        self.list_mark(BAN, hash_of(key));
    }

    /// Marks the blocklist entry `cidr`.
    pub(super) fn list_mark_block(&self, cidr: Cidr) {
        let (kind, hash) = block_entry(cidr);
        self.list_mark(kind, hash);
    }

    /// Every ban, blocklisted address and range as (kind, hash).
    fn listed_entries(&self) -> Result<Vec<(u32, u64)>, FilterError> {
        let mut out = Vec::new();
        for k in self.bans_v4.keys() {
            let k = k.map_err(FilterError::map(pin::BANS_V4))?;
            out.push((BAN, hash_of(IpAddr::from(k))));
        }
        for k in self.bans_v6.keys() {
            let k = k.map_err(FilterError::map(pin::BANS_V6))?;
            out.push((BAN, hash_of(IpAddr::from(k))));
        }
        for k in self.block_addr_v4.keys() {
            let k = k.map_err(FilterError::map(pin::BLOCK_ADDR_V4))?;
            out.push((ADDR, hash_of(IpAddr::from(k))));
        }
        for k in self.block_addr_v6.keys() {
            let k = k.map_err(FilterError::map(pin::BLOCK_ADDR_V6))?;
            out.push((ADDR, hash_of(IpAddr::from(k))));
        }
        for k in self.block_v4.keys() {
            let k = k.map_err(FilterError::map(pin::BLOCK_V4))?;
            out.push(block_entry(net(IpAddr::from(k.data()), k.prefix_len())));
        }
        for k in self.block_v6.keys() {
            let k = k.map_err(FilterError::map(pin::BLOCK_V6))?;
            out.push(block_entry(net(IpAddr::from(k.data()), k.prefix_len())));
        }
        Ok(out)
    }

    /// The listed-source filter of these maps, if their program has one.
    pub fn listed(&self) -> Option<&ListedFilter> {
        self.listed.as_ref()
    }

    /// Rebuilds the listed-source filter and turns it on; the entries
    /// read, `None` without a filter.
    pub fn rebuild_listed(&mut self) -> Result<Option<usize>, FilterError> {
        let Some(mut l) = self.listed.take() else {
            return Ok(None);
        };
        let done = l.rebuild(|| self.listed_entries());
        match &done {
            Ok(_) => self.listed_removed = 0,
            // Its bits may be stale (entries a build without the filter
            // wrote): off, every list probed, until a rebuild succeeds.
            Err(_) => l.turn_off(),
        }
        self.listed = Some(l);
        done.map(Some)
    }

    /// Rebuilds the listed-source filter when enough entries have gone
    /// ([`ListedFilter::refresh`]); the daemon's sweep calls it.
    pub fn refresh_listed(&mut self) -> Result<Option<usize>, FilterError> {
        let Some(mut l) = self.listed.take() else {
            return Ok(None);
        };
        let done = l.refresh(
            || self.listed_entries(),
            self.listed_removed,
            Instant::now(),
        );
        match &done {
            Ok(Some(_)) => self.listed_removed = 0,
            Ok(None) => {}
            Err(_) => l.turn_off(),
        }
        self.listed = Some(l);
        done
    }
}
