//! What the fleet exchanges per source ([`Counted`]), defined below both
//! the fleet (`fleet/counts.rs`, which exchanges the counts through Redis)
//! and what counts (`limit` zones, `escalate` rules, the kernel tier's
//! `fleet_pps` and `fleet_syn`), so that each implements it where it lives and no import
//! runs back up.

use std::net::IpAddr;

/// What the fleet counts per source: a `fleet = true` limit zone or
/// escalation rule on this host.
pub trait Counted: Send + Sync {
    /// Its name in the keys (`limit:NAME`, `escalate:NAME`, `kernel:pps`).
    fn key(&self) -> String;
    /// Work done before each exchange that may block (the kernel tier
    /// reads the XDP maps here): the exchange runs it on a blocking
    /// thread, never on the async runtime. Nothing by default.
    fn prepare(&self) {}
    /// What this host counted per source since the last call (at most
    /// `max` sources, the busiest; the others wait for the next call).
    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)>;
    /// `n` more counted on other hosts for `ip`.
    fn charge(&self, ip: IpAddr, n: u64, now: tokio::time::Instant);
    /// A source whose fleet total in a window reaches this is charged here
    /// before this host sees it.
    fn heavy(&self) -> u64;
}
