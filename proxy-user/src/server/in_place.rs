//! A connection's HTTP state machine, boxed where it is built.
//!
//! `Box::pin(future)` builds the future on the stack and then copies all
//! of it into its box: `size_of` bytes (about 11 KiB for a connection's
//! HTTP state, [`super::downstream::Downstream::serve`]), though a future
//! that has not started holds only its arguments. [`boxed`] allocates the
//! box first and has the future written into it, so only the arguments
//! are stored: one `memcpy` of the whole state fewer per connection.

use std::{future::Future, pin::Pin};

/// The future `make` returns, in a pinned box, written there in place.
#[inline(always)]
pub(super) fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    let slot = Box::<F>::new_uninit();
    Box::into_pin(Box::write(slot, make()))
}
