//! The listed-source filter: a bit array in front of the drop lists' indexes
//! (the ban index, the blocklist address index and the range index), so a
//! packet whose source is certainly on none of them skips their probes: for
//! a random (spoofed) source those are up to six cold cache lines of 1-2 MB
//! maps, where the filter is one or two lines of a few hundred KB that stay
//! cached (issue 14).
//!
//! One map, `listed` (an mmapable array of 64-byte lines, pinned, laid out
//! as [`crate::bit_filter`] says): line
//! [`HEADER`] holds the state (on, which filter is active) and the bit mask;
//! then two filters of `lines` lines each, sized from the capacities of the
//! bans and both blocklists ([`bits_for`]).
//!
//! An entry's bit comes from a hash of its key ([`hash_v4`], [`hash_v6`]): a
//! ban's source key, a blocklisted address, or a range's range-index key
//! (its network with the marker bit, `index::range_key_*`). The hash picks
//! the line; the entry's *kind* ([`BAN`], [`ADDR`], [`RANGE`]) picks which
//! nine bits of the hash give the bit in that line, so an IPv4 source's ban
//! bit and address bit share one line.
//!
//! - **No false negatives.** Userspace sets an entry's bit in *both*
//!   filters before it writes the entry into its hash, trie or index, and
//!   again after (`proxy-user/src/filter/listed.rs` says why the second
//!   time). So while the filter is on, a clear bit in the active filter
//!   means no entry of that kind has that key; a set bit (another key's, or
//!   a removed entry's) only costs the probes the packet would have paid
//!   without the filter.
//! - **Cleared only by a rebuild**, from the hashes and tries (the source of
//!   truth): the inactive filter is zeroed, every entry's bit set, and it is
//!   made the active one with one store of the header.
//! - **Off until the first rebuild.** A new map starts zeroed: off, and the
//!   program probes every list as before.

pub use crate::bit_filter::{
    ACTIVE_SHIFT, HEADER, LINE_BITS, LINE_WORDS, MASK_WORD, ON, lines_for, place, state,
};

/// An entry's kind: a ban (keyed by the source key: the address, or the
/// IPv6 source prefix).
pub const BAN: u32 = 0;
/// A blocklisted single address.
pub const ADDR: u32 = 1;
/// A blocklisted range (keyed by its range-index key).
pub const RANGE: u32 = 2;

/// Bits per filter for capacities `bans`, `block_addrs` and `block_ranges`
/// per family: 2 bits per entry of both families' tables together, a power
/// of two between 4,096 and 2^26 (2^21 bits, 256 KB, for the defaults).
/// A filter holding `n` entries has about `n / bits` of its bits set: the
/// share of random sources that still pay a kind's probes (5% for the
/// benchmark's 100,000-entry blocklist).
pub const fn bits_for(bans: u32, block_addrs: u32, block_ranges: u32) -> u64 {
    let entries = bans as u64 + block_addrs as u64 + block_ranges as u64;
    crate::bit_filter::bits_at_least(entries * 2 * 2)
}

/// Entries of the `listed` array: the header and two filters.
pub const fn entries_for(bans: u32, block_addrs: u32, block_ranges: u32) -> u32 {
    crate::bit_filter::entries_for_bits(bits_for(bans, block_addrs, block_ranges))
}

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
#[inline(always)]
const fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The hash of an IPv4 key (the 4 packet bytes read as a native word).
/// Not keyed: the entries come from the operator, and a source that hits
/// a set bit only pays the probes it would have paid anyway. (One multiply
/// with its halves folded was tried: a /16's addresses then set 8,192
/// distinct bits of 65,536, since the line and the bit in it came from the
/// same product bits.)
#[inline(always)]
pub const fn hash_v4(word: u32) -> u64 {
    mix(word as u64)
}

/// The hash of an IPv6 key (the 16 packet bytes read as two native words).
#[inline(always)]
pub const fn hash_v6(words: [u64; 2]) -> u64 {
    mix(words[0] ^ mix(words[1] ^ 0x9e37_79b9_7f4a_7c15))
}

/// The bit of a key whose hash is `hash`, for an entry of `kind`, in a
/// filter of `mask + 1` bits: the line from the hash's low bits, the bit in
/// the line from nine bits above 32 that the kind picks.
#[inline(always)]
pub const fn bit_of(hash: u64, kind: u32, mask: u64) -> u64 {
    (hash & mask & !(LINE_BITS - 1)) | ((hash >> (32 + 9 * kind)) & (LINE_BITS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_capacities() {
        // The defaults: 65,536 bans, 262,144 addresses, 65,536 ranges.
        assert_eq!(bits_for(65_536, 262_144, 65_536), 1 << 21);
        assert_eq!(entries_for(65_536, 262_144, 65_536), 1 + 2 * 4096);
        assert_eq!(bits_for(1, 1, 1), 4096);
        assert_eq!(bits_for(u32::MAX, u32::MAX, u32::MAX), 1 << 26);
    }

    #[test]
    fn bits_stay_inside_their_filter_and_line() {
        let mask = bits_for(1024, 1024, 1024) - 1;
        let lines = lines_for(mask + 1);
        for hash in [0, 1, u64::MAX, hash_v4(0x0102_0304), hash_v6([7, 9])] {
            for kind in [BAN, ADDR, RANGE] {
                let bit = bit_of(hash, kind, mask);
                assert!(bit <= mask);
                for f in [0, 1] {
                    let (line, word, b) = place(f, mask, bit);
                    let first = 1 + f as u32 * lines;
                    assert!((first..first + lines).contains(&line));
                    assert!(word < LINE_WORDS);
                    assert_eq!(b.count_ones(), 1);
                }
            }
        }
    }

    #[test]
    fn a_sources_ban_and_address_bits_share_a_line() {
        let mask = bits_for(65_536, 262_144, 65_536) - 1;
        let h = hash_v4(u32::from_ne_bytes([203, 0, 113, 9]));
        let (ban, addr) = (bit_of(h, BAN, mask), bit_of(h, ADDR, mask));
        assert_eq!(ban >> 9, addr >> 9);
        assert_ne!(ban, addr, "for this key the kinds' bits differ");
    }

    #[test]
    fn neighbouring_addresses_spread_over_the_filter() {
        // A blocklist of one /16's addresses (last two bytes vary): the
        // bits they set are nearly all distinct, as for random keys.
        let mask = (1u64 << 20) - 1;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..65_536u32 {
            let w = u32::from_ne_bytes([10, 1, (i >> 8) as u8, i as u8]);
            seen.insert(bit_of(hash_v4(w), ADDR, mask));
        }
        // 65,536 keys in 2^20 bits: about 3% collide by chance.
        assert!(seen.len() > 62_000, "{} distinct bits", seen.len());
        let mut seen6 = std::collections::BTreeSet::new();
        for i in 0..65_536u64 {
            // 2001:db8:0:i::/64 prefixes: only the first word varies.
            let w0 = u64::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8, 0, 0, (i >> 8) as u8, i as u8]);
            seen6.insert(bit_of(hash_v6([w0, 0]), BAN, mask));
        }
        assert!(seen6.len() > 62_000, "{} distinct bits", seen6.len());
    }

    #[test]
    fn a_false_positive_rate_near_the_fill() {
        // 100,000 random entries in the default-sized filter: a random
        // other key finds its bit set about as often as bits are set.
        let mask = bits_for(65_536, 262_144, 65_536) - 1;
        let mut bits = std::vec![0u64; ((mask + 1) / 64) as usize];
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..100_000 {
            let b = bit_of(hash_v4(next()), ADDR, mask);
            bits[(b / 64) as usize] |= 1 << (b % 64);
        }
        let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let mut hits = 0;
        for _ in 0..100_000 {
            let b = bit_of(hash_v4(next()), ADDR, mask);
            hits += (bits[(b / 64) as usize] >> (b % 64)) & 1;
        }
        let fill = f64::from(set) / (mask + 1) as f64;
        let rate = hits as f64 / 100_000.0;
        assert!(
            (rate - fill).abs() < 0.01,
            "fill {fill}, false positives {rate}"
        );
        assert!(rate < 0.06, "{rate}");
    }
}
