//! Per-source state: both limiters' theoretical arrival times and the
//! top-talker counters share one LRU entry, so a packet costs one lookup.
//!
//! Keys: `sources_v4` uses the IPv4 address (/32); `sources_v6` uses the IPv6
//! address ANDed with the configured prefix mask (default
//! [`DEFAULT_IPV6_PREFIX`]). The ban tables use the same keys, so a source
//! is one thing to every tier.

use bytemuck::{Pod, Zeroable};

/// The IPv6 prefix length that is one source, unless `[filter] ipv6_prefix`
/// says otherwise: an IPv6 host usually controls a whole /64 (RFC 4291
/// interface identifiers, SLAAC privacy addresses), so keying by /128 would
/// let it rotate addresses past every limit and ban. The one place this
/// default is written.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceState {
    /// GCRA theoretical arrival time of the all-packets limit (monotonic ns).
    /// Updated with an atomic compare-and-exchange so all CPUs share one budget.
    pub pps_tat: u64,
    /// GCRA theoretical arrival time of the new-connection (SYN) limit.
    pub syn_tat: u64,
    /// Packets seen from this source (atomic add).
    pub packets: u64,
    /// Bytes seen from this source (atomic add).
    pub bytes: u64,
    /// Packets of this source dropped by a rate limit (atomic add).
    pub drops: u64,
    /// Monotonic ns of the last packet (plain store; the latest writer wins).
    pub last_seen_ns: u64,
}
const _: () = assert!(core::mem::size_of::<SourceState>() == 48);
