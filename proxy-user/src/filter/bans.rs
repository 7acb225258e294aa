//! Bans: sources dropped until an expiry (or until removed). A source is an
//! IPv4 address or an IPv6 prefix of the configured length
//! ([`crate::source`]); the program looks bans up by the same key, so
//! banning one IPv6 address bans its /64 (by default).

use std::{net::IpAddr, time::Duration};

use proxy_common::{
    ban::{self, Ban},
    config as kcfg, pin,
};

use super::{
    FilterError, FilterMaps, clock,
    maps::{v4, v6},
};

/// One ban as stored in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanEntry {
    /// The source's key: an IPv4 address, or the first address of the
    /// IPv6 prefix (see [`crate::source::key`]).
    pub addr: IpAddr,
    /// Time left; `None` for a ban without expiry. Zero once expired.
    pub remaining: Option<Duration>,
    pub origin: u32,
}

impl FilterMaps {
    /// The IPv6 prefix that is one source in the live program.
    pub(super) fn ipv6_prefix(&self) -> Result<u8, FilterError> {
        Ok(self.config()?.v6_prefix_len.clamp(1, 128) as u8)
    }

    /// The source key of `ip` under the program's live IPv6 prefix.
    fn ban_key(&self, ip: IpAddr) -> Result<IpAddr, FilterError> {
        Ok(crate::source::key(ip, self.ipv6_prefix()?))
    }

    /// Bans the source `addr` belongs to for `ttl` (`None`: until removed).
    pub fn ban(
        &mut self,
        addr: IpAddr,
        ttl: Option<Duration>,
        origin: u32,
    ) -> Result<(), FilterError> {
        let expires_at_ns = match ttl {
            None => ban::NEVER,
            Some(t) => {
                clock::monotonic_ns().saturating_add(t.as_nanos().min(u64::MAX as u128) as u64)
            }
        };
        let value = Ban {
            expires_at_ns,
            origin,
            _pad: 0,
        };
        let key = self.ban_key(addr)?;
        if self.overlaps_allow(crate::source::prefix(key, self.ipv6_prefix()?))? {
            self.set_hint(kcfg::FLAG_ALLOW_OVERLAPS, true)?;
        }
        match key {
            IpAddr::V4(ip) => self
                .bans_v4
                .insert(v4(ip), value, 0)
                .map_err(FilterError::map(pin::BANS_V4))?,
            IpAddr::V6(ip) => self
                .bans_v6
                .insert(v6(ip), value, 0)
                .map_err(FilterError::map(pin::BANS_V6))?,
        }
        self.ban_index_insert(key, value)?;
        // Only the first ban of a family changes the presence hints; the
        // rewrite looks for a first key in every map (a scan of all the
        // buckets of an empty hash map), about 1 ms: not once per ban.
        let has = match addr {
            IpAddr::V4(_) => kcfg::FLAG_HAS_BANS_V4,
            IpAddr::V6(_) => kcfg::FLAG_HAS_BANS_V6,
        };
        if self.config()?.flags & has != 0 {
            return Ok(());
        }
        self.refresh_flags()
    }

    /// Lifts the ban on the source `addr` belongs to; returns whether there was one.
    pub fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        let key = self.ban_key(addr)?;
        self.ban_index_remove(key)?;
        let removed = match key {
            IpAddr::V4(ip) => self.bans_v4.remove(&v4(ip)).is_ok(),
            IpAddr::V6(ip) => self.bans_v6.remove(&v6(ip)).is_ok(),
        };
        self.refresh_flags()?;
        Ok(removed)
    }

    /// Lifts the bans stored under exactly `keys`, then rewrites the
    /// presence flags once (that rewrite scans every map: about a
    /// millisecond, not to be paid per ban).
    pub fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError> {
        let mut lifted = 0;
        for key in keys {
            self.ban_index_remove(*key)?;
            let removed = match key {
                IpAddr::V4(ip) => self.bans_v4.remove(&v4(*ip)).is_ok(),
                IpAddr::V6(ip) => self.bans_v6.remove(&v6(*ip)).is_ok(),
            };
            lifted += usize::from(removed);
        }
        if lifted > 0 {
            self.refresh_flags()?;
        }
        Ok(lifted)
    }

    /// Whether the source `addr` belongs to is banned now: one lookup.
    pub fn banned(&self, addr: IpAddr) -> Result<bool, FilterError> {
        let (found, name) = match self.ban_key(addr)? {
            IpAddr::V4(ip) => (self.bans_v4.get(&v4(ip), 0), pin::BANS_V4),
            IpAddr::V6(ip) => (self.bans_v6.get(&v6(ip), 0), pin::BANS_V6),
        };
        match found {
            Ok(b) => Ok(clock::monotonic_ns() < b.expires_at_ns),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(FilterError::map(name)(e)),
        }
    }

    pub fn bans(&self) -> Result<Vec<BanEntry>, FilterError> {
        let now = clock::monotonic_ns();
        let entry = |addr: IpAddr, b: Ban| BanEntry {
            addr,
            remaining: (b.expires_at_ns != ban::NEVER)
                .then(|| Duration::from_nanos(b.expires_at_ns.saturating_sub(now))),
            origin: b.origin,
        };
        let mut out = Vec::new();
        for item in self.bans_v4.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V4))?;
            out.push(entry(IpAddr::from(k), b));
        }
        for item in self.bans_v6.iter() {
            let (k, b) = item.map_err(FilterError::map(pin::BANS_V6))?;
            out.push(entry(IpAddr::from(k), b));
        }
        Ok(out)
    }

    /// Deletes expired bans (the program also deletes one when it next sees it).
    pub fn sweep_bans(&mut self) -> Result<usize, FilterError> {
        let expired: Vec<IpAddr> = self
            .bans()?
            .into_iter()
            .filter(|b| b.remaining == Some(Duration::ZERO))
            .map(|b| b.addr)
            .collect();
        for addr in &expired {
            self.ban_index_remove(*addr)?;
            match addr {
                IpAddr::V4(ip) => drop(self.bans_v4.remove(&v4(*ip))),
                IpAddr::V6(ip) => drop(self.bans_v6.remove(&v6(*ip))),
            }
        }
        if !expired.is_empty() {
            self.refresh_flags()?;
        }
        Ok(expired.len())
    }
}
