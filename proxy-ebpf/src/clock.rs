//! The program's clocks: CLOCK_MONOTONIC read exactly, or coarsely.
//!
//! `bpf_ktime_get_ns` reads the clocksource on every call; on this
//! project's virtual machines that costs about 28 ns through
//! BPF_PROG_TEST_RUN (the whole trivial program costs 9.5), more while
//! other work loads the host. `bpf_ktime_get_coarse_ns` returns the time of
//! the last timekeeping update instead, for about 4.5 ns: the same clock
//! (userspace's CLOCK_MONOTONIC, so ban expiries compare as before), behind
//! by up to a tick (4 ms at HZ=250; more if ticks are late), and moving a
//! tick at a time.
//!
//! - Bans and the first stage's record of a first packet read [`coarse`]:
//!   a ban ends up to a tick late, and a promoted source's first packet is
//!   dated up to a tick early (never after its second).
//! - The limits decide on [`coarse`] when it is certain and read [`exact`]
//!   otherwise (`proxy_common::gcra::admit_lagging`): a source within its
//!   limit even by the lagging clock conforms, and costs no exact read;
//!   one over it by the lagging clock is decided on the exact time. The
//!   coarse clock alone would not do: GCRA on a clock that stands still
//!   and then jumps restarts a flooding source's TAT at every jump and
//!   loses the credit of the time jumped (a 1,000,000/s limit with a burst
//!   of 1,000 passes about a quarter of its rate).

use aya_ebpf::helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns};

/// Monotonic nanoseconds as of the last timekeeping update.
#[inline(always)]
pub fn coarse() -> u64 {
    // SAFETY: a BPF helper with no arguments and no preconditions.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Monotonic nanoseconds, read from the clocksource.
#[inline(always)]
pub fn exact() -> u64 {
    // SAFETY: as above.
    unsafe { bpf_ktime_get_ns() }
}
