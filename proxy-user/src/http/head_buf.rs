//! The buffer an upstream request head is written into, kept per worker
//! thread between requests: a request takes it (or a new one when another
//! request on the thread holds it) and gives it back when its exchange is
//! over, so the usual request allocates nothing for its head.

use std::cell::Cell;

/// A buffer larger than this (a rare head) is not kept.
const KEEP_UP_TO: usize = 16 << 10;

thread_local! {
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A head buffer, empty when taken; given back to its thread when dropped.
#[derive(Debug)]
pub(super) struct HeadBuf(pub Vec<u8>);

impl HeadBuf {
    pub fn take() -> HeadBuf {
        HeadBuf(SPARE.with(Cell::take))
    }
}

impl Drop for HeadBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() == 0 || buf.capacity() > KEEP_UP_TO {
            return;
        }
        buf.clear();
        // Kept unless the thread has a spare already (another request gave
        // its back first); `try_with`: never during the thread's exit.
        let _ = SPARE.try_with(|spare| {
            let other = spare.take();
            spare.set(if other.capacity() == 0 { buf } else { other });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_the_next_one_taken_and_empty() {
        let mut first = HeadBuf::take();
        first.0.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let at = first.0.as_ptr();
        // Another request meanwhile gets a buffer of its own.
        let second = HeadBuf::take();
        assert_eq!(second.0.capacity(), 0);
        drop(first);
        let again = HeadBuf::take();
        assert!(again.0.is_empty());
        assert_eq!(again.0.as_ptr(), at, "the same allocation");
        // A large one is not kept.
        drop(again);
        let mut large = HeadBuf::take();
        large.0.reserve(KEEP_UP_TO * 2);
        drop(large);
        assert_eq!(HeadBuf::take().0.capacity(), 0);
    }
}
