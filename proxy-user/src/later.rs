//! Time arithmetic that saturates: `Instant + Duration` panics when the sum
//! does not fit, so a deadline or an expiry computed from an operator's or a
//! file's value uses [`Later::later`] instead, which stops at a point far
//! enough ahead to mean "never" (issue 13: no value may crash a worker).

use std::time::{Duration, SystemTime};

/// How far ahead "never" is when the exact sum does not fit: a century.
pub const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A point in time that can be moved later without overflowing.
pub trait Later: Copy {
    /// `self + d`, or `self + FAR` (or `self`, at the very end of the clock)
    /// when that does not fit.
    fn later(self, d: Duration) -> Self;
}

macro_rules! impl_later {
    ($($t:ty),*) => {$(
        impl Later for $t {
            fn later(self, d: Duration) -> Self {
                self.checked_add(d)
                    .or_else(|| self.checked_add(d.min(FAR)))
                    .unwrap_or(self)
            }
        }
    )*};
}

impl_later!(std::time::Instant, tokio::time::Instant, SystemTime);

/// Unix seconds `now + d`, saturating at `u64::MAX`.
pub fn unix_later(now: u64, d: Duration) -> u64 {
    now.saturating_add(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overflows() {
        let now = std::time::Instant::now();
        assert_eq!(
            now.later(Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(now.later(Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        let t = tokio::time::Instant::now();
        assert!(t.later(Duration::from_secs(u64::MAX)) > t);
        let s = SystemTime::now();
        assert!(s.later(Duration::MAX) > s);
        assert_eq!(unix_later(u64::MAX - 1, Duration::from_secs(5)), u64::MAX);
    }
}
