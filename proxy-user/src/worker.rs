//! Which worker thread this is, for tables kept per worker: the upstream
//! keep-alive pools (a connection is registered with the I/O driver of the
//! thread that opened it, so it is best reused there) and the counters that every request adds to (no cache line shared
//! between workers). The daemon numbers its worker threads; any other
//! thread is worker 0.

use std::{cell::Cell, time::Duration};

/// Slots in a per-worker table: workers beyond it share slots.
pub const SLOTS: usize = 64;

thread_local! {
    /// This thread's worker number (0 outside the daemon's workers).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `n`.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// The calling worker's slot in per-worker tables.
pub fn slot() -> usize {
    WORKER.with(|w| w.get()) % SLOTS
}

/// One thread's CPU-time clock (`pthread_getcpuclockid`), read from any
/// thread. It names the thread by its id: once the thread has ended, it
/// reads nothing (or, should the id be reused, another thread's time), so
/// it is read while the thread runs.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock(Option<libc::clockid_t>);

impl CpuClock {
    pub fn of_this_thread() -> CpuClock {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the calling thread is alive, and `clock` is ours to write.
        let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        CpuClock((r == 0).then_some(clock))
    }

    /// The CPU time the thread has used so far; `None` once it has ended.
    pub fn read(self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is ours to write; a clock of a thread that has ended
        // is an error (EINVAL), not undefined.
        let r = unsafe { libc::clock_gettime(self.0?, &mut ts) };
        (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
}
