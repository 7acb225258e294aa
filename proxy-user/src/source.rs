//! What one *source* is, for every tier: an IPv4 address, or an IPv6
//! address masked to `[filter] ipv6_prefix` (default
//! [`DEFAULT_IPV6_PREFIX`]). The XDP program, the userspace gate, the L7
//! request limits, escalation and bans all key by it, so rotating addresses
//! inside one IPv6 prefix is one source to all of them (issue 13, item 5).

use std::net::IpAddr;

pub use proxy_common::source::DEFAULT_IPV6_PREFIX;

use crate::cidr::Cidr;

/// The key `ip` is counted, limited and banned under: the address itself
/// for IPv4, the first address of its `ipv6_prefix` for IPv6.
pub fn key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(_) => Cidr::masked(ip, ipv6_prefix).addr(),
    }
}

/// The network a source covers, as views show it (`192.0.2.1`,
/// `2001:db8:1:2::/64`).
pub fn prefix(ip: IpAddr, ipv6_prefix: u8) -> Cidr {
    match ip {
        IpAddr::V4(_) => Cidr::host(ip),
        IpAddr::V6(_) => Cidr::masked(ip, ipv6_prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_are_one_source() {
        let p = DEFAULT_IPV6_PREFIX;
        assert_eq!(key(ip("2001:db8:1:2::1"), p), ip("2001:db8:1:2::"));
        assert_eq!(
            key(ip("2001:db8:1:2::1"), p),
            key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), p)
        );
        assert_ne!(key(ip("2001:db8:1:2::1"), p), key(ip("2001:db8:1:3::1"), p));
        assert_eq!(
            prefix(ip("2001:db8:1:2::1"), p).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(key(ip("2001:db8:1:2::1"), 48), ip("2001:db8:1::"));
    }

    #[test]
    fn ipv4_addresses_are_themselves() {
        assert_eq!(key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(prefix(ip("192.0.2.7"), 64).to_string(), "192.0.2.7");
    }
}
