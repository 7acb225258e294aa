//! Keeping the blocklist indexes (`proxy_common::index`) in step with the
//! hashes and tries, which stay the source of truth.
//!
//! Every blocklist change goes into the buckets as well (three syscalls per
//! entry); the indexes are built from scratch only when maps that never had
//! them are adopted. An entry that finds both of its buckets full (or the
//! all-zero address, which marks an empty way) stays in the hash or trie only,
//! and an overflow flag tells the program to look there on an index miss.

use std::net::IpAddr;

use aya::maps::{Array, MapData};
use proxy_common::{
    config::{self as kcfg, FilterConfig},
    index::{self, BucketV4, BucketV6},
    pin,
};

use super::{FilterError, FilterMaps};
use crate::cidr::Cidr;

/// What the index code needs from a bucket type.
trait Bucket: aya::Pod + Default + PartialEq {
    type Key: Copy + PartialEq + Default;
    fn slots(key: Self::Key, mask: u32) -> [u32; 2];
    fn ways(&self) -> &[Self::Key];
    fn ways_mut(&mut self) -> &mut [Self::Key];

    fn holds(&self, key: Self::Key) -> bool {
        self.ways().contains(&key)
    }
    fn load(&self) -> usize {
        self.ways()
            .iter()
            .filter(|w| **w != Self::Key::default())
            .count()
    }
}

impl Bucket for BucketV4 {
    type Key = u32;
    fn slots(key: u32, mask: u32) -> [u32; 2] {
        index::slots_v4(key, mask)
    }
    fn ways(&self) -> &[u32] {
        &self.addrs
    }
    fn ways_mut(&mut self) -> &mut [u32] {
        &mut self.addrs
    }
}

impl Bucket for BucketV6 {
    type Key = [u64; 2];
    fn slots(key: [u64; 2], mask: u32) -> [u32; 2] {
        index::slots_v6(key, mask)
    }
    fn ways(&self) -> &[[u64; 2]] {
        &self.addrs
    }
    fn ways_mut(&mut self) -> &mut [[u64; 2]] {
        &mut self.addrs
    }
}

/// Which index of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Blocklisted single addresses (`block_index_*`).
    Addresses,
    /// Blocklisted ranges (`range_index_*`).
    Ranges,
}

/// An index key: the 4 or 16 address bytes read as native words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    V4(u32),
    V6([u64; 2]),
}

fn words(bytes: [u8; 16]) -> [u64; 2] {
    [
        u64::from_ne_bytes(bytes[..8].try_into().unwrap()),
        u64::from_ne_bytes(bytes[8..].try_into().unwrap()),
    ]
}

fn bytes(words: [u64; 2]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&words[0].to_ne_bytes());
    b[8..].copy_from_slice(&words[1].to_ne_bytes());
    b
}

/// The index and key of a blocklist entry.
fn key_of(cidr: Cidr) -> (Index, Key) {
    let len = cidr.prefix_len() as u32;
    match (cidr.is_host(), cidr.addr()) {
        (true, IpAddr::V4(ip)) => (Index::Addresses, Key::V4(u32::from_ne_bytes(ip.octets()))),
        (true, IpAddr::V6(ip)) => (Index::Addresses, Key::V6(words(ip.octets()))),
        (false, IpAddr::V4(ip)) => {
            let word = u32::from_ne_bytes(ip.octets());
            (
                Index::Ranges,
                Key::V4(index::range_key_v4(word, &index::probe_v4(len))),
            )
        }
        (false, IpAddr::V6(ip)) => (
            Index::Ranges,
            Key::V6(index::range_key_v6(
                words(ip.octets()),
                &index::probe_v6(len),
            )),
        ),
    }
}

/// The entry a range-index key stands for: the marker is the lowest set bit.
fn range_of(key: Key) -> Option<Cidr> {
    let (net, len) = match key {
        Key::V4(w) => {
            let n = u32::from_be_bytes(w.to_ne_bytes());
            if n == 0 {
                return None;
            }
            let tz = n.trailing_zeros();
            (IpAddr::from((n & !(1 << tz)).to_be_bytes()), 31 - tz)
        }
        Key::V6(w) => {
            let n = u128::from_be_bytes(bytes(w));
            if n == 0 {
                return None;
            }
            let tz = n.trailing_zeros();
            (IpAddr::from((n & !(1 << tz)).to_be_bytes()), 127 - tz)
        }
    };
    format!("{net}/{len}").parse().ok()
}

/// Places `key` in the less loaded of its buckets; false if both are full.
fn place<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    key: B::Key,
) -> Result<bool, FilterError> {
    if key == B::Key::default() {
        return Ok(false);
    }
    let [a, b] = B::slots(key, map.len() - 1);
    let (mut ba, mut bb) = (get(map, name, a)?, get(map, name, b)?);
    if ba.holds(key) || bb.holds(key) {
        return Ok(true);
    }
    let (slot, bucket) = if ba.load() <= bb.load() {
        (a, &mut ba)
    } else {
        (b, &mut bb)
    };
    let Some(way) = bucket
        .ways_mut()
        .iter_mut()
        .find(|w| **w == B::Key::default())
    else {
        return Ok(false);
    };
    *way = key;
    map.set(slot, *bucket, 0).map_err(FilterError::map(name))?;
    Ok(true)
}

fn unplace<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    key: B::Key,
) -> Result<(), FilterError> {
    for slot in B::slots(key, map.len() - 1) {
        let mut bucket = get(map, name, slot)?;
        if let Some(way) = bucket.ways_mut().iter_mut().find(|w| **w == key) {
            *way = B::Key::default();
            map.set(slot, bucket, 0).map_err(FilterError::map(name))?;
        }
    }
    Ok(())
}

/// Builds a whole index for `keys` in memory and writes every bucket that
/// differs. Returns whether every key found a place.
fn rebuild<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    keys: &[B::Key],
) -> Result<bool, FilterError> {
    if keys.is_empty() {
        // Nothing to copy, and an index that was never turned on was never
        // written: skip reading every bucket of a fresh map.
        return Ok(true);
    }
    let n = map.len();
    let mut buckets = vec![B::default(); n as usize];
    let mut complete = true;
    for &key in keys {
        let [a, b] = B::slots(key, n - 1);
        let pick = if buckets[a as usize].load() <= buckets[b as usize].load() {
            a
        } else {
            b
        };
        match buckets[pick as usize]
            .ways_mut()
            .iter_mut()
            .find(|w| **w == B::Key::default())
        {
            Some(way) if key != B::Key::default() => *way = key,
            _ => complete = false,
        }
    }
    for (slot, want) in buckets.into_iter().enumerate() {
        if get(map, name, slot as u32)? != want {
            map.set(slot as u32, want, 0)
                .map_err(FilterError::map(name))?;
        }
    }
    Ok(complete)
}

fn get<B: Bucket>(map: &Array<MapData, B>, name: &str, slot: u32) -> Result<B, FilterError> {
    map.get(&slot, 0).map_err(FilterError::map(name))
}

/// The overflow flag of an index.
fn overflow_flag(which: Index, v4: bool) -> u32 {
    match (which, v4) {
        (Index::Addresses, true) => kcfg::FLAG_INDEX_OVERFLOW_V4,
        (Index::Addresses, false) => kcfg::FLAG_INDEX_OVERFLOW_V6,
        (Index::Ranges, true) => kcfg::FLAG_RANGE_OVERFLOW_V4,
        (Index::Ranges, false) => kcfg::FLAG_RANGE_OVERFLOW_V6,
    }
}

/// Prefix lengths a probe table covers, longest first (for views).
pub fn probe_lens(cfg: &FilterConfig, v4: bool) -> Vec<u32> {
    if v4 {
        cfg.probes_v4
            .iter()
            .filter(|p| p.marker != 0)
            .map(|p| 31 - u32::from_be_bytes(p.marker.to_ne_bytes()).trailing_zeros())
            .collect()
    } else {
        cfg.probes_v6
            .iter()
            .filter(|p| p.marker != [0, 0])
            .map(|p| 127 - u128::from_be_bytes(bytes(p.marker)).trailing_zeros())
            .collect()
    }
}

impl FilterMaps {
    /// Adds a blocklist entry (already in its hash or trie) to its index.
    pub(super) fn index_insert(&mut self, cidr: Cidr) -> Result<(), FilterError> {
        let (which, key) = key_of(cidr);
        let placed = match (which, key) {
            (Index::Addresses, Key::V4(k)) => {
                place(&mut self.block_index_v4, pin::BLOCK_INDEX_V4, k)?
            }
            (Index::Addresses, Key::V6(k)) => {
                place(&mut self.block_index_v6, pin::BLOCK_INDEX_V6, k)?
            }
            (Index::Ranges, Key::V4(k)) => place(&mut self.range_index_v4, pin::RANGE_INDEX_V4, k)?,
            (Index::Ranges, Key::V6(k)) => place(&mut self.range_index_v6, pin::RANGE_INDEX_V6, k)?,
        };
        if !placed {
            self.set_hint(overflow_flag(which, cidr.addr().is_ipv4()), true)?;
        }
        Ok(())
    }

    /// Takes a blocklist entry out of its index (before it leaves its hash or trie).
    pub(super) fn index_remove(&mut self, cidr: Cidr) -> Result<(), FilterError> {
        match key_of(cidr) {
            (Index::Addresses, Key::V4(k)) => {
                unplace(&mut self.block_index_v4, pin::BLOCK_INDEX_V4, k)
            }
            (Index::Addresses, Key::V6(k)) => {
                unplace(&mut self.block_index_v6, pin::BLOCK_INDEX_V6, k)
            }
            (Index::Ranges, Key::V4(k)) => {
                unplace(&mut self.range_index_v4, pin::RANGE_INDEX_V4, k)
            }
            (Index::Ranges, Key::V6(k)) => {
                unplace(&mut self.range_index_v6, pin::RANGE_INDEX_V6, k)
            }
        }
    }

    /// Turns the indexes on for maps that do not use them yet: a fresh set of
    /// maps (nothing to copy), or maps adopted from a build without indexes
    /// (built from the hashes and tries). Maps that already use them were
    /// kept in step entry by entry.
    pub(super) fn init_index(&mut self) -> Result<(), FilterError> {
        let on = kcfg::FLAG_INDEX_V4 | kcfg::FLAG_INDEX_V6;
        if self.config()?.flags & on == on {
            return Ok(());
        }
        let mut k4 = [Vec::new(), Vec::new()];
        let mut k6 = [Vec::new(), Vec::new()];
        for (cidr, _) in self.entries(super::List::Block)? {
            match key_of(cidr) {
                (which, Key::V4(k)) => k4[(which == Index::Ranges) as usize].push(k),
                (which, Key::V6(k)) => k6[(which == Index::Ranges) as usize].push(k),
            }
        }
        let complete = [
            (
                rebuild(&mut self.block_index_v4, pin::BLOCK_INDEX_V4, &k4[0])?,
                kcfg::FLAG_INDEX_OVERFLOW_V4,
            ),
            (
                rebuild(&mut self.range_index_v4, pin::RANGE_INDEX_V4, &k4[1])?,
                kcfg::FLAG_RANGE_OVERFLOW_V4,
            ),
            (
                rebuild(&mut self.block_index_v6, pin::BLOCK_INDEX_V6, &k6[0])?,
                kcfg::FLAG_INDEX_OVERFLOW_V6,
            ),
            (
                rebuild(&mut self.range_index_v6, pin::RANGE_INDEX_V6, &k6[1])?,
                kcfg::FLAG_RANGE_OVERFLOW_V6,
            ),
        ];
        let mut value = self.config()?;
        value.index_mask_v4 = self.block_index_v4.len() - 1;
        value.index_mask_v6 = self.block_index_v6.len() - 1;
        value.range_mask_v4 = self.range_index_v4.len() - 1;
        value.range_mask_v6 = self.range_index_v6.len() - 1;
        value.flags |= on;
        for (complete, flag) in complete {
            if !complete {
                value.flags |= flag;
            }
        }
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// An index's non-empty buckets with the entries they hold (for `map dump`).
    pub fn index_buckets(
        &self,
        which: Index,
        v4: bool,
    ) -> Result<Vec<(u32, Vec<String>)>, FilterError> {
        let show = |key: Key| -> String {
            match (which, key) {
                (Index::Ranges, k) => {
                    range_of(k).map_or_else(|| format!("{k:?}"), |c| c.to_string())
                }
                (Index::Addresses, Key::V4(w)) => IpAddr::from(w.to_ne_bytes()).to_string(),
                (Index::Addresses, Key::V6(w)) => IpAddr::from(bytes(w)).to_string(),
            }
        };
        let mut out = Vec::new();
        let (map4, map6, name) = match which {
            Index::Addresses => (
                &self.block_index_v4,
                &self.block_index_v6,
                if v4 {
                    pin::BLOCK_INDEX_V4
                } else {
                    pin::BLOCK_INDEX_V6
                },
            ),
            Index::Ranges => (
                &self.range_index_v4,
                &self.range_index_v6,
                if v4 {
                    pin::RANGE_INDEX_V4
                } else {
                    pin::RANGE_INDEX_V6
                },
            ),
        };
        if v4 {
            for (slot, b) in map4.iter().enumerate() {
                let b = b.map_err(FilterError::map(name))?;
                let held: Vec<String> = b
                    .addrs
                    .iter()
                    .filter(|w| **w != 0)
                    .map(|w| show(Key::V4(*w)))
                    .collect();
                if !held.is_empty() {
                    out.push((slot as u32, held));
                }
            }
        } else {
            for (slot, b) in map6.iter().enumerate() {
                let b = b.map_err(FilterError::map(name))?;
                let held: Vec<String> = b
                    .addrs
                    .iter()
                    .filter(|w| **w != [0, 0])
                    .map(|w| show(Key::V6(*w)))
                    .collect();
                if !held.is_empty() {
                    out.push((slot as u32, held));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_keys_decode_back_to_their_network() {
        for net in [
            "10.1.0.0/16",
            "10.1.0.0/24",
            "198.51.100.128/25",
            "2001:db8::/32",
            "2001:db8:0:8000::/49",
        ] {
            let cidr: Cidr = net.parse().unwrap();
            let (which, key) = key_of(cidr);
            assert_eq!(which, Index::Ranges);
            assert_eq!(range_of(key), Some(cidr), "{net}");
        }
        assert_eq!(key_of("192.0.2.1".parse().unwrap()).0, Index::Addresses);
    }
}
