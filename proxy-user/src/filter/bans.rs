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

/// A ban to make: the source `addr` belongs to, for `ttl` (`None`: until
/// removed), by `origin` (`proxy_common::list::ORIGIN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewBan {
    pub addr: IpAddr,
    pub ttl: Option<Duration>,
    pub origin: u32,
}

/// The presence flag of `key`'s family.
fn family(key: IpAddr) -> u32 {
    match key {
        IpAddr::V4(_) => kcfg::FLAG_HAS_BANS_V4,
        IpAddr::V6(_) => kcfg::FLAG_HAS_BANS_V6,
    }
}

/// What [`FilterMaps::replace_bans`] did.
#[derive(Debug, Default)]
pub struct Replaced {
    /// Bans lifted (those of `lift` that were there).
    pub lifted: usize,
    /// The bans of `add` that could not be made, by their index in `add`.
    pub refused: Vec<(usize, FilterError)>,
}

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
        let done = self.replace_bans(&[], &[NewBan { addr, ttl, origin }])?;
        match done.refused.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Lifts the ban on the source `addr` belongs to; returns whether there was one.
    pub fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        let key = self.ban_key(addr)?;
        self.ban_index_remove(key)?;
        let removed = match key {
            IpAddr::V4(ip) => self.bans_v4.remove(&v4(ip)).is_ok(),
            IpAddr::V6(ip) => self.bans_v6.remove(&v6(ip)).is_ok(),
        };
        self.listed_removed += u64::from(removed);
        self.refresh_flags()?;
        Ok(removed)
    }

    /// Lifts the bans stored under exactly `keys`, then rewrites the
    /// presence flags once (that rewrite scans every map: about a
    /// millisecond, not to be paid per ban).
    pub fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError> {
        Ok(self.replace_bans(keys, &[])?.lifted)
    }

    /// Lifts the bans stored under exactly `lift`, then makes the bans of
    /// `add`, with the allowlist read once and the presence flags rewritten
    /// at most once for them all, and only when a family may have lost its
    /// last ban or got its first (the rewrite looks for a first key in
    /// every map, a scan of all the buckets of an empty hash map, about a
    /// millisecond): auto-bans evicted to make room for new ones, the
    /// sweep, and the state file's bans at start. A ban that cannot be made
    /// (a full table) is reported in [`Replaced::refused`]; the others are.
    pub fn replace_bans(
        &mut self,
        lift: &[IpAddr],
        add: &[NewBan],
    ) -> Result<Replaced, FilterError> {
        let mut done = Replaced::default();
        // Families a lift may have emptied.
        let mut emptied = 0;
        for key in lift {
            self.ban_index_remove(*key)?;
            let removed = match key {
                IpAddr::V4(ip) => self.bans_v4.remove(&v4(*ip)).is_ok(),
                IpAddr::V6(ip) => self.bans_v6.remove(&v6(*ip)).is_ok(),
            };
            if removed {
                self.listed_removed += 1;
                done.lifted += 1;
                emptied |= family(*key);
            }
        }
        // Families that have a ban now.
        let mut filled = 0;
        if !add.is_empty() {
            let prefix = self.ipv6_prefix()?;
            let keys: Vec<IpAddr> = add
                .iter()
                .map(|b| crate::source::key(b.addr, prefix))
                .collect();
            // Before the program can see a ban the allowlist overlaps.
            let allow: Vec<crate::cidr::Cidr> = self
                .entries(super::List::Allow)?
                .into_iter()
                .map(|(c, _)| c)
                .collect();
            let overlaps = keys.iter().any(|k| {
                let source = crate::source::prefix(*k, prefix);
                allow
                    .iter()
                    .any(|a| a.contains(source.addr()) || source.contains(a.addr()))
            });
            if overlaps {
                self.set_hint(kcfg::FLAG_ALLOW_OVERLAPS, true)?;
            }
            let now = clock::monotonic_ns();
            for (i, (b, key)) in add.iter().zip(keys).enumerate() {
                let value = Ban {
                    expires_at_ns: match b.ttl {
                        None => ban::NEVER,
                        Some(t) => now.saturating_add(t.as_nanos().min(u64::MAX as u128) as u64),
                    },
                    origin: b.origin,
                    _pad: 0,
                };
                // Its bit before the program can meet the ban, and again
                // after (`listed.rs`).
                self.list_mark_ban(key);
                let made = match key {
                    IpAddr::V4(ip) => self
                        .bans_v4
                        .insert(v4(ip), value, 0)
                        .map_err(FilterError::map(pin::BANS_V4)),
                    IpAddr::V6(ip) => self
                        .bans_v6
                        .insert(v6(ip), value, 0)
                        .map_err(FilterError::map(pin::BANS_V6)),
                };
                match made {
                    Ok(()) => {
                        self.list_mark_ban(key);
                        self.ban_index_insert(key, value)?;
                        filled |= family(key);
                    }
                    Err(e) => done.refused.push((i, e)),
                }
            }
        }
        // Only a family a lift may have emptied (and no new ban refilled),
        // or one that had no ban before, changes the flags.
        if emptied & !filled != 0 || (filled != 0 && filled & !self.config()?.flags != 0) {
            self.refresh_flags()?;
        }
        Ok(done)
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
        self.listed_removed += expired.len() as u64;
        if !expired.is_empty() {
            self.refresh_flags()?;
        }
        Ok(expired.len())
    }
}
