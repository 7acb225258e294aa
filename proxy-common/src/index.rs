//! The blocklist indexes: blocklisted single addresses and ranges, readable
//! by the program without a helper call.
//!
//! A BPF hash lookup costs a helper call, a jhash and a bucket walk: about as
//! much as everything else on the drop path together. This index is an array
//! map of fixed-size buckets (`block_index_v4`, `block_index_v6`). An address
//! has two candidate buckets (two hashes; the loader puts it in the less
//! loaded one, which keeps every bucket far from full), and the program
//! compares it with each way of at most those two buckets. Array lookups are
//! inlined by the verifier: no helper call.
//!
//! Ranges have an index of their own (`range_index_v4`, `range_index_v6`),
//! used while a family's ranges have at most `MAX_RANGE_PROBES` distinct
//! prefix lengths: a range is stored as its network with a *marker* bit set
//! at the first host bit (which also encodes its length, so a /16 and a /24
//! with the same base never collide), and the program probes once per length
//! in use with `(source & mask) | marker`.
//!
//! The hash maps (`block_addr_*`) and tries (`block_*`) stay the source of truth. The loader copies
//! each address into its bucket; when a bucket is full (or for the all-zero
//! address, which marks an empty way) it sets `FLAG_INDEX_OVERFLOW_*`, and
//! the program then falls back to the hash for addresses the index misses.
//! The cost per packet is one bucket whatever the blocklist holds, and the
//! addresses come from the operator, not the attacker, so nobody can steer
//! entries into one bucket.

use bytemuck::{Pod, Zeroable};

use crate::list::{host_marker, prefix_mask};

/// Ways per IPv4 bucket (32 bytes, half a cache line).
pub const WAYS_V4: usize = 8;
/// Ways per IPv6 bucket (64 bytes, one cache line).
pub const WAYS_V6: usize = 4;

/// One IPv4 bucket: addresses as native-endian words of the packet bytes; 0 = empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BucketV4 {
    pub addrs: [u32; WAYS_V4],
}
const _: () = assert!(core::mem::size_of::<BucketV4>() == 32);

/// One IPv6 bucket: addresses as two native-endian words each; all zero = empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BucketV6 {
    pub addrs: [[u64; 2]; WAYS_V6],
}
const _: () = assert!(core::mem::size_of::<BucketV6>() == 64);

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// The two candidate buckets of an IPv4 address (`word` = the 4 packet bytes read natively).
#[inline(always)]
pub const fn slots_v4(word: u32, mask: u32) -> [u32; 2] {
    let x = word as u64;
    [
        ((x.wrapping_mul(K1) >> 32) as u32) & mask,
        ((x.wrapping_mul(K2) >> 32) as u32) & mask,
    ]
}

/// The two candidate buckets of an IPv6 address (the 16 packet bytes read as two native words).
#[inline(always)]
pub const fn slots_v6(words: [u64; 2], mask: u32) -> [u32; 2] {
    let x = words[0] ^ words[1].rotate_left(32).wrapping_mul(K2);
    [
        ((x.wrapping_mul(K1) >> 32) as u32) & mask,
        ((x.wrapping_mul(K2) >> 32) as u32) & mask,
    ]
}

/// One probe of the IPv4 range index: a prefix length as mask and marker.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ProbeV4 {
    /// Network bits of the prefix (native-endian word of the big-endian mask).
    pub mask: u32,
    /// The first host bit; 0 marks an unused probe slot.
    pub marker: u32,
}
const _: () = assert!(core::mem::size_of::<ProbeV4>() == 8);

/// One probe of the IPv6 range index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ProbeV6 {
    pub mask: [u64; 2],
    /// The first host bit; all zero marks an unused probe slot.
    pub marker: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<ProbeV6>() == 32);

/// The probe for IPv4 prefixes of `len` bits (1..=31).
pub const fn probe_v4(len: u32) -> ProbeV4 {
    ProbeV4 {
        mask: u32::from_ne_bytes(prefix_mask::<4>(len)),
        marker: u32::from_ne_bytes(host_marker::<4>(len)),
    }
}

/// The probe for IPv6 prefixes of `len` bits (1..=127).
pub const fn probe_v6(len: u32) -> ProbeV6 {
    ProbeV6 {
        mask: words(prefix_mask::<16>(len)),
        marker: words(host_marker::<16>(len)),
    }
}

const fn words(b: [u8; 16]) -> [u64; 2] {
    [
        u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
    ]
}

/// The range-index key of an IPv4 address or network under `probe`.
#[inline(always)]
pub const fn range_key_v4(word: u32, probe: &ProbeV4) -> u32 {
    (word & probe.mask) | probe.marker
}

/// The range-index key of an IPv6 address or network under `probe`.
#[inline(always)]
pub const fn range_key_v6(w: [u64; 2], probe: &ProbeV6) -> [u64; 2] {
    [
        (w[0] & probe.mask[0]) | probe.marker[0],
        (w[1] & probe.mask[1]) | probe.marker[1],
    ]
}

/// Buckets for `capacity` addresses: a power of two with room for twice as many.
pub const fn buckets_for(capacity: u32, ways: usize) -> u32 {
    let want = (capacity as u64 * 2).div_ceil(ways as u64);
    let mut n = 1u64;
    while n < want {
        n <<= 1;
    }
    if n > (1 << 24) { 1 << 24 } else { n as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_keys_tell_lengths_apart() {
        let net = u32::from_ne_bytes([10, 1, 0, 0]);
        let p16 = probe_v4(16);
        let p24 = probe_v4(24);
        // 10.1.0.0/16 and 10.1.0.0/24 share a base but not a key.
        assert_ne!(range_key_v4(net, &p16), range_key_v4(net, &p24));
        // A source inside 10.1.0.0/16 probes to the /16 key, one outside does not.
        let inside = u32::from_ne_bytes([10, 1, 200, 7]);
        let outside = u32::from_ne_bytes([10, 2, 0, 7]);
        assert_eq!(range_key_v4(inside, &p16), range_key_v4(net, &p16));
        assert_ne!(range_key_v4(outside, &p16), range_key_v4(net, &p16));
        assert_eq!(probe_v4(24).marker.to_ne_bytes(), [0, 0, 0, 0x80]);
        assert_eq!(probe_v4(20).mask.to_ne_bytes(), [0xff, 0xff, 0xf0, 0]);
        let p6 = probe_v6(48);
        assert_eq!(
            p6.mask,
            words([
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ])
        );
        assert_eq!(
            p6.marker,
            words([0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn buckets_are_powers_of_two_with_headroom() {
        assert_eq!(buckets_for(262_144, WAYS_V4), 65_536);
        assert_eq!(buckets_for(1, WAYS_V4), 1);
        assert_eq!(buckets_for(100, WAYS_V6), 64);
    }

    #[test]
    fn two_choices_keep_buckets_below_their_ways() {
        // 100,000 addresses (a threat feed's worth) over the buckets sized for
        // the default capacity, placed in the less loaded of two buckets.
        let buckets = buckets_for(131_072, WAYS_V4);
        let mask = buckets - 1;
        let mut load = std::vec![0u8; buckets as usize];
        let mut x: u32 = 12345;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let [a, b] = slots_v4(x, mask);
            let pick = if load[a as usize] <= load[b as usize] {
                a
            } else {
                b
            };
            load[pick as usize] += 1;
        }
        let max = *load.iter().max().unwrap() as usize;
        // With a single choice the fullest bucket held 11 at this load.
        assert!(max < WAYS_V4, "max load {max}");
    }
}
