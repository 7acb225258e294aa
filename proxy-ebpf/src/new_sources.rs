//! The new-source budget and attack mode (`proxy_common::new_sources`):
//! asked by the first stage (`admit.rs`) before it records a source it has
//! never seen, so that past the budget a spoofed packet is dropped before
//! any write to the first stage or the LRU.

use proxy_common::new_sources::{KEY, NewSources};

use crate::{budget, maps::NEW_SOURCES};

/// Attack mode's end is pushed back at most this often (per CPU and
/// packet it is one compare): a store per drop would bounce the shared
/// cache line the budget's readers use.
const EXTEND_STEP_NS: u64 = 100_000_000;

/// Whether one more new source is admitted at the coarse time `now`.
#[inline(always)]
pub fn admit(now: u64) -> bool {
    let Some(ns) = NEW_SOURCES.get_ptr_mut(KEY) else {
        return true;
    };
    // SAFETY: a live value of the array; the settings are plain (racy)
    // reads of values userspace writes whole, the TAT is taken with a
    // compare-and-exchange (`budget::take`), attack mode's fields below.
    unsafe {
        let interval = core::ptr::read_volatile(&raw const (*ns).interval_ns);
        if interval == 0 {
            return true;
        }
        let tolerance = core::ptr::read_volatile(&raw const (*ns).tolerance_ns);
        if budget::take(&raw mut (*ns).tat_ns, now, interval, tolerance) {
            let until = core::ptr::read_volatile(&raw const (*ns).attack_until_ns);
            if until != 0 && now >= until {
                left(ns, until, now);
            }
            return true;
        }
        let until = core::ptr::read_volatile(&raw const (*ns).attack_until_ns);
        let hold = core::ptr::read_volatile(&raw const (*ns).hold_ns);
        let next = now.saturating_add(hold);
        if until == 0 || now >= until {
            entered(ns, until, next, now);
        } else if next > until.saturating_add(EXTEND_STEP_NS) {
            core::ptr::write_volatile(&raw mut (*ns).attack_until_ns, next);
        }
    }
    false
}

/// The budget was found spent outside attack mode: the CPU that switches it
/// on counts it and says so.
#[inline(never)]
fn entered(ns: *mut NewSources, until: u64, next: u64, now: u64) {
    // SAFETY: `ns` is the live value of `new_sources`; `attack_until_ns` is
    // an aligned u64 written by compare-and-exchange or racy stores of
    // times (a lost store delays the end by at most `EXTEND_STEP_NS`).
    unsafe {
        if crate::atomic::cmpxchg(&raw mut (*ns).attack_until_ns, until, next) != until {
            return;
        }
        // Only the winner writes these.
        (*ns).attack_since_ns = now;
        (*ns).attacks += 1;
        let rate = (*ns).rate;
        let burst = (*ns).burst;
        crate::event!(
            Warn,
            "attack mode entered: more than {} new sources/s (burst {}); new sources over it are dropped ({} suppressed on this cpu)",
            rate,
            burst
        );
    }
}

/// A new source was admitted after attack mode's end: the CPU that clears
/// it says so.
#[inline(never)]
fn left(ns: *mut NewSources, until: u64, now: u64) {
    // SAFETY: as in `entered`.
    unsafe {
        if crate::atomic::cmpxchg(&raw mut (*ns).attack_until_ns, until, 0) != until {
            return;
        }
        let secs = now.saturating_sub((*ns).attack_since_ns) / 1_000_000_000;
        crate::event!(
            Info,
            "attack mode left after {} s: the new-source budget has not been spent for {} ms ({} suppressed on this cpu)",
            secs,
            (*ns).hold_ns / 1_000_000
        );
    }
}
