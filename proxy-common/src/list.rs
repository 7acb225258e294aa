//! Allow and block lists.
//!
//! Ranges live in LPM tries (`allow_v4`, `allow_v6`, `block_v4`, `block_v6`),
//! keyed by aya's `Key { prefix_len: u32, data }` with `data` the address in
//! network byte order. Single addresses on the block list (/32 and /128, the
//! bulk of a threat-intelligence feed) live in plain hashes (`block_addr_v4`,
//! `block_addr_v6`): the kernel's LPM trie slows down as it grows, a hash does not.
//!
//! Both kinds of blocklist entry also have a bucketed index the program reads
//! without helper calls; see [`crate::index`].

use bytemuck::{Pod, Zeroable};

/// An IPv4 address as it sits in the packet (network byte order).
pub type V4 = [u8; 4];
/// An IPv6 address as it sits in the packet.
pub type V6 = [u8; 16];

/// The network mask of a `len`-bit prefix over an `N`-byte address, in
/// packet (big-endian) order; lengths past the address are a full mask.
pub const fn prefix_mask<const N: usize>(len: u32) -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut i = 0;
    while i < N {
        let before = (i as u32) * 8;
        bytes[i] = if len >= before + 8 {
            0xff
        } else if len <= before {
            0
        } else {
            0xffu8 << (8 - (len - before))
        };
        i += 1;
    }
    bytes
}

/// The first host bit after a `len`-bit prefix (`len` below `8 * N`), in
/// packet order: what marks a range's length in the range index.
pub const fn host_marker<const N: usize>(len: u32) -> [u8; N] {
    let mut bytes = [0u8; N];
    bytes[(len / 8) as usize] = 0x80 >> (len % 8);
    bytes
}

/// Who put an entry on a list or a ban in place.
pub const ORIGIN_CONFIG: u32 = 0;
pub const ORIGIN_CLI: u32 = 1;
pub const ORIGIN_ESCALATION: u32 = 2;

/// Value of every list entry: where it came from, so `list` views can say so.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ListValue {
    /// One of the `ORIGIN_*` constants.
    pub origin: u32,
}
const _: () = assert!(core::mem::size_of::<ListValue>() == 4);

/// Distinct blocklist range prefix lengths per family up to which the
/// program probes the range index (one probe per length) instead of the trie.
pub const MAX_RANGE_PROBES: usize = 4;
