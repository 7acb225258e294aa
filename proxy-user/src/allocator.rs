//! The daemon's global allocator when no other is chosen: the system's
//! (glibc's `malloc`), except for blocks aligned past what `malloc`
//! guarantees.
//!
//! tokio aligns a task's cell and a socket's readiness record
//! (`ScheduledIo`) to 128 bytes (a cache line pair, so that two of them
//! never share one), and every connection served gets one of each. The
//! system allocator serves such a layout through `posix_memalign`, which
//! glibc implements by allocating `size + align` more, splitting the
//! chunk and freeing the pieces it does not return: about 700
//! instructions a call under callgrind, against about 100 for a `malloc`
//! (issue 17: 1.4k of a new connection's instructions). [`Aligned`]
//! allocates `size + align` with `malloc` itself and returns the aligned
//! address inside, with the block's start stored in the 8 bytes before
//! it: a `malloc` and a few instructions, for up to `align` bytes unused
//! while the block lives (a connection being served; a waiting plain
//! connection has neither block, `server::lot`).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    ptr,
};

/// What `malloc` aligns every block to on the platforms rampart runs on
/// (glibc: `2 * size_of::<usize>()` on 64-bit targets).
const MALLOC_ALIGN: usize = 16;

/// The largest alignment served by over-allocating (more would waste more
/// than `posix_memalign` costs): larger ones go to the system allocator.
const MOST_ALIGN: usize = 4096;

/// The system allocator, with over-aligned blocks carved out of a
/// `malloc` (see the module's documentation).
pub struct Aligned;

/// Whether `layout` is carved out of a larger `malloc` block.
fn carved(layout: &Layout) -> bool {
    layout.align() > MALLOC_ALIGN && layout.align() <= MOST_ALIGN
}

/// The `malloc` block a carved layout is taken from: room for the block's
/// start before the aligned address, wherever `malloc` puts it.
fn outer(layout: &Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(layout.align())?, MALLOC_ALIGN).ok()
}

// SAFETY: every block is a valid allocation of at least the layout's size
// at the layout's alignment: either the system allocator's own, or an
// address inside a `malloc` block of `size + align` bytes, rounded up to
// `align` from at least 8 bytes past the block's start (so `size` bytes
// fit after it), with the start stored just before it for `dealloc`.
unsafe impl GlobalAlloc for Aligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !carved(&layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc(layout) };
        }
        let Some(outer) = outer(&layout) else {
            return ptr::null_mut();
        };
        // SAFETY: `outer`'s size is at least `align`, so not zero.
        let start = unsafe { System.alloc(outer) };
        if start.is_null() {
            return start;
        }
        // `start` is 16-aligned and `align` a larger power of two: the
        // next multiple of `align` past `start` is 16 to `align` bytes on,
        // and `size` bytes after it end within the block.
        let offset = layout.align() - (start as usize & (layout.align() - 1));
        // SAFETY: `offset <= align`, within the `size + align` bytes.
        let block = unsafe { start.add(offset) };
        // SAFETY: `offset >= 16`: the 8 bytes before `block` are inside
        // the `malloc` block, and 8-aligned (both `block` and 8 divide 16).
        unsafe { block.cast::<*mut u8>().sub(1).write(start) };
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if !carved(&layout) {
            // SAFETY: allocated by `System` with this layout (`alloc`).
            return unsafe { System.dealloc(block, layout) };
        }
        // SAFETY: `alloc` stored the `malloc` block's start there.
        let start = unsafe { block.cast::<*mut u8>().sub(1).read() };
        let outer = outer(&layout).expect("allocated with this layout");
        // SAFETY: `start` came from `System.alloc(outer)`.
        unsafe { System.dealloc(start, outer) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !carved(&layout) {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            // SAFETY: `block` has `layout.size()` bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !carved(&layout) {
            // SAFETY: allocated by `System` with this layout (`alloc`).
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // A carved block moves: the stored start is at a fixed distance
        // before the aligned address, which `realloc` would not keep.
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: `new_size` is not zero (the caller's contract).
        let moved = unsafe { self.alloc(new) };
        if !moved.is_null() {
            // SAFETY: both blocks hold at least the smaller size; they are
            // distinct allocations.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `layout` (zeroed or not), fills it, and checks it.
    fn round_trip(layout: Layout, zeroed: bool) -> *mut u8 {
        // SAFETY: test layouts have a size.
        let block = unsafe {
            if zeroed {
                Aligned.alloc_zeroed(layout)
            } else {
                Aligned.alloc(layout)
            }
        };
        assert!(!block.is_null());
        assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
        // SAFETY: `block` has `layout.size()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(block, layout.size()) };
        if zeroed {
            assert!(bytes.iter().all(|b| *b == 0), "{layout:?} zeroed");
        }
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        block
    }

    #[test]
    fn blocks_are_aligned_whole_and_freed_at_every_alignment() {
        for align in [1, 8, 16, 32, 64, 128, 256, 4096, 8192] {
            for size in [1, 7, 16, 100, 128, 129, 640, 5000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // Several at once: no block overlaps another's stored start.
                let blocks: Vec<*mut u8> = (0..8).map(|k| round_trip(layout, k % 2 == 0)).collect();
                for block in blocks {
                    // SAFETY: the bytes were written by `round_trip`.
                    let bytes = unsafe { std::slice::from_raw_parts(block, size) };
                    assert!(bytes.iter().enumerate().all(|(i, b)| *b == i as u8));
                    // SAFETY: allocated above with `layout`.
                    unsafe { Aligned.dealloc(block, layout) };
                }
            }
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_and_the_alignment() {
        for align in [16, 128, 4096] {
            let layout = Layout::from_size_align(200, align).unwrap();
            for new_size in [300, 50, 4000] {
                let block = round_trip(layout, false);
                // SAFETY: `block` was allocated with `layout`.
                let moved = unsafe { Aligned.realloc(block, layout, new_size) };
                assert!(!moved.is_null());
                assert_eq!(moved as usize % align, 0);
                let kept = layout.size().min(new_size);
                // SAFETY: `moved` holds at least `kept` bytes.
                let bytes = unsafe { std::slice::from_raw_parts(moved, kept) };
                assert!(bytes.iter().enumerate().all(|(i, b)| *b == i as u8));
                let new = Layout::from_size_align(new_size, align).unwrap();
                // SAFETY: `moved` was allocated with `new`.
                unsafe { Aligned.dealloc(moved, new) };
            }
        }
    }
}
