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

/// The enforcing tier as the daemon changes it: the kernel maps when the
/// filter runs, and always the gate, which then keeps a copy of every list
/// entry and ban (inactive at accept time, so it costs the accept path
/// nothing). The copy is what the L7 tier reads to refuse a client that a
/// trusted proxy names ([`Gate::refuses`]): the kernel never sees that
/// client's packets, only the proxy's. Reads come from the enforcing tier.
pub struct Tiers<'a> {
    pub kernel: Option<&'a mut FilterMaps>,
    pub gate: &'a Gate,
}

impl Enforcer for Tiers<'_> {
    fn tier(&self) -> &'static str {
        if self.kernel.is_some() {
            "kernel"
        } else {
            "userspace"
        }
    }
    fn insert(&mut self, list: List, cidr: Cidr, origin: u32) -> Result<(), FilterError> {
        if let Some(k) = self.kernel.as_deref_mut() {
            k.insert(list, cidr, origin)?;
        }
        self.gate.insert(list, cidr, origin);
        Ok(())
    }
    fn remove(&mut self, list: List, cidr: Cidr) -> Result<bool, FilterError> {
        let kernel = match self.kernel.as_deref_mut() {
            Some(k) => Some(k.remove(list, cidr)?),
            None => None,
        };
        let gate = self.gate.remove(list, cidr);
        Ok(kernel.unwrap_or(gate))
    }
    fn entries(&self, list: List) -> Result<Vec<(Cidr, u32)>, FilterError> {
        match self.kernel.as_deref() {
            Some(k) => k.entries(list),
            None => Ok(self.gate.entries(list)),
        }
    }
    fn ban(&mut self, addr: IpAddr, ttl: Option<Duration>, origin: u32) -> Result<(), FilterError> {
        if let Some(k) = self.kernel.as_deref_mut() {
            k.ban(addr, ttl, origin)?;
        }
        self.gate.ban(addr, ttl, origin);
        Ok(())
    }
    fn unban(&mut self, addr: IpAddr) -> Result<bool, FilterError> {
        let kernel = match self.kernel.as_deref_mut() {
            Some(k) => Some(k.unban(addr)?),
            None => None,
        };
        let gate = self.gate.unban(addr);
        Ok(kernel.unwrap_or(gate))
    }
    fn lift_bans(&mut self, keys: &[IpAddr]) -> Result<usize, FilterError> {
        let kernel = match self.kernel.as_deref_mut() {
            Some(k) => Some(k.lift_bans(keys)?),
            None => None,
        };
        let gate = self.gate.lift_bans(keys);
        Ok(kernel.unwrap_or(gate))
    }
    fn replace_bans(&mut self, lift: &[IpAddr], add: &[NewBan]) -> Result<Replaced, FilterError> {
        let Some(k) = self.kernel.as_deref_mut() else {
            let lifted = self.gate.lift_bans(lift);
            for b in add {
                self.gate.ban(b.addr, b.ttl, b.origin);
            }
            return Ok(Replaced {
                lifted,
                refused: Vec::new(),
            });
        };
        let done = k.replace_bans(lift, add)?;
        self.gate.lift_bans(lift);
        for (i, b) in add.iter().enumerate() {
            if !done.refused.iter().any(|(j, _)| *j == i) {
                self.gate.ban(b.addr, b.ttl, b.origin);
            }
        }
        Ok(done)
    }
    fn bans(&self) -> Result<Vec<BanEntry>, FilterError> {
        match self.kernel.as_deref() {
            Some(k) => k.bans(),
            None => Ok(self.gate.bans()),
        }
    }
    fn banned(&self, addr: IpAddr) -> Result<bool, FilterError> {
        match self.kernel.as_deref() {
            Some(k) => k.banned(addr),
            None => Ok(self.gate.banned(addr)),
        }
    }
    fn sweep_bans(&mut self) -> Result<usize, FilterError> {
        let gate = self.gate.sweep_bans();
        match self.kernel.as_deref_mut() {
            Some(k) => k.sweep_bans(),
            None => Ok(gate),
        }
    }
}

/// Copies what the kernel maps already hold (a filter adopted from an
/// earlier daemon keeps its entries) into the gate, once at start; from
/// then on [`Tiers`] keeps the copy.
pub fn copy_into_gate(kernel: &FilterMaps, gate: &Gate) -> Result<usize, FilterError> {
    let mut n = 0;
    for list in [List::Allow, List::Block] {
        for (cidr, origin) in kernel.entries(list)? {
            gate.insert(list, cidr, origin);
            n += 1;
        }
    }
    for b in kernel.bans()? {
        gate.ban(b.addr, b.remaining, b.origin);
        n += 1;
    }
    Ok(n)
}
