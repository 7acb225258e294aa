//! The clock the XDP program reads: CLOCK_MONOTONIC (`bpf_ktime_get_ns`,
//! and its coarse reading `bpf_ktime_get_coarse_ns`).

/// Nanoseconds of CLOCK_MONOTONIC.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The step of the coarse clock (`CLOCK_MONOTONIC_COARSE`, which
/// `bpf_ktime_get_coarse_ns` reads): one tick, 4 ms at HZ=250. 10 ms (the
/// tick at HZ=100, the longest in use) if the kernel does not say.
pub fn coarse_tick_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes into the timespec we own.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    if rc != 0 || ns == 0 { 10_000_000 } else { ns }
}
