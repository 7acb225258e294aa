//! The ban check: the ban index (`proxy_common::ban`) probed inline, the
//! hash only when the index is off or some ban overflowed it.

use aya_ebpf::btf_maps::HashMap;
use proxy_common::{
    ban::{Ban, BanBucketV4, BanBucketV6},
    config::{self, FilterConfig},
    index,
    list::{V4, V6},
};

use crate::{
    addr::Addr,
    maps::{BAN_INDEX_V4, BAN_INDEX_V6},
};

/// A family's ban index.
pub trait BanIndex: Addr {
    const INDEX_ON: u32;
    const OVERFLOW: u32;
    fn mask(cfg: &FilterConfig) -> u32;
    /// The expiry stored for `key` in one of its two buckets, if any.
    fn ban_probe(key: Self::Key, mask: u32) -> Option<u64>;
}

impl BanIndex for V4 {
    const INDEX_ON: u32 = config::FLAG_BAN_INDEX_V4;
    const OVERFLOW: u32 = config::FLAG_BAN_OVERFLOW_V4;

    #[inline(always)]
    fn mask(cfg: &FilterConfig) -> u32 {
        cfg.ban_mask_v4
    }

    #[inline(always)]
    fn ban_probe(key: u32, mask: u32) -> Option<u64> {
        // Zero marks an empty way; 0.0.0.0 itself is only in the hash.
        if key == 0 {
            return None;
        }
        for slot in index::slots_v4(key, mask) {
            let bucket: &BanBucketV4 = BAN_INDEX_V4.get(slot)?;
            for i in 0..bucket.addrs.len() {
                if bucket.addrs[i] == key {
                    return Some(bucket.expires[i]);
                }
            }
        }
        None
    }
}

impl BanIndex for V6 {
    const INDEX_ON: u32 = config::FLAG_BAN_INDEX_V6;
    const OVERFLOW: u32 = config::FLAG_BAN_OVERFLOW_V6;

    #[inline(always)]
    fn mask(cfg: &FilterConfig) -> u32 {
        cfg.ban_mask_v6
    }

    #[inline(always)]
    fn ban_probe(key: [u64; 2], mask: u32) -> Option<u64> {
        if key[0] | key[1] == 0 {
            return None;
        }
        for slot in index::slots_v6(key, mask) {
            let bucket: &BanBucketV6 = BAN_INDEX_V6.get(slot)?;
            for i in 0..bucket.addrs.len() {
                if bucket.addrs[i][0] == key[0] && bucket.addrs[i][1] == key[1] {
                    return Some(bucket.expires[i]);
                }
            }
        }
        None
    }
}

/// The expiry of the ban on `source_key`, if it has one (expired or not).
#[inline(always)]
pub fn expiry<K: BanIndex>(
    cfg: &FilterConfig,
    bans: &HashMap<K, Ban, 65536>,
    source_key: &K,
) -> Option<u64> {
    if cfg.has(K::INDEX_ON) {
        if let Some(expires) = K::ban_probe(source_key.key(), K::mask(cfg)) {
            return Some(expires);
        }
        if !cfg.has(K::OVERFLOW) {
            return None;
        }
    }
    // SAFETY: the pointer is a live value of the bans map.
    bans.get_ptr(source_key)
        .map(|ban| unsafe { (*ban).expires_at_ns })
}
