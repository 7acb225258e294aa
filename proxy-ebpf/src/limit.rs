//! Per-source limits and top-talker counters, sharing one LRU entry.

use proxy_common::{config::FilterConfig, gcra, source::SourceState, stats};

use crate::{atomic, clock};

/// Attempts per packet to win the compare-and-exchange before treating the
/// packet as over the limit. Losing means another CPU just spent budget for
/// the same source; with two CPUs one retry nearly always wins.
const CAS_ATTEMPTS: usize = 4;

/// Runs both limits for a source whose state is at `state` and returns the
/// verdict. `now` is the coarse time; the exact one is read at most once,
/// only when a limit cannot be decided without it (`gcra::admit_lagging`).
#[inline(always)]
pub fn apply(cfg: &FilterConfig, state: *mut SourceState, now: u64, syn: bool, len: u64) -> u32 {
    let mut exact = 0;
    let mut exact_now = || {
        if exact == 0 {
            exact = clock::exact();
        }
        exact
    };
    // SAFETY: `state` points into a live LRU value; counters are updated with
    // atomic instructions, `last_seen_ns` by a racy store (latest writer wins).
    unsafe {
        atomic::add(&raw mut (*state).packets, 1);
        atomic::add(&raw mut (*state).bytes, len);
        core::ptr::write_volatile(&raw mut (*state).last_seen_ns, now);
        if syn
            && cfg.syn_interval_ns != 0
            && !conform(
                &raw mut (*state).syn_tat,
                now,
                &mut exact_now,
                cfg.syn_interval_ns,
                cfg.syn_tolerance_ns,
            )
        {
            atomic::add(&raw mut (*state).drops, 1);
            return stats::SYN_LIMITED;
        }
        if cfg.pps_interval_ns != 0
            && !conform(
                &raw mut (*state).pps_tat,
                now,
                &mut exact_now,
                cfg.pps_interval_ns,
                cfg.pps_tolerance_ns,
            )
        {
            atomic::add(&raw mut (*state).drops, 1);
            return stats::PPS_LIMITED;
        }
    }
    stats::PASS
}

/// One GCRA step on the shared TAT at `tat`: true if the packet conforms.
///
/// # Safety
/// `tat` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
unsafe fn conform(
    tat: *mut u64,
    now: u64,
    exact: &mut impl FnMut() -> u64,
    interval: u64,
    tolerance: u64,
) -> bool {
    // SAFETY: the caller passes an 8-byte aligned u64 inside a map value.
    let mut seen = unsafe { core::ptr::read_volatile(tat) };
    for _ in 0..CAS_ATTEMPTS {
        let Some(next) = gcra::admit_lagging(seen, now, exact, interval, tolerance) else {
            return false;
        };
        // SAFETY: as for the read above: `tat` is an aligned u64 in a map value.
        let before = unsafe { atomic::cmpxchg(tat, seen, next) };
        if before == seen {
            return true;
        }
        seen = before;
    }
    false
}
