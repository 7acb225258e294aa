//! The known-source filter: a bit array in front of the per-source LRU
//! (`sources_v4/v6`), so that a packet of a source the LRU certainly does
//! not hold skips the LRU lookup (a helper call, a hash and a cold bucket:
//! about a quarter of the program's time for a spoofed packet, issue 14).
//!
//! One map, `known` (an mmapable array of 64-byte lines, not pinned):
//! line [`HEADER`] holds the state (on, which filter is active) and the bit
//! mask; then two filters of `lines` lines each. A source's bit is bits
//! 32.. of its first-stage hash (`admit::hash_v4/v6`), under the mask; both
//! families share the bits.
//!
//! - **No false negatives.** The program sets a source's bit in *both*
//!   filters (an atomic OR) after it inserts the source into the LRU, the
//!   only place the program creates entries. A clear bit in the active
//!   filter then means the source has no entry; a set bit (another source's,
//!   or an evicted one's) only costs the lookup it would have had anyway.
//! - **Rebuilt by userspace** (`proxy-user/src/filter/known.rs`), since the
//!   LRU does not report evictions and stale bits would fill the filter: it
//!   zeroes the inactive filter, then reads every key of both LRUs and ORs
//!   their bits into it (atomic ORs through the mmap), then makes it the
//!   active one. A source inserted before the zeroing ended is in the LRU
//!   when the read starts, so it is read; one inserted later gets its bit
//!   from the program, which nothing clears before the next rebuild. So
//!   the filter made active holds every source the LRU holds.
//! - **Off until the first rebuild.** A new program's map starts zeroed:
//!   off, and the program looks every source up as before. Entries that
//!   userspace writes into the LRU itself (the migration of adopted maps)
//!   are written before a rebuild, which reads them.

/// u64 words per line (one 64-byte value of the array).
pub const LINE_WORDS: usize = 8;
/// Bits per line.
pub const LINE_BITS: u64 = 512;
/// The header line's index.
pub const HEADER: u32 = 0;
/// Header word 0: the filter is on (its bits are complete).
pub const ON: u64 = 1;
/// Header word 0: which filter is active (0 or 1).
pub const ACTIVE_SHIFT: u32 = 1;
/// Header word 0 of a filter that is on with `active` the active one.
pub const fn state(active: u64) -> u64 {
    ON | (active & 1) << ACTIVE_SHIFT
}
/// Header word 1: the bit mask of one filter (its bits, minus one).
pub const MASK_WORD: usize = 1;

/// Bits per filter for `sources` entries per family: 8 bits per entry of
/// the two LRUs together, a power of two between 4,096 and 2^26 (128 KB
/// for the default 65,536). Both LRUs full set about 12% of the bits (the
/// share of unknown sources still looked up), one of them 6%.
pub const fn bits_for(sources: u32) -> u64 {
    let want = sources as u64 * 2 * 8;
    let mut n: u64 = 4096;
    while n < want && n < 1 << 26 {
        n <<= 1;
    }
    n
}

/// Lines per filter for `bits`.
pub const fn lines_for(bits: u64) -> u32 {
    (bits / LINE_BITS) as u32
}

/// Entries of the `known` array for `sources` per family: the header and
/// two filters.
pub const fn entries_for(sources: u32) -> u32 {
    1 + 2 * lines_for(bits_for(sources))
}

/// A source's bit under `mask`, from its first-stage hash.
#[inline(always)]
pub const fn bit_of(hash: u64, mask: u64) -> u64 {
    (hash >> 32) & mask
}

/// Where bit `bit` of filter `filter` lives: (line, word, bit in the word).
#[inline(always)]
pub const fn place(filter: u64, mask: u64, bit: u64) -> (u32, usize, u64) {
    let lines = (mask >> 9) + 1;
    let line = 1 + (filter & 1) * lines + (bit >> 9);
    (line as u32, ((bit >> 6) & 7) as usize, 1 << (bit & 63))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bits_for(65_536), 1 << 20);
        assert_eq!(bits_for(1), 4096);
        assert_eq!(bits_for(u32::MAX), 1 << 26);
        assert_eq!(entries_for(65_536), 1 + 2 * 2048);
    }

    #[test]
    fn places_stay_inside_their_filter() {
        let mask = bits_for(1024) - 1;
        let lines = lines_for(mask + 1);
        for bit in [0, 1, 63, 64, 511, 512, mask] {
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
