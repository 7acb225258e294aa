//! Two bit filters in a mapped array of lines, one of them active (the
//! layout of `proxy_common::bit_filter`): what the known-source filter
//! (`known.rs`) and the listed-source filter (`listed.rs`) share on this
//! side. The header's state, one bit's word, the active filter's fill, and
//! a rebuild's two ends: zeroing the filter it fills, then switching to it.

use std::sync::atomic::{AtomicU64, Ordering};

use proxy_common::bit_filter::{self, ACTIVE_SHIFT, HEADER, LINE_BITS, MASK_WORD, ON};

use super::{
    FilterError,
    lines::{LINE_WORDS, MappedLines},
};

/// A mapped header line and two filters of `mask + 1` bits each.
pub struct BitFilters {
    lines: MappedLines,
    /// One filter's bits, minus one.
    mask: u64,
}

impl BitFilters {
    /// Checks the shape of `lines`, the map `name`: a header and two
    /// filters of a power of two of lines each.
    pub fn of(lines: MappedLines, name: &str) -> Result<BitFilters, FilterError> {
        let per_filter = lines.lines().saturating_sub(1) / 2;
        if per_filter == 0 || !per_filter.is_power_of_two() {
            return Err(FilterError::Map {
                name: name.into(),
                source: aya::maps::MapError::InvalidValueSize {
                    size: per_filter,
                    expected: 0,
                },
            });
        }
        Ok(BitFilters {
            lines,
            mask: per_filter as u64 * LINE_BITS - 1,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        self.lines.words()
    }

    /// One filter's bits, minus one.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Bits per filter.
    pub fn size(&self) -> u64 {
        self.mask + 1
    }

    /// The header's state word: [`ON`] and the active filter.
    pub fn state(&self) -> u64 {
        self.words()[HEADER as usize * LINE_WORDS].load(Ordering::SeqCst)
    }

    /// Whether the program uses the filter.
    pub fn is_on(&self) -> bool {
        self.state() & ON != 0
    }

    /// The active filter (0 or 1).
    pub fn active(&self) -> u64 {
        (self.state() >> ACTIVE_SHIFT) & 1
    }

    /// The word holding bit `bit` of filter `filter`, and the bit in it.
    pub fn word(&self, filter: u64, bit: u64) -> (&AtomicU64, u64) {
        let (line, word, bit) = bit_filter::place(filter, self.mask, bit);
        (&self.words()[line as usize * LINE_WORDS + word], bit)
    }

    /// Bits set in the active filter.
    pub fn fill(&self) -> u64 {
        self.filter_words(self.active())
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    fn filter_words(&self, filter: u64) -> &[AtomicU64] {
        let lines = ((self.mask + 1) / LINE_BITS) as usize;
        let start = (1 + filter as usize * lines) * LINE_WORDS;
        &self.words()[start..start + lines * LINE_WORDS]
    }

    /// Turns the filter off: the program goes past it again.
    pub fn turn_off(&self) {
        self.words()[HEADER as usize * LINE_WORDS].fetch_and(!ON, Ordering::SeqCst);
    }

    /// A rebuild's first step: writes the mask, then zeroes the filter the
    /// rebuild fills (the inactive one while on; else either, as writers
    /// mark both) and returns it. Entries read after this are in it.
    pub fn zero_target(&self) -> u64 {
        let head = HEADER as usize * LINE_WORDS;
        self.words()[head + MASK_WORD].store(self.mask, Ordering::SeqCst);
        let state = self.state();
        let target = if state & ON != 0 {
            1 - ((state >> ACTIVE_SHIFT) & 1)
        } else {
            0
        };
        for w in self.filter_words(target) {
            w.store(0, Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        target
    }

    /// A rebuild's last step: makes `target` the active filter, and the
    /// filter on, with one store.
    pub fn switch_to(&self, target: u64) {
        self.words()[HEADER as usize * LINE_WORDS]
            .store(bit_filter::state(target), Ordering::SeqCst);
    }
}
