//! Per-source limits and top-talker counters, sharing one LRU entry.

use proxy_common::{
    config::{self, FilterConfig},
    gcra,
    source::SourceState,
    stats,
};

use crate::{atomic, clock};

/// How far the coarse clock is taken to lag the exact one at most, for
/// caching a drop decided on the exact time: the two ticks a CPU's cached
/// coarse time may trail by (`clock::coarse`) at HZ=100 (the longest tick
/// of the kernels we run on), plus one tick of margin for a late tick. A source over
/// such a limit is dropped from the cache while the coarse time is more
/// than this before `TAT - tolerance`, where the exact time is certainly
/// before it too; closer to it, the LRU path decides on the exact time as
/// before (docs/kernel-tier.md, "Limited sources").
pub const LAG_GUARD_NS: u64 = 30_000_000;

/// Attempts per packet to win the compare-and-exchange before treating the
/// packet as over the limit. Losing means another CPU just spent budget for
/// the same source; with two CPUs one retry nearly always wins.
const CAS_ATTEMPTS: usize = 4;

/// Runs both limits for a source whose state is at `state` and returns the
/// verdict. `now` is the coarse time. A limit whose tolerance spans several
/// ticks (`FLAG_*_COARSE`, set by the loader) is decided on it alone; any
/// other reads the exact time at most once, only when it cannot be decided
/// without it (`gcra::admit_lagging`; docs/kernel-tier.md, "Clocks").
/// A drop sets `until` to a coarse time before which every packet of the
/// source stays over that limit (`limited.rs`): for a limit decided on the
/// coarse clock, `TAT - tolerance`; for one decided on the exact time,
/// [`LAG_GUARD_NS`] before that, or 0 (nothing to cache) when that is not
/// ahead of `now`. Any other verdict leaves it alone.
#[inline(always)]
pub fn apply(
    cfg: &FilterConfig,
    state: *mut SourceState,
    now: u64,
    syn: bool,
    len: u64,
    until: &mut u64,
) -> u32 {
    let mut exact = 0;
    let mut exact_now = || {
        if exact == 0 {
            exact = clock::exact();
        }
        exact
    };
    // SAFETY: `state` points into a live LRU value. The counters and
    // `last_seen_ns` are plain (racy) updates, the TATs compare-and-exchange.
    unsafe {
        count(&raw mut (*state).packets, 1);
        count(&raw mut (*state).bytes, len);
        count(&raw mut (*state).syns, syn as u64);
        core::ptr::write_volatile(&raw mut (*state).last_seen_ns, now);
        if syn
            && cfg.syn_interval_ns != 0
            && !conform(
                &raw mut (*state).syn_tat,
                now,
                cfg.has(config::FLAG_SYN_COARSE),
                &mut exact_now,
                until,
                cfg.syn_interval_ns,
                cfg.syn_tolerance_ns,
            )
        {
            count(&raw mut (*state).drops, 1);
            return stats::SYN_LIMITED;
        }
        if cfg.pps_interval_ns != 0
            && !conform(
                &raw mut (*state).pps_tat,
                now,
                cfg.has(config::FLAG_PPS_COARSE),
                &mut exact_now,
                until,
                cfg.pps_interval_ns,
                cfg.pps_tolerance_ns,
            )
        {
            count(&raw mut (*state).drops, 1);
            return stats::PPS_LIMITED;
        }
    }
    stats::PASS
}

/// Whether the source at `state` was found not allowlisted under the
/// allowlist generation `generation` (`SourceState::allow_gen`).
#[inline(always)]
pub fn vouches(state: *mut SourceState, generation: u64) -> bool {
    // SAFETY: `state` points into a live LRU value.
    unsafe { core::ptr::read_volatile(&raw const (*state).allow_gen) == generation }
}

/// Records that the source at `state` is not allowlisted under `generation`.
#[inline(always)]
pub fn stamp(state: *mut SourceState, generation: u64) {
    // SAFETY: as above; a plain store (the latest writer wins, and every
    // writer found the source not allowlisted).
    unsafe { core::ptr::write_volatile(&raw mut (*state).allow_gen, generation) }
}

/// One GCRA step on the shared TAT at `tat`: true if the packet conforms.
/// `coarse_only`: decide on `now` (the coarse time) even when the packet is
/// over the limit by it; such a drop sets `until` (see [`apply`]).
///
/// # Safety
/// `tat` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
unsafe fn conform(
    tat: *mut u64,
    now: u64,
    coarse_only: bool,
    exact: &mut impl FnMut() -> u64,
    until: &mut u64,
    interval: u64,
    tolerance: u64,
) -> bool {
    // SAFETY: the caller passes an 8-byte aligned u64 inside a map value.
    let mut seen = unsafe { core::ptr::read_volatile(tat) };
    for _ in 0..CAS_ATTEMPTS {
        let next = if coarse_only {
            gcra::admit(seen, now, interval, tolerance)
        } else {
            gcra::admit_lagging(seen, now, exact, interval, tolerance)
        };
        let Some(next) = next else {
            // Dropped because `seen - tolerance` is ahead of the coarse
            // time (coarse only) or of the exact time, which the coarse
            // time trails by less than the guard; TATs only grow.
            let over = seen - tolerance;
            if coarse_only {
                *until = over;
            } else if over > now.saturating_add(LAG_GUARD_NS) {
                *until = over - LAG_GUARD_NS;
            }
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

/// `*counter += n` as a plain load and store: a per-source counter is for
/// display (`rampart top`, `ip show`, `map dump sources`), and a locked add
/// costs as much as the rest of a drop's bookkeeping (4-6 ns each, issue
/// 14). Exact while one CPU at a time updates the source, as one receive
/// queue's NAPI does; when two CPUs update one source at the same instant,
/// one of the increments can be lost.
///
/// # Safety
/// `counter` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
unsafe fn count(counter: *mut u64, n: u64) {
    // SAFETY: the caller passes an aligned u64 inside a map value.
    unsafe { core::ptr::write_volatile(counter, core::ptr::read_volatile(counter) + n) }
}
