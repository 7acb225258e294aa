//! Budgets shared by every CPU: a GCRA on one u64 taken with a
//! compare-and-exchange (the SYN-ACK budget, `syncookie.rs`; the
//! new-source budget, `new_sources.rs`). Once the budget is spent a packet
//! only reads the u64: a flood over it does not bounce its cache line.

use proxy_common::gcra;

use crate::atomic;

/// Attempts to win the compare-and-exchange before the packet is treated
/// as over the budget (another CPU just spent some of it).
const CAS_ATTEMPTS: usize = 4;

/// Takes one from the budget whose TAT is at `tat`, at `now`: false once it
/// is spent (the TAT is then not written).
///
/// # Safety
/// `tat` points to a live, 8-byte aligned u64 inside a map value, written
/// only with atomic instructions.
#[inline(always)]
pub unsafe fn take(tat: *mut u64, now: u64, interval: u64, tolerance: u64) -> bool {
    // SAFETY: the caller passes an aligned u64 inside a map value.
    let mut seen = unsafe { core::ptr::read_volatile(tat) };
    for _ in 0..CAS_ATTEMPTS {
        let Some(next) = gcra::admit(seen, now, interval, tolerance) else {
            return false;
        };
        // SAFETY: as above.
        let before = unsafe { atomic::cmpxchg(tat, seen, next) };
        if before == seen {
            return true;
        }
        seen = before;
    }
    false
}
