//! The layout the kernel tier's bit filters share (the known-source filter,
//! `known`, and the listed-source filter, `listed`): an array map of
//! 64-byte lines holding a header line and two filters of the same size, of
//! which the header names the active one.
//!
//! Line [`HEADER`] holds the state word ([`ON`], and the active filter at
//! [`ACTIVE_SHIFT`]) and, at [`MASK_WORD`], one filter's bits minus one.
//! Filter 0 takes the lines after the header, filter 1 the lines after
//! those. Userspace rebuilds the inactive filter and makes it active with
//! one store of the state word; what each filter's bits mean, and why a
//! rebuild misses nothing, is its own module's to say.

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

/// Bits per filter for at least `want` bits: a power of two between 4,096
/// (one page of lines) and 2^26 (8 MB).
pub const fn bits_at_least(want: u64) -> u64 {
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

/// Entries of an array of two filters of `bits` each and the header.
pub const fn entries_for_bits(bits: u64) -> u32 {
    1 + 2 * lines_for(bits)
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
    fn sizes_are_powers_of_two_within_bounds() {
        assert_eq!(bits_at_least(0), 4096);
        assert_eq!(bits_at_least(4097), 8192);
        assert_eq!(bits_at_least(1 << 20), 1 << 20);
        assert_eq!(bits_at_least(u64::MAX), 1 << 26);
        assert_eq!(entries_for_bits(1 << 20), 1 + 2 * 2048);
    }

    #[test]
    fn places_stay_inside_their_filter() {
        let mask = bits_at_least(1 << 14) - 1;
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
        // The two filters do not overlap: the same bit, lines apart.
        assert_eq!(place(1, mask, 0).0 - place(0, mask, 0).0, lines);
    }
}
