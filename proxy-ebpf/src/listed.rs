//! The listed-source filter (`proxy_common::listed`): whether a source may
//! be banned, a blocklisted address, or inside an indexed blocklist range,
//! from one bit each, so that a source that certainly is none of them
//! skips those probes (cold lines of the ban and blocklist indexes).

use proxy_common::listed::{self, HEADER, MASK_WORD, ON};

use crate::maps::LISTED;

/// The active filter, read once per packet.
#[derive(Clone, Copy)]
pub struct Listed {
    filter: u64,
    mask: u64,
}

/// The active filter, or `None` while it is off (every list is probed).
#[inline(always)]
pub fn active() -> Option<Listed> {
    let head = LISTED.get_ptr(HEADER)?;
    // SAFETY: a live value of the array; userspace writes the mask before
    // it turns the filter on, and the state word whole.
    let (state, mask) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*head)[0]),
            core::ptr::read_volatile(&raw const (*head)[MASK_WORD]),
        )
    };
    (state & ON != 0).then_some(Listed {
        filter: state >> listed::ACTIVE_SHIFT,
        mask,
    })
}

impl Listed {
    /// Whether an entry of `kind` may have the key whose hash is `hash`:
    /// false only when its bit in the active filter is clear.
    #[inline(always)]
    pub fn holds(&self, hash: u64, kind: u32) -> bool {
        let (line, word, bit) = listed::place(
            self.filter,
            self.mask,
            listed::bit_of(hash, kind, self.mask),
        );
        let Some(line) = LISTED.get_ptr(line) else {
            return true;
        };
        // SAFETY: as in `active`; `word` is below `LINE_WORDS`.
        let bits = unsafe { core::ptr::read_volatile(&raw const (*line)[word]) };
        bits & bit != 0
    }
}

/// Whether an entry of `kind` may have the key `hash()` hashes: true while
/// the filter is off (the hash is then not computed).
#[inline(always)]
pub fn may_hold(listed: Option<Listed>, hash: impl FnOnce() -> u64, kind: u32) -> bool {
    match listed {
        Some(l) => l.holds(hash(), kind),
        None => true,
    }
}
