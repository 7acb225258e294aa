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
    /// The allowlist generation (`FilterConfig::allow_gen`) under which this
    /// source's address was last found not allowlisted: while it is the
    /// current one, the program skips the allowlist lookup for the source.
    /// 0 (never current) makes the next packet look it up.
    pub allow_gen: u64,
    /// TCP SYNs (without ACK) seen from this source, a subset of `packets`
    /// (plain add, as `packets`): the fleet's `[filter] fleet_syn` counts.
    pub syns: u64,
}
const _: () = assert!(core::mem::size_of::<SourceState>() == 64);

/// `SourceState` as builds before `allow_gen` laid it out (48 bytes): the
/// same fields in the same order, read when pinned maps of that layout are
/// migrated.
#[cfg(feature = "user")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceStateV1 {
    pub pps_tat: u64,
    pub syn_tat: u64,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
    pub last_seen_ns: u64,
}
#[cfg(feature = "user")]
const _: () = assert!(core::mem::size_of::<SourceStateV1>() == 48);

#[cfg(feature = "user")]
impl From<SourceStateV1> for SourceState {
    fn from(v: SourceStateV1) -> Self {
        SourceState {
            pps_tat: v.pps_tat,
            syn_tat: v.syn_tat,
            packets: v.packets,
            bytes: v.bytes,
            drops: v.drops,
            last_seen_ns: v.last_seen_ns,
            allow_gen: 0,
            syns: 0,
        }
    }
}

/// `SourceState` as builds before `syns` laid it out (56 bytes), read when
/// pinned maps of that layout are migrated.
#[cfg(feature = "user")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SourceStateV2 {
    pub pps_tat: u64,
    pub syn_tat: u64,
    pub packets: u64,
    pub bytes: u64,
    pub drops: u64,
    pub last_seen_ns: u64,
    pub allow_gen: u64,
}
#[cfg(feature = "user")]
const _: () = assert!(core::mem::size_of::<SourceStateV2>() == 56);

/// A migrated source's SYNs were not counted: they start at 0, so the
/// fleet's SYN counts see only what it sends after the upgrade.
#[cfg(feature = "user")]
impl From<SourceStateV2> for SourceState {
    fn from(v: SourceStateV2) -> Self {
        SourceState {
            pps_tat: v.pps_tat,
            syn_tat: v.syn_tat,
            packets: v.packets,
            bytes: v.bytes,
            drops: v.drops,
            last_seen_ns: v.last_seen_ns,
            allow_gen: v.allow_gen,
            syns: 0,
        }
    }
}
