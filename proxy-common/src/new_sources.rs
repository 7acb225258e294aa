//! The new-source budget and attack mode (docs/kernel-tier.md, "New
//! sources: a budget, and attack mode").
//!
//! ```text
//! a packet from a source the LRU does not hold (and not allowlisted)
//!   its first-stage slot holds it (second packet) -> promoted, no budget
//!   budget left (GCRA, `rate`/s, burst `burst`,   -> recorded in the first
//!     one u64 shared by every CPU)                   stage, passes
//!   budget spent                                  -> dropped (new_limited),
//!                                                    attack mode on (until
//!                                                    `hold_ns` after the last
//!                                                    drop)
//! a source the LRU holds                          -> untouched by all of this
//! ```
//!
//! A spoofed flood is made of new sources: past the budget each of its
//! packets costs one failed LRU lookup, one first-stage read and a read of
//! the budget, and none reaches the stack or the first stage.

use bytemuck::{Pod, Zeroable};

/// Index of the only entry of the `new_sources` map.
pub const KEY: u32 = 0;

/// How long attack mode lasts after the budget was last found spent, when
/// the configuration says nothing.
pub const DEFAULT_HOLD_NS: u64 = 10_000_000_000;

/// The `new_sources` map's value: settings written by userspace, the
/// budget's state and attack mode written by the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NewSources {
    /// New sources admitted per second, all CPUs together; 0: no budget.
    /// Kept for readers (the program uses the GCRA parameters below).
    pub rate: u32,
    /// Back-to-back new sources admitted; kept for readers.
    pub burst: u32,
    /// GCRA emission interval in ns (`1 s / rate`); 0: no budget.
    pub interval_ns: u64,
    /// GCRA tolerance, `(burst - 1) * interval_ns`.
    pub tolerance_ns: u64,
    /// Attack mode lasts this long after the budget was last found spent.
    pub hold_ns: u64,
    /// The budget's theoretical arrival time (coarse CLOCK_MONOTONIC ns),
    /// shared by every CPU (compare-and-exchange). Written by the program.
    pub tat_ns: u64,
    /// Attack mode is on until this coarse CLOCK_MONOTONIC time; 0: off
    /// (the program clears it at the first new source admitted after it).
    pub attack_until_ns: u64,
    /// When the current (or last) attack mode was entered.
    pub attack_since_ns: u64,
    /// Times attack mode was entered.
    pub attacks: u64,
}
const _: () = assert!(core::mem::size_of::<NewSources>() == 64);

impl NewSources {
    /// Settings for a budget of `rate` new sources per second with a burst
    /// of `burst` (rate 0: no budget) and attack mode held `hold_ns`,
    /// keeping the program's state of `self` (its TAT and attack mode).
    pub const fn with(self, rate: u32, burst: u32, hold_ns: u64) -> NewSources {
        let (interval_ns, tolerance_ns) = crate::gcra::params(rate as u64, burst as u64);
        NewSources {
            rate,
            burst,
            interval_ns,
            tolerance_ns,
            hold_ns,
            ..self
        }
    }

    /// Whether attack mode is on at the coarse time `now`.
    pub const fn attacking(&self, now: u64) -> bool {
        self.attack_until_ns != 0 && now < self.attack_until_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_keep_the_programs_state() {
        let running = NewSources {
            tat_ns: 5,
            attack_until_ns: 9,
            attack_since_ns: 3,
            attacks: 2,
            ..NewSources::default()
        };
        let s = running.with(1000, 2000, DEFAULT_HOLD_NS);
        assert_eq!((s.interval_ns, s.tolerance_ns), (1_000_000, 1_999_000_000));
        assert_eq!((s.tat_ns, s.attack_until_ns, s.attacks), (5, 9, 2));
        assert!(s.attacking(8));
        assert!(!s.attacking(9));
        assert_eq!(running.with(0, 0, 0).interval_ns, 0, "off");
    }
}
