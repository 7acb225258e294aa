//! Where the allowlist, blocklist and bans are enforced: in the kernel
//! ([`FilterMaps`], the XDP filter's pinned maps) or, without XDP, in
//! userspace at accept time ([`Gate`]). The daemon changes either through
//! this one interface, so every control command works in both modes.

use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::{
    cidr::Cidr,
    filter::{BanEntry, FilterError, FilterMaps, List, NewBan, Replaced},
    gate::Gate,
};

pub trait Enforcer {
    /// "kernel" or "userspace", for views.
    fn tier(&self) -> &'static str;
    fn insert(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError>;
    fn remove(&mut self, list: List, cidr: Cidr) -> Result<bool, FilterError>;
    fn entries(&self, list: List) -> Result<Vec<(Cidr, u32)>, FilterError>;
    fn ban(&mut self, addr: IpAddr, ttl: Option<Duration>, origin: u32) -> Result<(), FilterError>;
    fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError>;
    /// Lifts the bans stored under exactly these keys (as `bans` lists
    /// them; not masked again with today's `ipv6_prefix`), all at once:
    /// the sweep and auto-ban evictions, which may lift thousands together.
    fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError>;
    /// Lifts the bans stored under exactly `lift`, then makes those of
    /// `add`, all at once (in the kernel: the presence flags rewritten at
    /// most once); the bans that could not be made are reported, the
    /// others are made.
    fn replace_bans(&mut self, lift: &[IpAddr], add: &[NewBan]) -> Result<Replaced, FilterError>;
    fn bans(&self) -> Result<Vec<BanEntry>, FilterError>;
    /// Whether the source `addr` belongs to is banned now (one lookup).
    fn banned(&self, addr: IpAddr) -> Result<bool, FilterError>;
    fn sweep_bans(&mut self) -> Result<usize, FilterError>;
}

impl Enforcer for FilterMaps {
    fn tier(&self) -> &'static str {
        "kernel"
    }
    fn insert(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError> {
        FilterMaps::insert(self, list, cidr, origin)
    }
    fn remove(&mut self, list: List, cidr: Cidr) -> Result<bool, FilterError> {
        FilterMaps::remove(self, list, cidr)
    }
    fn entries(&self, list: List) -> Result<Vec<(Cidr, u32)>, FilterError> {
        FilterMaps::entries(self, list)
    }
    fn ban(&mut self, addr: IpAddr, ttl: Option<Duration>, origin: u32) -> Result<(), FilterError> {
        FilterMaps::ban(self, addr, ttl, origin)
    }
    fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        FilterMaps::unban(self, addr)
    }
    fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError> {
        FilterMaps::lift_bans(self, keys)
    }
    fn replace_bans(&mut self, lift: &[IpAddr], add: &[NewBan]) -> Result<Replaced, FilterError> {
        FilterMaps::replace_bans(self, lift, add)
    }
    fn bans(&self) -> Result<Vec<BanEntry>, FilterError> {
        FilterMaps::bans(self)
    }
    fn banned(&self, addr: IpAddr) -> Result<bool, FilterError> {
        FilterMaps::banned(self, addr)
    }
    fn sweep_bans(&mut self) -> Result<usize, FilterError> {
        FilterMaps::sweep_bans(self)
    }
}

impl Enforcer for Arc<Gate> {
    fn tier(&self) -> &'static str {
        "userspace"
    }
    fn insert(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError> {
        Gate::insert(self, list, cidr, origin);
        Ok(())
    }
    fn remove(&mut self, list: List, cidr: Cidr) -> Result<bool, FilterError> {
        Ok(Gate::remove(self, list, cidr))
    }
    fn entries(&self, list: List) -> Result<Vec<(Cidr, u32)>, FilterError> {
        Ok(Gate::entries(self, list))
    }
    fn ban(&mut self, addr: IpAddr, ttl: Option<Duration>, origin: u32) -> Result<(), FilterError> {
        Gate::ban(self, addr, ttl, origin);
        Ok(())
    }
    fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        Ok(Gate::unban(self, addr))
    }
    fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError> {
        Ok(Gate::lift_bans(self, keys))
    }
    fn replace_bans(&mut self, lift: &[IpAddr], add: &[NewBan]) -> Result<Replaced, FilterError> {
        let lifted = Gate::lift_bans(self, lift);
        for b in add {
            Gate::ban(self, b.addr, b.ttl, b.origin);
        }
        Ok(Replaced {
            lifted,
            refused: Vec::new(),
        })
    }
    fn bans(&self) -> Result<Vec<BanEntry>, FilterError> {
        Ok(Gate::bans(self))
    }
    fn banned(&self, addr: IpAddr) -> Result<bool, FilterError> {
        Ok(Gate::banned(self, addr))
    }
    fn sweep_bans(&mut self) -> Result<usize, FilterError> {
        Ok(Gate::sweep_bans(self))
    }
}
