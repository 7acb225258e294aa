//! The fixed filter contents of the `xdp` target and the verdict they give:
//! a model of `proxy-ebpf/src/decide.rs` with its maps filled from
//! [`ALLOW`], [`BLOCK`] and [`BANS`].
//!
//! The rules (docs/kernel-tier.md), for a packet the parser accepted:
//!
//! 1. the source is in a blocklist network: `blocklisted`,
//! 2. else the source (an IPv4 address, an IPv6 /64: the target's
//!    `ipv6_prefix`) has an unexpired ban: `banned`,
//! 3. but in both cases an allowlisted source is `allowlisted` instead
//!    (the allowlist wins over the blocklist and bans);
//! 4. else an allowlisted source is `allowlisted`;
//! 5. else `pass` (the target's rate limits are too high to ever trigger).
//!
//! Not-IP frames are `non_ip`, unparseable ones `malformed`. Drops are
//! `blocklisted`, `banned`, the limits and `malformed`.
//!
//! The networks are matched here with plain integer prefix arithmetic, not
//! with rampart's `Cidr`, LPM tries or bucket indexes.

use std::net::IpAddr;

use crate::packet::Packet;

/// Never filtered or limited. Overlaps [`BLOCK`] and [`BANS`] on purpose.
pub const ALLOW: &[&str] = &["10.0.0.0/8", "192.0.2.128/25", "2001:db8:a::/48"];

/// Dropped, unless allowed. Single addresses and ranges of several lengths
/// in both families (they land in different maps and indexes).
pub const BLOCK: &[&str] = &[
    "198.51.100.0/24",
    "203.0.113.7",
    "203.0.113.64/26",
    "10.1.0.0/16",
    "100.64.0.0/10",
    "2001:db8:b::/48",
    "2001:db8::dead",
    "2001:db8:a:1::/64",
    "2001:db8:c00::/40",
];

/// Banned sources, each named by one of its addresses (an IPv6 ban covers
/// the address's /64): (address, expired). Expired bans are installed with a
/// one-nanosecond TTL, so they are over before the first packet arrives;
/// the program must ignore them (and delete them).
pub const BANS: &[(&str, bool)] = &[
    ("192.0.2.66", false),
    ("10.9.9.9", false),
    ("192.0.2.200", false),
    ("192.0.2.77", true),
    ("2001:db8:c::1", false),
    ("2001:db8:a::99", false),
    ("2001:db8:d::5", true),
];

/// Verdict numbers, as `proxy_common::stats` defines them (asserted equal
/// in the `xdp` target).
pub mod verdict {
    pub const PASS: u32 = 0;
    pub const ALLOWLISTED: u32 = 1;
    pub const BLOCKLISTED: u32 = 2;
    pub const BANNED: u32 = 3;
    pub const MALFORMED: u32 = 6;
    pub const NON_IP: u32 = 7;
}

/// The verdict for `packet` under the fixed contents above.
pub fn verdict(packet: Packet) -> u32 {
    let src: IpAddr = match packet {
        Packet::NonIp => return verdict::NON_IP,
        Packet::Malformed => return verdict::MALFORMED,
        Packet::V4 { src, .. } => src.into(),
        Packet::V6 { src, .. } => src.into(),
    };
    let allowed = ALLOW.iter().any(|n| contains(n, src));
    if BLOCK.iter().any(|n| contains(n, src)) {
        return if allowed {
            verdict::ALLOWLISTED
        } else {
            verdict::BLOCKLISTED
        };
    }
    let banned = BANS
        .iter()
        .any(|(a, expired)| !expired && a.parse::<IpAddr>().is_ok_and(|a| same_source(a, src)));
    match (banned, allowed) {
        (_, true) => verdict::ALLOWLISTED,
        (true, false) => verdict::BANNED,
        (false, false) => verdict::PASS,
    }
}

/// Whether `a` and `b` are one source: the same IPv4 address, or IPv6
/// addresses in the same /64.
fn same_source(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a == b,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) >> 64 == u128::from(b) >> 64,
        _ => false,
    }
}

/// Whether the drop action goes with `verdict`.
pub fn drops(verdict: u32) -> bool {
    matches!(
        verdict,
        verdict::BLOCKLISTED | verdict::BANNED | verdict::MALFORMED
    )
}

/// Whether `ip` is in the network written `net` ("a.b.c.d/len", or an
/// address for a single host). Families never match each other.
pub fn contains(net: &str, ip: IpAddr) -> bool {
    let (addr, len) = net.split_once('/').unwrap_or((net, ""));
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, bits) = match (addr, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(b)) << 96,
            32,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let len: u32 = if len.is_empty() {
        bits
    } else {
        len.parse().unwrap_or(bits)
    };
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ip: &str) -> u32 {
        let src: IpAddr = ip.parse().unwrap();
        verdict(match src {
            IpAddr::V4(src) => Packet::V4 { src, syn: false },
            IpAddr::V6(src) => Packet::V6 { src, syn: false },
        })
    }

    #[test]
    fn the_allowlist_wins() {
        assert_eq!(v("198.51.100.9"), verdict::BLOCKLISTED);
        assert_eq!(v("203.0.113.7"), verdict::BLOCKLISTED);
        assert_eq!(v("203.0.113.8"), verdict::PASS);
        assert_eq!(v("203.0.113.127"), verdict::BLOCKLISTED);
        assert_eq!(v("10.1.2.3"), verdict::ALLOWLISTED);
        assert_eq!(v("10.9.9.9"), verdict::ALLOWLISTED);
        assert_eq!(v("192.0.2.66"), verdict::BANNED);
        assert_eq!(v("192.0.2.200"), verdict::ALLOWLISTED);
        assert_eq!(v("192.0.2.77"), verdict::PASS);
        assert_eq!(v("2001:db8:b::1"), verdict::BLOCKLISTED);
        assert_eq!(v("2001:db8:a:1::5"), verdict::ALLOWLISTED);
        assert_eq!(v("2001:db8:c::1"), verdict::BANNED);
        assert_eq!(v("2001:db8:cff::1"), verdict::BLOCKLISTED);
        assert_eq!(v("2001:db8:a::99"), verdict::ALLOWLISTED);
        assert_eq!(v("2001:db8:d::5"), verdict::PASS);
        assert_eq!(v("2001:db8:e::5"), verdict::PASS);
        assert_eq!(v("100.127.255.255"), verdict::BLOCKLISTED);
        assert_eq!(v("100.128.0.0"), verdict::PASS);
    }
}
