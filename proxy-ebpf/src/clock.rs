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
//!
//! [`coarse`] calls its helper once per tick per CPU: the value read is
//! kept per CPU beside the `jiffies` it was read at, and returned while
//! `jiffies` has not moved (`bpf_jiffies64`, which the verifier inlines as
//! one load on x86-64). Both move at the same timekeeping update, so the
//! kept value is the one the helper would return, but for one race: the
//! tick handler moves `jiffies` just before the coarse time, and a value
//! read between the two is one tick old. Such a value is kept only when it
//! differs from the one kept before (a first read after the CPU slept
//! through ticks); then the CPU's coarse time lags by up to two ticks
//! until the next one (docs/kernel-tier.md, "Clocks").

use aya_ebpf::{
    btf_maps::PerCpuArray,
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::btf_map,
};

/// The coarse time this CPU last read, and the `jiffies` it read it at.
#[repr(C)]
pub struct Tick {
    jiffies: u64,
    ns: u64,
}

/// Per CPU, not pinned.
#[btf_map(name = "coarse_clock")]
static COARSE_CLOCK: PerCpuArray<Tick, 1> = PerCpuArray::new();

/// Monotonic nanoseconds as of the last timekeeping update (read once per
/// tick on this CPU, see above).
#[inline(always)]
pub fn coarse() -> u64 {
    // SAFETY: BPF helpers with no arguments and no preconditions.
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(tick) = COARSE_CLOCK.get_ptr_mut(0) else {
        // SAFETY: as above.
        return unsafe { bpf_ktime_get_coarse_ns() };
    };
    // SAFETY: this CPU's slot; nothing else on this CPU runs concurrently.
    let tick = unsafe { &mut *tick };
    if tick.jiffies == jiffies {
        return tick.ns;
    }
    // SAFETY: as above.
    let ns = unsafe { bpf_ktime_get_coarse_ns() };
    // Unchanged although `jiffies` moved: read inside the tick handler's
    // window; not kept, so the next packet reads again.
    if ns != tick.ns {
        tick.jiffies = jiffies;
        tick.ns = ns;
    }
    ns
}

/// Monotonic nanoseconds, read from the clocksource.
#[inline(always)]
pub fn exact() -> u64 {
    // SAFETY: as above.
    unsafe { bpf_ktime_get_ns() }
}
