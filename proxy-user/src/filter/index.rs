//! Keeping the exact-address index (`proxy_common::index`) in step with the
//! `block_addr_*` hashes, which stay the source of truth.
//!
//! Every change to a `block_addr_*` hash goes into the buckets as well (three
//! syscalls per address); the whole index is built from the hashes only when
//! maps that never had it are adopted. An address that
//! finds both of its buckets full (or the all-zero address) stays in the hash
//! only, and `FLAG_INDEX_OVERFLOW_*` tells the program to look there too.

use std::net::IpAddr;

use aya::maps::{Array, MapData};
use proxy_common::{
    config as kcfg,
    index::{self, BucketV4, BucketV6},
    pin,
};

use super::{FilterError, FilterMaps};

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

fn key_v4(addr: [u8; 4]) -> u32 {
    u32::from_ne_bytes(addr)
}

fn key_v6(addr: [u8; 16]) -> [u64; 2] {
    [
        u64::from_ne_bytes(addr[..8].try_into().unwrap()),
        u64::from_ne_bytes(addr[8..].try_into().unwrap()),
    ]
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
    let mask = map.len() - 1;
    let [a, b] = B::slots(key, mask);
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
    let mask = map.len() - 1;
    for slot in B::slots(key, mask) {
        let mut bucket = get(map, name, slot)?;
        if let Some(way) = bucket.ways_mut().iter_mut().find(|w| **w == key) {
            *way = B::Key::default();
            map.set(slot, bucket, 0).map_err(FilterError::map(name))?;
        }
    }
    Ok(())
}

/// Builds the whole index for `keys` in memory and writes the buckets that
/// differ. Returns whether every key found a place.
fn rebuild<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    keys: impl Iterator<Item = B::Key>,
) -> Result<bool, FilterError> {
    let n = map.len();
    let mask = n - 1;
    let mut buckets = vec![B::default(); n as usize];
    let mut complete = true;
    for key in keys {
        if key == B::Key::default() {
            complete = false;
            continue;
        }
        let [a, b] = B::slots(key, mask);
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
            Some(way) => *way = key,
            None => complete = false,
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

impl FilterMaps {
    /// Adds a blocklisted single address (already in its hash) to the index.
    pub(super) fn index_insert(&mut self, addr: IpAddr) -> Result<(), FilterError> {
        let placed = match addr {
            IpAddr::V4(ip) => place(
                &mut self.block_index_v4,
                pin::BLOCK_INDEX_V4,
                key_v4(ip.octets()),
            )?,
            IpAddr::V6(ip) => place(
                &mut self.block_index_v6,
                pin::BLOCK_INDEX_V6,
                key_v6(ip.octets()),
            )?,
        };
        if !placed {
            let flag = if addr.is_ipv4() {
                kcfg::FLAG_INDEX_OVERFLOW_V4
            } else {
                kcfg::FLAG_INDEX_OVERFLOW_V6
            };
            self.set_hint(flag, true)?;
        }
        Ok(())
    }

    /// Takes a blocklisted single address out of the index (before it leaves its hash).
    pub(super) fn index_remove(&mut self, addr: IpAddr) -> Result<(), FilterError> {
        match addr {
            IpAddr::V4(ip) => unplace(
                &mut self.block_index_v4,
                pin::BLOCK_INDEX_V4,
                key_v4(ip.octets()),
            ),
            IpAddr::V6(ip) => unplace(
                &mut self.block_index_v6,
                pin::BLOCK_INDEX_V6,
                key_v6(ip.octets()),
            ),
        }
    }

    /// Turns the index on for maps that do not use it yet: a fresh set of
    /// maps (empty, nothing to copy), or maps adopted from a build without the
    /// index (the index is built from the hashes). Maps that already use it
    /// were kept in step entry by entry.
    pub(super) fn init_index(&mut self) -> Result<(), FilterError> {
        let on = kcfg::FLAG_INDEX_V4 | kcfg::FLAG_INDEX_V6;
        if self.config()?.flags & on == on {
            return Ok(());
        }
        let keys4: Vec<u32> = self
            .block_addr_v4
            .keys()
            .filter_map(Result::ok)
            .map(key_v4)
            .collect();
        let keys6: Vec<[u64; 2]> = self
            .block_addr_v6
            .keys()
            .filter_map(Result::ok)
            .map(key_v6)
            .collect();
        let mut complete = [true, true];
        if !keys4.is_empty() {
            complete[0] = rebuild(
                &mut self.block_index_v4,
                pin::BLOCK_INDEX_V4,
                keys4.into_iter(),
            )?;
        }
        if !keys6.is_empty() {
            complete[1] = rebuild(
                &mut self.block_index_v6,
                pin::BLOCK_INDEX_V6,
                keys6.into_iter(),
            )?;
        }
        let mut value = self.config()?;
        value.index_mask_v4 = self.block_index_v4.len() - 1;
        value.index_mask_v6 = self.block_index_v6.len() - 1;
        value.flags |= on;
        for (complete, flag) in complete
            .into_iter()
            .zip([kcfg::FLAG_INDEX_OVERFLOW_V4, kcfg::FLAG_INDEX_OVERFLOW_V6])
        {
            if !complete {
                value.flags |= flag;
            }
        }
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }
}

impl FilterMaps {
    /// The index's non-empty buckets with the addresses they hold (for `map dump`).
    pub fn index_buckets(&self, v4: bool) -> Result<Vec<(u32, Vec<IpAddr>)>, FilterError> {
        let mut out = Vec::new();
        if v4 {
            for (slot, b) in self.block_index_v4.iter().enumerate() {
                let b = b.map_err(FilterError::map(pin::BLOCK_INDEX_V4))?;
                let addrs: Vec<IpAddr> = b
                    .addrs
                    .iter()
                    .filter(|w| **w != 0)
                    .map(|w| IpAddr::from(w.to_ne_bytes()))
                    .collect();
                if !addrs.is_empty() {
                    out.push((slot as u32, addrs));
                }
            }
        } else {
            for (slot, b) in self.block_index_v6.iter().enumerate() {
                let b = b.map_err(FilterError::map(pin::BLOCK_INDEX_V6))?;
                let addrs: Vec<IpAddr> = b
                    .addrs
                    .iter()
                    .filter(|w| **w != [0, 0])
                    .map(|w| {
                        let mut bytes = [0u8; 16];
                        bytes[..8].copy_from_slice(&w[0].to_ne_bytes());
                        bytes[8..].copy_from_slice(&w[1].to_ne_bytes());
                        IpAddr::from(bytes)
                    })
                    .collect();
                if !addrs.is_empty() {
                    out.push((slot as u32, addrs));
                }
            }
        }
        Ok(out)
    }
}
