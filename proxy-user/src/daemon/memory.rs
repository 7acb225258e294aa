//! Giving freed memory back to the kernel. glibc's allocator keeps freed
//! chunks in its arenas and only returns the top of a heap, so the buffers
//! of connections that were parked or closed (see `server::park`) would
//! stay resident at their peak. Once a second, when more than [`SLACK`] is
//! free, `malloc_trim` hands the free pages back (nginx frees a parked
//! connection's buffers the same way, at their source).

/// Free heap tolerated before trimming: small enough to matter, large
/// enough that a busy proxy does not trim on every tick.
#[cfg(target_env = "gnu")]
const SLACK: usize = 8 << 20;

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
