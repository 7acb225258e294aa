//! What the program needs to know about an address family's addresses:
//! their index keys, and how an address is found in the bucketed indexes
//! (`proxy_common::index`). Every per-family step (lists, bans, the first
//! stage, limits) is generic over it.

use aya_ebpf::btf_maps::Array;
use proxy_common::{
    index::{self, BucketV4, BucketV6, ProbeV4, ProbeV6},
    list::{V4, V6},
};

/// What the program needs to know about an address family's addresses.
pub trait Addr: Copy + 'static {
    /// The address as index words (the packet bytes read natively).
    type Key: Copy + PartialEq + 'static;
    type Bucket: 'static;
    type Probe: 'static;
    /// Bits in an address.
    const BITS: u32;
    fn key(&self) -> Self::Key;
    /// The range-index key of this address under a probe, if the slot is used.
    fn probe(key: Self::Key, probe: &Self::Probe) -> Option<Self::Key>;
    /// Whether `key` is in one of its two buckets.
    fn indexed(index: &Array<Self::Bucket, 65536>, key: Self::Key, mask: u32) -> bool;
    /// The hash of `key` in the listed-source filter (`proxy_common::listed`).
    fn listed_hash(key: Self::Key) -> u64;
}

impl Addr for V4 {
    type Key = u32;
    type Bucket = BucketV4;
    type Probe = ProbeV4;
    const BITS: u32 = 32;

    #[inline(always)]
    fn key(&self) -> u32 {
        u32::from_ne_bytes(*self)
    }

    #[inline(always)]
    fn probe(key: u32, probe: &ProbeV4) -> Option<u32> {
        (probe.marker != 0).then(|| index::range_key_v4(key, probe))
    }

    #[inline(always)]
    fn listed_hash(key: u32) -> u64 {
        proxy_common::listed::hash_v4(key)
    }

    #[inline(always)]
    fn indexed(index: &Array<BucketV4, 65536>, key: u32, mask: u32) -> bool {
        // Zero marks an empty way; 0.0.0.0 itself is looked up in the hash.
        if key == 0 {
            return false;
        }
        for slot in index::slots_v4(key, mask) {
            let Some(bucket) = index.get(slot) else {
                return false;
            };
            for way in bucket.addrs {
                if way == key {
                    return true;
                }
            }
        }
        false
    }
}

impl Addr for V6 {
    type Key = [u64; 2];
    type Bucket = BucketV6;
    type Probe = ProbeV6;
    const BITS: u32 = 128;

    #[inline(always)]
    fn key(&self) -> [u64; 2] {
        // SAFETY: [u8; 16] and [u64; 2] have the same size; any bytes are valid.
        unsafe { core::mem::transmute(*self) }
    }

    #[inline(always)]
    fn probe(key: [u64; 2], probe: &ProbeV6) -> Option<[u64; 2]> {
        (probe.marker[0] | probe.marker[1] != 0).then(|| index::range_key_v6(key, probe))
    }

    #[inline(always)]
    fn listed_hash(key: [u64; 2]) -> u64 {
        proxy_common::listed::hash_v6(key)
    }

    #[inline(always)]
    fn indexed(index: &Array<BucketV6, 65536>, key: [u64; 2], mask: u32) -> bool {
        if key[0] | key[1] == 0 {
            return false;
        }
        for slot in index::slots_v6(key, mask) {
            let Some(bucket) = index.get(slot) else {
                return false;
            };
            for way in bucket.addrs {
                if way[0] == key[0] && way[1] == key[1] {
                    return true;
                }
            }
        }
        false
    }
}
