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
    /// The IPv6 source prefix kept as the limiter key, as four big-endian
    /// words ANDed with the address. Precomputed so the program does no shifts.
    pub v6_mask: [u32; 4],
    /// Prefix length that `v6_mask` encodes (1..=128); kept for readers.
    pub v6_prefix_len: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<FilterConfig>() == 56);

impl FilterConfig {
    #[inline(always)]
    pub const fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// Builds the four-word big-endian mask for an IPv6 prefix length (clamped to 128).
pub const fn v6_mask(prefix_len: u32) -> [u32; 4] {
    let mut mask = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        let bits_before = (i as u32) * 32;
        let word = if prefix_len >= bits_before + 32 {
            u32::MAX
        } else if prefix_len <= bits_before {
            0
        } else {
            u32::MAX << (32 - (prefix_len - bits_before))
        };
        // Stored in network byte order so it can be ANDed with the raw address.
        mask[i] = word.to_be();
        i += 1;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_mask_covers_prefix_lengths() {
        assert_eq!(v6_mask(0), [0; 4]);
        assert_eq!(v6_mask(128), [u32::MAX; 4]);
        assert_eq!(v6_mask(64), [u32::MAX, u32::MAX, 0, 0]);
        assert_eq!(v6_mask(48), [u32::MAX, 0xffff_0000u32.to_be(), 0, 0]);
        assert_eq!(v6_mask(200), [u32::MAX; 4]);
    }
}
