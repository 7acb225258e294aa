//! The known-source filter: a bit array in front of the per-source LRU
//! (`sources_v4/v6`), so that a packet of a source the LRU certainly does
//! not hold skips the LRU lookup (a helper call, a hash and a cold bucket:
//! about a quarter of the program's time for a spoofed packet, issue 14).
//!
//! One map, `known` (an mmapable array of 64-byte lines, not pinned, laid
//! out as [`crate::bit_filter`] says):
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

pub use crate::bit_filter::{
    ACTIVE_SHIFT, HEADER, LINE_BITS, LINE_WORDS, MASK_WORD, ON, lines_for, place, state,
};

/// Bits per filter for `sources` entries per family: 8 bits per entry of
/// the two LRUs together, a power of two between 4,096 and 2^26 (128 KB
/// for the default 65,536). Both LRUs full set about 12% of the bits (the
/// share of unknown sources still looked up), one of them 6%.
pub const fn bits_for(sources: u32) -> u64 {
    crate::bit_filter::bits_at_least(sources as u64 * 2 * 8)
}

/// Entries of the `known` array for `sources` per family: the header and
/// two filters.
pub const fn entries_for(sources: u32) -> u32 {
    crate::bit_filter::entries_for_bits(bits_for(sources))
}

/// A source's bit under `mask`, from its first-stage hash.
#[inline(always)]
pub const fn bit_of(hash: u64, mask: u64) -> u64 {
    (hash >> 32) & mask
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
}
