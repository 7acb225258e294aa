//! The settings map: one entry, read by the program on every packet and
//! rewritten in place by userspace, so a limit change never reloads or
//! re-attaches the program.

use bytemuck::{Pod, Zeroable};

/// Index of the only entry in the `config` array map.
pub const CONFIG_KEY: u32 = 0;

/// The filter is on. When clear, every IP packet is passed and counted as `pass`.
pub const FLAG_ENABLED: u32 = 1 << 0;
/// Keep per-source counters (packets, bytes, drops, last seen) for top-talker
/// views even when no limit is configured.
pub const FLAG_TRACK_SOURCES: u32 = 1 << 1;
/// Pass (as `non_ip`) a frame whose VLAN tags go deeper than the program
/// parses (`[filter] unparsed = "pass"`); when clear it is dropped as
/// `malformed`, since the IP traffic behind the tags cannot be inspected.
pub const FLAG_PASS_UNPARSED: u32 = 1 << 2;
/// Hints kept by the loader: the named map holds at least one entry. An empty
/// map is skipped, which keeps lookups off the hot path when a feature is unused.
pub const FLAG_HAS_ALLOW_V4: u32 = 1 << 8;
pub const FLAG_HAS_ALLOW_V6: u32 = 1 << 9;
pub const FLAG_HAS_BLOCK_V4: u32 = 1 << 10;
pub const FLAG_HAS_BLOCK_V6: u32 = 1 << 11;
pub const FLAG_HAS_BLOCK_ADDR_V4: u32 = 1 << 12;
pub const FLAG_HAS_BLOCK_ADDR_V6: u32 = 1 << 13;
pub const FLAG_HAS_BANS_V4: u32 = 1 << 14;
pub const FLAG_HAS_BANS_V6: u32 = 1 << 15;
/// Some blocklist entry or ban may cover an allowlisted address. Only then
/// does a blocklist or ban hit need an allowlist lookup to honour the rule
/// "the allowlist wins"; without overlap a hit drops at once. Kept by the
/// loader, conservatively: it may be set when no overlap is left, never the
/// other way round.
pub const FLAG_ALLOW_OVERLAPS: u32 = 1 << 16;
/// The IPv4 blocklist ranges use only the prefix lengths in `probes_v4`:
/// probe `range_index_v4` once per length instead of walking `block_v4`.
pub const FLAG_RANGES_INDEXED_V4: u32 = 1 << 17;
/// As `FLAG_RANGES_INDEXED_V4`, for IPv6.
pub const FLAG_RANGES_INDEXED_V6: u32 = 1 << 18;
/// `block_index_v4` holds the IPv4 single-address blocklist (see `index`).
pub const FLAG_INDEX_V4: u32 = 1 << 19;
/// Some IPv4 blocklisted address is only in `block_addr_v4`: on an index miss,
/// look there too.
pub const FLAG_INDEX_OVERFLOW_V4: u32 = 1 << 20;
pub const FLAG_INDEX_V6: u32 = 1 << 21;
pub const FLAG_INDEX_OVERFLOW_V6: u32 = 1 << 22;
/// Some IPv4 range is only in the trie: on a range-index miss, walk `block_v4`.
pub const FLAG_RANGE_OVERFLOW_V4: u32 = 1 << 23;
pub const FLAG_RANGE_OVERFLOW_V6: u32 = 1 << 24;
/// `ban_index_v4` mirrors `bans_v4` (see `ban`); probe it instead of the hash.
pub const FLAG_BAN_INDEX_V4: u32 = 1 << 25;
pub const FLAG_BAN_INDEX_V6: u32 = 1 << 26;
/// Some IPv4 ban is only in `bans_v4`: on a ban-index miss, look there too.
pub const FLAG_BAN_OVERFLOW_V4: u32 = 1 << 27;
pub const FLAG_BAN_OVERFLOW_V6: u32 = 1 << 28;
/// The packet limit is decided on the coarse clock alone: its tolerance
/// spans at least [`COARSE_TICKS`] ticks of that clock, so a tick's jump
/// cannot carry the clock past a flooding source's TAT and lose its credit
/// (docs/kernel-tier.md, "Clocks"). Set by the loader with the limit.
pub const FLAG_PPS_COARSE: u32 = 1 << 29;
/// As `FLAG_PPS_COARSE`, for the SYN limit.
pub const FLAG_SYN_COARSE: u32 = 1 << 30;
/// Some IPv6 allowlist entry is longer than the source prefix: an address
/// inside a source's prefix may be allowlisted while the prefix's other
/// addresses are not, so a source's LRU entry cannot vouch for its
/// address ([`FilterConfig::allow_gen`]) and every IPv6 packet looks the
/// allowlist up first. Kept by the loader.
pub const FLAG_ALLOW_FINER_V6: u32 = 1 << 31;
/// Ticks of the coarse clock a limit's tolerance must span to be decided on
/// that clock alone: one tick is the clock's normal step, the rest is room
/// for late ticks.
pub const COARSE_TICKS: u64 = 4;
/// The flags that describe map contents, kept by the loader rather than set
/// from the configuration.
pub const CONTENT_HINTS: u32 = FLAG_ALLOW_OVERLAPS
    | FLAG_RANGES_INDEXED_V4
    | FLAG_RANGES_INDEXED_V6
    | FLAG_INDEX_V4
    | FLAG_INDEX_OVERFLOW_V4
    | FLAG_INDEX_V6
    | FLAG_INDEX_OVERFLOW_V6
    | FLAG_RANGE_OVERFLOW_V4
    | FLAG_RANGE_OVERFLOW_V6
    | FLAG_BAN_INDEX_V4
    | FLAG_BAN_INDEX_V6
    | FLAG_BAN_OVERFLOW_V4
    | FLAG_BAN_OVERFLOW_V6
    | FLAG_ALLOW_FINER_V6;

/// Live filter settings.
///
/// Rates are stored as GCRA parameters (see [`crate::gcra`]): the emission
/// interval `T = 1 s / rate` and the tolerance `(burst - 1) * T`, both in
/// nanoseconds, so the program does no division.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FilterConfig {
    /// Emission interval of the all-packets limit in ns; 0 turns the limit off.
    pub pps_interval_ns: u64,
    /// How far ahead of now the all-packets TAT may run: `(burst - 1) * interval`.
    pub pps_tolerance_ns: u64,
    /// Emission interval of the new-TCP-connection (SYN without ACK) limit; 0 = off.
    pub syn_interval_ns: u64,
    /// Tolerance of the SYN limit, as for `pps_tolerance_ns`.
    pub syn_tolerance_ns: u64,
    /// The IPv6 source prefix kept as the limiter key: the 16 mask bytes in
    /// packet order, read as two native-endian words so the program ANDs the
    /// address with two instructions and no shifts.
    pub v6_mask: [u64; 2],
    /// Prefix length that `v6_mask` encodes (1..=128); kept for readers.
    pub v6_prefix_len: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// One probe per prefix length used by the IPv4 blocklist ranges, longest
    /// first; unused slots have a zero marker.
    pub probes_v4: [crate::index::ProbeV4; crate::list::MAX_RANGE_PROBES],
    /// As `probes_v4`, for IPv6.
    pub probes_v6: [crate::index::ProbeV6; crate::list::MAX_RANGE_PROBES],
    /// Buckets in `block_index_v4`, minus one (a power of two minus one).
    pub index_mask_v4: u32,
    /// Buckets in `block_index_v6`, minus one.
    pub index_mask_v6: u32,
    /// Buckets in `range_index_v4`, minus one.
    pub range_mask_v4: u32,
    /// Buckets in `range_index_v6`, minus one.
    pub range_mask_v6: u32,
    /// The secret key of the first stage's slot hash ([`crate::admit`]):
    /// random, chosen by the loader once and kept in the pinned map.
    pub admit_seed: u64,
    /// Buckets in `ban_index_v4`, minus one.
    pub ban_mask_v4: u32,
    /// Buckets in `ban_index_v6`, minus one.
    pub ban_mask_v6: u32,
    /// The allowlist's generation: the loader moves it on after every
    /// allowlist change (and once per load), never to 0. A source's LRU
    /// entry and limited-cache slot record the generation its address was
    /// last found not allowlisted under ([`crate::source::SourceState::allow_gen`]);
    /// while they match, the program skips the allowlist lookup for it.
    pub allow_gen: u64,
}
const _: () = assert!(core::mem::size_of::<FilterConfig>() == 256);

impl FilterConfig {
    #[inline(always)]
    pub const fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// The 16 bytes of an IPv6 prefix mask (big-endian, as in the packet).
pub const fn v6_mask_bytes(prefix_len: u32) -> [u8; 16] {
    crate::list::prefix_mask::<16>(prefix_len)
}

/// [`v6_mask_bytes`] as the two words stored in [`FilterConfig::v6_mask`].
pub const fn v6_mask(prefix_len: u32) -> [u64; 2] {
    let b = v6_mask_bytes(prefix_len);
    [
        u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_mask_covers_prefix_lengths() {
        assert_eq!(v6_mask(0), [0; 2]);
        assert_eq!(v6_mask(128), [u64::MAX; 2]);
        assert_eq!(v6_mask(64), [u64::MAX, 0]);
        assert_eq!(v6_mask(200), [u64::MAX; 2]);
        let b = v6_mask_bytes(52);
        assert_eq!(&b[..8], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0]);
        assert_eq!(
            v6_mask(52)[0].to_ne_bytes(),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0]
        );
    }
}
