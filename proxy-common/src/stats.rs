//! Verdict counters: a per-CPU array indexed by verdict, summed by userspace.

use bytemuck::{Pod, Zeroable};

/// Passed after every check (limits included).
pub const PASS: u32 = 0;
/// Source matched the allowlist: passed, never limited.
pub const ALLOWLISTED: u32 = 1;
/// Source matched the blocklist: dropped.
pub const BLOCKLISTED: u32 = 2;
/// Source has an unexpired ban: dropped.
pub const BANNED: u32 = 3;
/// Over the per-source packet rate: dropped.
pub const PPS_LIMITED: u32 = 4;
/// Over the per-source new-connection rate: dropped.
pub const SYN_LIMITED: u32 = 5;
/// Truncated or malformed IP headers: dropped.
pub const MALFORMED: u32 = 6;
/// Not IPv4 or IPv6 (ARP, LLDP, ...): passed.
pub const NON_IP: u32 = 7;
/// A TCP SYN answered in place with a SYN cookie (XDP_TX): it never reaches
/// a listening socket (docs/kernel-tier.md, "SYN cookies").
pub const SYN_COOKIE: u32 = 8;
/// A packet of a source new to the filter (not in the per-source LRU, not
/// allowlisted) while the new-source budget is spent: dropped
/// (`proxy_common::new_sources`, attack mode).
pub const NEW_LIMITED: u32 = 9;
/// Number of verdicts; the size of the `verdicts` map.
pub const VERDICTS: u32 = 10;

/// Verdict names in index order, as shown by the CLI and in metrics.
pub const VERDICT_NAMES: [&str; VERDICTS as usize] = [
    "pass",
    "allowlisted",
    "blocklisted",
    "banned",
    "pps_limited",
    "syn_limited",
    "malformed",
    "non_ip",
    "syn_cookie",
    "new_limited",
];

/// Whether a verdict drops the packet.
pub const fn is_drop(verdict: u32) -> bool {
    matches!(
        verdict,
        BLOCKLISTED | BANNED | PPS_LIMITED | SYN_LIMITED | MALFORMED | NEW_LIMITED
    )
}

/// What the program does with a packet of this verdict: `drop`, `pass`, or
/// `answer` (sent back out with XDP_TX).
pub const fn action(verdict: u32) -> &'static str {
    if is_drop(verdict) {
        "drop"
    } else if verdict == SYN_COOKIE {
        "answer"
    } else {
        "pass"
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);
