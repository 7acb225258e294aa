//! Giving freed memory back to the kernel. glibc's allocator keeps freed
//! chunks in its arenas and only returns the top of a heap, so the buffers
//! of connections that were parked or closed (see `server::park`) would
//! stay resident at their peak. Every [`EVERY`], when more than [`SLACK`]
//! is free, `malloc_trim` hands the free pages back. Not more often: pages
//! given back are faulted in again when a burst of new connections reuses
//! them, which costs CPU exactly when it is needed (TLS handshakes).

use std::time::Duration;

/// How often the free heap is looked at.
pub const EVERY: Duration = Duration::from_secs(10);

/// Free heap tolerated before trimming: small enough to matter, large
/// enough that a busy proxy keeps what it reuses.
#[cfg(target_env = "gnu")]
const SLACK: usize = 16 << 20;

/// Returns free heap pages to the kernel when there are enough of them.
pub fn give_back() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallinfo2 and malloc_trim take no pointers and only walk
        // the allocator's own arenas (under their locks).
        unsafe {
            if libc::mallinfo2().fordblks > SLACK {
                libc::malloc_trim(0);
            }
        }
    }
}
