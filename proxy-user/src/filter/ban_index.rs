//! Keeping the ban index (`proxy_common::ban`, `ban_index_v4/v6`) in step
//! with the ban tables, which stay the source of truth.
//!
//! A ban goes into the index with its expiry when it is added (its way is
//! updated in place if the source is there already), and out when it is
//! lifted. The program deletes an expired ban from the hash when it meets
//! it and leaves its way behind: an expired way counts as free here. A ban
//! that finds both of its buckets full (or the all-zero source, which marks
//! an empty way) stays in the hash only, and an overflow flag makes the
//! program look there on an index miss.

use std::net::IpAddr;

use aya::maps::{Array, MapData};
use proxy_common::{
    ban::{Ban, BanBucketV4, BanBucketV6},
    config as kcfg, index, pin,
};

use super::{FilterError, FilterMaps, clock};

/// What the ban-index code needs from a bucket type.
trait Bucket: aya::Pod + Default + PartialEq {
    type Key: Copy + PartialEq + Default;
    fn slots(key: Self::Key, mask: u32) -> [u32; 2];
    fn addrs(&mut self) -> (&mut [Self::Key], &mut [u64]);
}

impl Bucket for BanBucketV4 {
    type Key = u32;
    fn slots(key: u32, mask: u32) -> [u32; 2] {
        index::slots_v4(key, mask)
    }
    fn addrs(&mut self) -> (&mut [u32], &mut [u64]) {
        (&mut self.addrs, &mut self.expires)
    }
}

impl Bucket for BanBucketV6 {
    type Key = [u64; 2];
    fn slots(key: [u64; 2], mask: u32) -> [u32; 2] {
        index::slots_v6(key, mask)
    }
    fn addrs(&mut self) -> (&mut [[u64; 2]], &mut [u64]) {
        (&mut self.addrs, &mut self.expires)
    }
}

/// Ways of `bucket` that hold nothing or an expired ban.
fn free<B: Bucket>(bucket: &mut B, now: u64) -> usize {
    let (addrs, expires) = bucket.addrs();
    addrs
        .iter()
        .zip(expires.iter())
        .filter(|(a, e)| **a == B::Key::default() || **e <= now)
        .count()
}

fn get<B: Bucket>(map: &Array<MapData, B>, name: &str, slot: u32) -> Result<B, FilterError> {
    map.get(&slot, 0).map_err(FilterError::map(name))
}

/// Puts `key` with `expires` in its bucket; false if it found no room.
fn place<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    key: B::Key,
    expires: u64,
) -> Result<bool, FilterError> {
    if key == B::Key::default() {
        return Ok(false);
    }
    let now = clock::monotonic_ns();
    let [a, b] = B::slots(key, map.len() - 1);
    let mut buckets = [(a, get(map, name, a)?), (b, get(map, name, b)?)];
    for (slot, bucket) in buckets.iter_mut() {
        let (addrs, exp) = bucket.addrs();
        if let Some(i) = addrs.iter().position(|w| *w == key) {
            exp[i] = expires;
            map.set(*slot, *bucket, 0).map_err(FilterError::map(name))?;
            return Ok(true);
        }
    }
    let pick = if free(&mut buckets[0].1, now) >= free(&mut buckets[1].1, now) {
        0
    } else {
        1
    };
    let (slot, bucket) = &mut buckets[pick];
    let (addrs, exp) = bucket.addrs();
    let Some(i) = (0..addrs.len()).find(|&i| addrs[i] == B::Key::default() || exp[i] <= now) else {
        return Ok(false);
    };
    addrs[i] = key;
    exp[i] = expires;
    map.set(*slot, *bucket, 0).map_err(FilterError::map(name))?;
    Ok(true)
}

fn unplace<B: Bucket>(
    map: &mut Array<MapData, B>,
    name: &str,
    key: B::Key,
) -> Result<(), FilterError> {
    for slot in B::slots(key, map.len() - 1) {
        let mut bucket = get(map, name, slot)?;
        let (addrs, exp) = bucket.addrs();
        if let Some(i) = addrs.iter().position(|w| *w == key) {
            addrs[i] = B::Key::default();
            exp[i] = 0;
            map.set(slot, bucket, 0).map_err(FilterError::map(name))?;
        }
    }
    Ok(())
}

fn word4(ip: std::net::Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

fn words6(ip: std::net::Ipv6Addr) -> [u64; 2] {
    let b = ip.octets();
    [
        u64::from_ne_bytes(b[..8].try_into().unwrap_or_default()),
        u64::from_ne_bytes(b[8..].try_into().unwrap_or_default()),
    ]
}

impl FilterMaps {
    /// Adds the ban on `key` (a source key, already in its hash) to the index.
    pub(super) fn ban_index_insert(&mut self, key: IpAddr, ban: Ban) -> Result<(), FilterError> {
        let (placed, overflow) = match key {
            IpAddr::V4(ip) => (
                place(
                    &mut self.ban_index_v4,
                    pin::BAN_INDEX_V4,
                    word4(ip),
                    ban.expires_at_ns,
                )?,
                kcfg::FLAG_BAN_OVERFLOW_V4,
            ),
            IpAddr::V6(ip) => (
                place(
                    &mut self.ban_index_v6,
                    pin::BAN_INDEX_V6,
                    words6(ip),
                    ban.expires_at_ns,
                )?,
                kcfg::FLAG_BAN_OVERFLOW_V6,
            ),
        };
        if !placed {
            self.set_hint(overflow, true)?;
        }
        Ok(())
    }

    /// Takes the ban on `key` out of the index (before it leaves its hash).
    pub(super) fn ban_index_remove(&mut self, key: IpAddr) -> Result<(), FilterError> {
        match key {
            IpAddr::V4(ip) => unplace(&mut self.ban_index_v4, pin::BAN_INDEX_V4, word4(ip)),
            IpAddr::V6(ip) => unplace(&mut self.ban_index_v6, pin::BAN_INDEX_V6, words6(ip)),
        }
    }

    /// Turns the ban index on for maps that do not use it yet, copying the
    /// bans they hold (maps adopted from a build without it).
    pub(super) fn init_ban_index(&mut self) -> Result<(), FilterError> {
        let on = kcfg::FLAG_BAN_INDEX_V4 | kcfg::FLAG_BAN_INDEX_V6;
        if self.config()?.flags & on == on {
            return Ok(());
        }
        let mut overflow = 0;
        for ban in self.bans_v4_v6()? {
            let placed = match ban.0 {
                IpAddr::V4(ip) => place(
                    &mut self.ban_index_v4,
                    pin::BAN_INDEX_V4,
                    word4(ip),
                    ban.1.expires_at_ns,
                )?,
                IpAddr::V6(ip) => place(
                    &mut self.ban_index_v6,
                    pin::BAN_INDEX_V6,
                    words6(ip),
                    ban.1.expires_at_ns,
                )?,
            };
            if !placed {
                overflow |= if ban.0.is_ipv4() {
                    kcfg::FLAG_BAN_OVERFLOW_V4
                } else {
                    kcfg::FLAG_BAN_OVERFLOW_V6
                };
            }
        }
        let mut value = self.config()?;
        value.ban_mask_v4 = self.ban_index_v4.len() - 1;
        value.ban_mask_v6 = self.ban_index_v6.len() - 1;
        value.flags |= on | overflow;
        self.config
            .set(kcfg::CONFIG_KEY, value, 0)
            .map_err(FilterError::map(pin::CONFIG))
    }

    /// The ban index's non-empty buckets: each source with its expiry
    /// (monotonic ns; `u64::MAX` = none), for `map dump`.
    pub fn ban_index_buckets(&self, v4: bool) -> Result<Vec<(u32, Vec<String>)>, FilterError> {
        let mut out = Vec::new();
        let show = |a: IpAddr, e: u64| format!("{a} until {e}");
        if v4 {
            for (slot, b) in self.ban_index_v4.iter().enumerate() {
                let b = b.map_err(FilterError::map(pin::BAN_INDEX_V4))?;
                let held: Vec<String> = (0..b.addrs.len())
                    .filter(|&i| b.addrs[i] != 0)
                    .map(|i| show(IpAddr::from(b.addrs[i].to_ne_bytes()), b.expires[i]))
                    .collect();
                if !held.is_empty() {
                    out.push((slot as u32, held));
                }
            }
        } else {
            for (slot, b) in self.ban_index_v6.iter().enumerate() {
                let b = b.map_err(FilterError::map(pin::BAN_INDEX_V6))?;
                let held: Vec<String> = (0..b.addrs.len())
                    .filter(|&i| b.addrs[i] != [0, 0])
                    .map(|i| {
                        let mut bytes = [0u8; 16];
                        bytes[..8].copy_from_slice(&b.addrs[i][0].to_ne_bytes());
                        bytes[8..].copy_from_slice(&b.addrs[i][1].to_ne_bytes());
                        show(IpAddr::from(bytes), b.expires[i])
                    })
                    .collect();
                if !held.is_empty() {
                    out.push((slot as u32, held));
                }
            }
        }
        Ok(out)
    }

    /// Every stored ban with its key, as the hashes hold them.
    fn bans_v4_v6(&self) -> Result<Vec<(IpAddr, Ban)>, FilterError> {
        let mut out = Vec::new();
        for item in self.bans_v4.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V4))?;
            out.push((IpAddr::from(k), b));
        }
        for item in self.bans_v6.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V6))?;
            out.push((IpAddr::from(k), b));
        }
        Ok(out)
    }
}
