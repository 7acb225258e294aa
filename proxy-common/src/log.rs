//! The XDP program's log: which rare events it records (a level, as the
//! `log` crate numbers them) and how many records per second it may write.
//!
//! Records themselves go through aya-log's ring buffer (`AYA_LOGS`) to the
//! daemon, which logs them with target [`TARGET`]. The level the program
//! checks is its own global (`RAMPART_LOG_LEVEL`, one load); this map holds
//! the record budget, and the same level for readers.

use bytemuck::{Pod, Zeroable};

/// Index of the only entry of the `log` and `log_suppressed` maps.
pub const LOG_KEY: u32 = 0;

/// The `log` target of every record the XDP program writes.
pub const TARGET: &str = "rampart::xdp";

/// Levels, numbered as `log::LevelFilter` and aya-log number them.
pub const OFF: u32 = 0;
pub const ERROR: u32 = 1;
pub const WARN: u32 = 2;
pub const INFO: u32 = 3;
pub const DEBUG: u32 = 4;
pub const TRACE: u32 = 5;

/// The `log` map's value: settings written by userspace, and the rate
/// limiter's state written by the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct LogConfig {
    /// Highest level recorded ([`OFF`] to [`TRACE`]), as the daemon last set
    /// it; the program reads its own copy (a global), for one load per event.
    pub level: u32,
    /// Records per second allowed (also the burst); kept for readers.
    pub rate: u32,
    /// GCRA emission interval of the record budget in ns (`1 s / rate`).
    pub interval_ns: u64,
    /// GCRA tolerance: `(rate - 1) * interval_ns`, a burst of `rate` records.
    pub tolerance_ns: u64,
    /// GCRA theoretical arrival time, shared by every CPU (compare-and-exchange).
    /// Written only by the program; userspace keeps it when changing settings.
    pub tat_ns: u64,
}
const _: () = assert!(core::mem::size_of::<LogConfig>() == 32);

impl LogConfig {
    /// Settings for `level` and at most `rate` records per second (0: none,
    /// whatever the level), keeping the limiter state of `self`.
    pub const fn with(self, level: u32, rate: u32) -> LogConfig {
        let (interval_ns, tolerance_ns) = crate::gcra::params(rate as u64, rate as u64);
        LogConfig {
            level: if rate == 0 { OFF } else { level },
            rate,
            interval_ns,
            tolerance_ns,
            tat_ns: self.tat_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_rate_records_nothing_and_the_limiter_state_stays() {
        let running = LogConfig {
            tat_ns: 77,
            ..LogConfig::default()
        };
        let on = running.with(INFO, 5);
        assert_eq!(on.level, INFO);
        assert_eq!(on.interval_ns, 200_000_000);
        assert_eq!(on.tolerance_ns, 800_000_000);
        assert_eq!(on.tat_ns, 77);
        let none = running.with(TRACE, 0);
        assert_eq!(none.level, OFF);
        assert_eq!(none.interval_ns, 0);
    }
}
