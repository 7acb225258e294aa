//! IP networks as operators write them: `198.51.100.0/24`, `2001:db8::/32`, or
//! a bare address meaning a single host; and a set of them that answers
//! whether an address is in any ([`CidrSet`]).

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::IpAddr,
    str::FromStr,
};

/// A network: an address with every bit past `prefix_len` zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error(
        "`{0}` is not an IP address or network (expected e.g. 198.51.100.0/24 or 2001:db8::/32)"
    )]
    Syntax(String),
    #[error("prefix length /{len} is too long for {family} (at most /{max})")]
    PrefixTooLong {
        len: u32,
        family: &'static str,
        max: u8,
    },
    #[error("`{given}` has host bits set past /{len}; did you mean {suggestion}?")]
    HostBits {
        given: String,
        len: u8,
        suggestion: String,
    },
}

impl Cidr {
    /// A single host (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix_len: max_len(&addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The `len`-bit network `ip` is in (lengths past the address: the host).
    pub fn masked(ip: IpAddr, len: u8) -> Self {
        let len = len.min(max_len(&ip));
        Self {
            addr: masked(ip, len),
            prefix_len: len,
        }
    }

    /// The network's last address (its first is [`Cidr::addr`]).
    pub fn last(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(self.prefix_len as u32).unwrap_or(0);
                IpAddr::V4((u32::from(a) | host).into())
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(self.prefix_len as u32).unwrap_or(0);
                IpAddr::V6((u128::from(a) | host).into())
            }
        }
    }

    /// True for /32 and /128: such entries go in the exact-address hash.
    pub fn is_host(&self) -> bool {
        self.prefix_len == max_len(&self.addr)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        let max = max_len(&addr);
        let len = match len {
            None => max,
            Some(l) => {
                let l: u32 = l.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
                if l > max as u32 {
                    let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(CidrError::PrefixTooLong {
                        len: l,
                        family,
                        max,
                    });
                }
                l as u8
            }
        };
        let net = masked(addr, len);
        if net != addr {
            return Err(CidrError::HostBits {
                given: s.to_string(),
                len,
                suggestion: Cidr {
                    addr: net,
                    prefix_len: len,
                }
                .to_string(),
            });
        }
        Ok(Cidr {
            addr,
            prefix_len: len,
        })
    }
}

/// A single host prints as a plain address (`192.0.2.7`), a network with its
/// prefix length (`198.51.100.0/24`): the way operators write them.
/// Written as text (`192.0.2.0/24`), as operators write it.
impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix_len)
        }
    }
}

/// Networks by prefix length, for a lookup per distinct length: whether
/// an address is in any of them (the userspace gate's lists).
#[derive(Debug, Default)]
pub struct CidrSet {
    by_len: Vec<(u8, bool, HashSet<IpAddr>)>,
}

impl CidrSet {
    pub fn build<'a>(cidrs: impl Iterator<Item = &'a Cidr>) -> CidrSet {
        let mut by_len: BTreeMap<(u8, bool), HashSet<IpAddr>> = BTreeMap::new();
        for c in cidrs {
            by_len
                .entry((c.prefix_len(), c.addr().is_ipv6()))
                .or_default()
                .insert(c.addr());
        }
        CidrSet {
            by_len: by_len
                .into_iter()
                .map(|((len, v6), set)| (len, v6, set))
                .collect(),
        }
    }

    /// One network more, without a rebuild: the gate keeps a copy of the
    /// kernel's lists too, entry by entry ([`crate::enforcer::Tiers`]).
    pub fn add(&mut self, c: Cidr) {
        let (len, v6) = (c.prefix_len(), c.addr().is_ipv6());
        match self
            .by_len
            .iter_mut()
            .find(|(l, v, _)| *l == len && *v == v6)
        {
            Some((_, _, set)) => {
                set.insert(c.addr());
            }
            None => self.by_len.push((len, v6, HashSet::from([c.addr()]))),
        }
    }

    pub fn del(&mut self, c: Cidr) {
        let (len, v6) = (c.prefix_len(), c.addr().is_ipv6());
        if let Some((_, _, set)) = self
            .by_len
            .iter_mut()
            .find(|(l, v, _)| *l == len && *v == v6)
        {
            set.remove(&c.addr());
        }
        self.by_len.retain(|(_, _, set)| !set.is_empty());
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.by_len.iter().any(|(len, v6, set)| {
            *v6 == ip.is_ipv6() && set.contains(&Cidr::masked(ip, *len).addr())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks_and_hosts() {
        let c: Cidr = "198.51.100.0/24".parse().unwrap();
        assert_eq!(c.prefix_len(), 24);
        assert!(!c.is_host());
        assert!(c.contains("198.51.100.7".parse().unwrap()));
        assert!(!c.contains("198.51.101.7".parse().unwrap()));
        let h: Cidr = "2001:db8::1".parse().unwrap();
        assert!(h.is_host());
        assert_eq!(h.to_string(), "2001:db8::1");
        assert_eq!(
            "192.0.2.7/32".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7"
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let last = |s: &str| s.parse::<Cidr>().unwrap().last().to_string();
        assert_eq!(last("198.51.100.0/24"), "198.51.100.255");
        assert_eq!(last("0.0.0.0/0"), "255.255.255.255");
        assert_eq!(last("192.0.2.7"), "192.0.2.7");
        assert_eq!(last("2001:db8::/64"), "2001:db8::ffff:ffff:ffff:ffff");
        assert_eq!(last("::/0"), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { .. })
        ));
        assert!(matches!("nope".parse::<Cidr>(), Err(CidrError::Syntax(_))));
        let err = "10.1.2.3/8".parse::<Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`10.1.2.3/8` has host bits set past /8; did you mean 10.0.0.0/8?"
        );
    }
}
