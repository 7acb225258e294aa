//! Allow and block lists.
//!
//! Ranges live in LPM tries (`allow_v4`, `allow_v6`, `block_v4`, `block_v6`),
//! keyed by aya's `Key { prefix_len: u32, data }` with `data` the address in
//! network byte order. Single addresses on the block list (/32 and /128, the
//! bulk of a threat-intelligence feed) live in plain hashes (`block_addr_v4`,
//! `block_addr_v6`): the kernel's LPM trie slows down as it grows, a hash does not.
//!
//! Blocklist ranges are also kept in hashes keyed by (prefix length, network)
//! (`block_nets_v4`, `block_nets_v6`). While the ranges of a family use at most
//! [`MAX_RANGE_PROBES`] distinct prefix lengths (a feed of /24s uses one), the
//! program probes those hashes, one lookup per length, instead of walking the
//! trie; with more lengths it uses the trie.

use bytemuck::{Pod, Zeroable};

/// An IPv4 address as it sits in the packet (network byte order).
pub type V4 = [u8; 4];
/// An IPv6 address as it sits in the packet.
pub type V6 = [u8; 16];

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

/// Distinct blocklist prefix lengths per family up to which the program
/// probes `block_nets_*` instead of the LPM trie.
pub const MAX_RANGE_PROBES: usize = 4;

/// Key of `block_nets_v4`: an IPv4 network, host bits zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NetV4 {
    pub prefix_len: u32,
    pub addr: V4,
}
const _: () = assert!(core::mem::size_of::<NetV4>() == 8);

/// Key of `block_nets_v6`: an IPv6 network, host bits zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NetV6 {
    pub prefix_len: u32,
    pub addr: V6,
}
const _: () = assert!(core::mem::size_of::<NetV6>() == 20);
