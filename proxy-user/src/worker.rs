//! Which worker thread this is, for tables kept per worker: the upstream
//! keep-alive pools (a connection's I/O task runs on the thread that opened
//! it) and the counters that every request adds to (no cache line shared
//! between workers). The daemon numbers its worker threads; any other
//! thread is worker 0.

use std::cell::Cell;

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
