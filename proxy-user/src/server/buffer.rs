//! A connection's read and write buffers, from its worker's spares.
//!
//! A served connection needs a buffer for the bytes it reads and one for
//! the response it writes. Allocated per connection, each starts empty
//! and grows by doubling (four or five `realloc`s for a response head);
//! taken from the worker's spares, it is already [`SIZE`] bytes, and it
//! goes back when the connection's task ends (closed, parked in the lot,
//! or upgraded). Spares are per worker thread, so taking and giving back
//! is a thread-local `Vec` push or pop, with no lock.

use std::{
    cell::RefCell,
    mem,
    ops::{Deref, DerefMut},
};

/// A new buffer's capacity: a request head and a response head fit.
pub(super) const SIZE: usize = 4096;

/// Spares kept per worker: more are freed. At most `KEEP * MOST` bytes
/// sit unused per worker after a burst of connections.
const KEEP: usize = 64;

/// A buffer that grew past this (a large head or body piece) is freed, not kept.
const MOST: usize = 16 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer that goes back to its worker's spares when dropped, empty.
pub(super) struct Buffer(Vec<u8>);

impl Buffer {
    /// An empty buffer of at least [`SIZE`] bytes' capacity: a spare if
    /// the worker has one.
    pub fn spare() -> Buffer {
        let spare = SPARES.try_with(|s| s.borrow_mut().pop()).ok().flatten();
        Buffer(spare.unwrap_or_else(|| Vec::with_capacity(SIZE)))
    }

    /// `bytes` as a buffer (a connection's first head): it joins the
    /// spares when dropped only if it is of a spare's size.
    pub fn holding(bytes: Vec<u8>) -> Buffer {
        Buffer(bytes)
    }
}

impl Deref for Buffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut v = mem::take(&mut self.0);
        if !(SIZE..=MOST).contains(&v.capacity()) {
            return;
        }
        v.clear();
        // During the thread's teardown the spares are gone: freed then.
        let _ = SPARES.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < KEEP {
                s.push(v);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spares() -> usize {
        SPARES.with_borrow(|s| s.len())
    }

    #[test]
    fn a_buffer_goes_back_empty_and_is_taken_again() {
        let mut a = Buffer::spare();
        assert!(a.capacity() >= SIZE);
        a.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        let at = a.as_ptr();
        let before = spares();
        drop(a);
        assert_eq!(spares(), before + 1);
        let b = Buffer::spare();
        assert_eq!(b.as_ptr(), at, "the spare is reused, not a new allocation");
        assert!(b.is_empty());
        assert_eq!(spares(), before);
    }

    #[test]
    fn odd_sizes_are_freed_and_the_spares_are_bounded() {
        let before = spares();
        drop(Buffer::holding(b"GET / HTTP/1.1\r\n\r\n".to_vec()));
        drop(Buffer::holding(Vec::with_capacity(MOST * 2)));
        assert_eq!(
            spares(),
            before,
            "a head's exact buffer or a huge one is not kept"
        );
        let many: Vec<Buffer> = (0..KEEP + 10).map(|_| Buffer::spare()).collect();
        drop(many);
        assert_eq!(spares(), KEEP);
    }
}
