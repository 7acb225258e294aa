//! The known-source filter (`proxy_common::known`): whether a source may
//! have an LRU entry, from one bit, so that a source that certainly has
//! none skips the LRU lookup; and the marks the program makes when it
//! creates an entry.

use proxy_common::known::{self, HEADER, MASK_WORD, ON};

use crate::maps::KNOWN;

/// Whether the source whose first-stage hash is `hash` may be in the LRU:
/// false only when the filter is on and the source's bit in the active
/// filter is clear (then it has no entry).
#[inline(always)]
pub fn maybe(hash: u64) -> bool {
    let Some(head) = KNOWN.get_ptr(HEADER) else {
        return true;
    };
    // SAFETY: a live value of the array; userspace writes the mask before
    // it turns the filter on, and the state word whole.
    let (state, mask) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*head)[0]),
            core::ptr::read_volatile(&raw const (*head)[MASK_WORD]),
        )
    };
    if state & ON == 0 {
        return true;
    }
    let (line, word, bit) = known::place(
        state >> known::ACTIVE_SHIFT,
        mask,
        known::bit_of(hash, mask),
    );
    let Some(line) = KNOWN.get_ptr(line) else {
        return true;
    };
    // SAFETY: as above; `word` is below `LINE_WORDS`.
    let bits = unsafe { core::ptr::read_volatile(&raw const (*line)[word]) };
    bits & bit != 0
}

/// Sets the bit of the source whose first-stage hash is `hash` in both
/// filters: called after the program inserted it into the LRU, so that a
/// rebuild racing with the insert cannot miss it (`proxy_common::known`).
#[inline(always)]
pub fn mark(hash: u64) {
    let Some(head) = KNOWN.get_ptr(HEADER) else {
        return;
    };
    // SAFETY: as in `maybe`.
    let mask = unsafe { core::ptr::read_volatile(&raw const (*head)[MASK_WORD]) };
    let bit = known::bit_of(hash, mask);
    for filter in 0..2 {
        let (line, word, b) = known::place(filter, mask, bit);
        if let Some(line) = KNOWN.get_ptr_mut(line) {
            // SAFETY: an aligned u64 of a live array value; an atomic OR,
            // so concurrent marks (and userspace's) never undo each other.
            unsafe { crate::atomic::or(&raw mut (*line)[word], b) };
        }
    }
}
