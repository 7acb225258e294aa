//! The bans the daemon knows of and when each expires, in deadline order:
//! the once-a-second sweep removes the due ones without walking the ban
//! table (which holds up to `[filter.maps] bans` entries per family), and
//! an auto-ban finds an existing ban without listing them all (issue 13).
//!
//! The daemon is the only writer of bans (CLI, escalation, the state file),
//! so the index follows every ban it makes; at start it is seeded once from
//! the enforcer, for the bans a previous daemon left in the pinned maps.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{filter::BanEntry, later::Later};

#[derive(Debug, Default)]
pub struct BanIndex {
    /// Every known ban: its deadline, `None` when it never expires.
    known: HashMap<IpAddr, Option<Instant>>,
    /// The expiring ones, by deadline; always the same set as `known`'s `Some`s.
    due: BTreeSet<(Instant, IpAddr)>,
}

impl BanIndex {
    /// Forgets everything and learns `bans` as they are at `now`.
    pub fn seed(&mut self, bans: &[BanEntry], now: Instant) {
        self.known.clear();
        self.due.clear();
        for b in bans {
            if b.remaining != Some(Duration::ZERO) {
                self.banned(b.addr, b.remaining, now);
            }
        }
    }

    /// `addr` was banned at `now` for `ttl` (`None`: until lifted).
    pub fn banned(&mut self, addr: IpAddr, ttl: Option<Duration>, now: Instant) {
        self.lifted(addr);
        let deadline = ttl.map(|t| now.later(t));
        if let Some(t) = deadline {
            self.due.insert((t, addr));
        }
        self.known.insert(addr, deadline);
    }

    /// The ban on `addr` was lifted (or is gone).
    pub fn lifted(&mut self, addr: IpAddr) {
        if let Some(Some(t)) = self.known.remove(&addr) {
            self.due.remove(&(t, addr));
        }
    }

    /// Whether `addr` has a ban still in force at `now`.
    pub fn is_banned(&self, addr: IpAddr, now: Instant) -> bool {
        self.known
            .get(&addr)
            .is_some_and(|deadline| deadline.is_none_or(|t| t > now))
    }

    /// Takes the bans due at `now`, earliest first: O(k log n) for k of them.
    pub fn take_due(&mut self, now: Instant) -> Vec<IpAddr> {
        let mut out = Vec::new();
        while let Some(&(t, addr)) = self.due.first() {
            if t > now {
                break;
            }
            self.due.pop_first();
            self.known.remove(&addr);
            out.push(addr);
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.known.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn due_in_deadline_order_rebans_and_lifts() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut x = BanIndex::default();
        x.banned(ip(1), Some(s(30)), t0);
        x.banned(ip(2), Some(s(10)), t0);
        x.banned(ip(3), None, t0);
        x.banned(ip(4), Some(Duration::MAX), t0);
        x.banned(ip(5), Some(s(5)), t0);
        // A new ban replaces the old deadline; a lifted one is never due.
        x.banned(ip(1), Some(s(60)), t0);
        x.lifted(ip(5));
        assert!(x.is_banned(ip(2), t0 + s(9)));
        assert!(!x.is_banned(ip(2), t0 + s(10)));
        assert!(x.is_banned(ip(3), t0 + s(1_000_000)));
        assert!(!x.is_banned(ip(5), t0));
        assert!(x.take_due(t0 + s(9)).is_empty());
        assert_eq!(x.take_due(t0 + s(59)), [ip(2)]);
        assert_eq!(x.take_due(t0 + s(60)), [ip(1)]);
        assert_eq!(x.len(), 2, "the permanent and the far one stay");
        x.seed(
            &[
                BanEntry {
                    addr: ip(7),
                    remaining: Some(s(1)),
                    origin: 0,
                },
                BanEntry {
                    addr: ip(8),
                    remaining: Some(Duration::ZERO),
                    origin: 0,
                },
            ],
            t0,
        );
        assert_eq!(x.len(), 1);
        assert_eq!(x.take_due(t0 + s(1)), [ip(7)]);
        assert!(x.is_empty());
    }

    /// Issue 13: the once-a-second sweep walked every ban, and every
    /// auto-ban rewrote the whole state file. Figures at 65,536 bans (no
    /// timing asserts: printed for RELIABILITY.md).
    #[test]
    fn sweep_and_state_file_at_65536_bans() {
        use crate::{
            cidr::Cidr,
            gate::Gate,
            state_file::{Entry, ListName, StateFile},
        };
        const N: u32 = 65_536;
        let t0 = Instant::now();
        let mut x = BanIndex::default();
        let gate = Gate::default();
        for i in 0..N {
            let ttl = Duration::from_secs(3600 + u64::from(i));
            x.banned(ip(i), Some(ttl), t0);
            gate.ban(ip(i), Some(ttl), 0);
        }
        // A sweep with one ban due: only that one is looked at.
        x.banned(ip(N), Some(Duration::from_secs(1)), t0);
        let at = t0 + Duration::from_secs(2);
        let start = Instant::now();
        let due = x.take_due(at);
        let indexed = start.elapsed();
        assert_eq!(due, [ip(N)]);
        assert_eq!(x.len(), N as usize);
        // What the sweep did before: list every ban to find the expired ones.
        let start = Instant::now();
        let walked = gate
            .bans()
            .iter()
            .filter(|b| b.remaining == Some(Duration::ZERO))
            .count();
        let walk = start.elapsed();
        assert_eq!(walked, 0);

        let dir = std::env::temp_dir().join(format!("rampart-sweep-{}", std::process::id()));
        let mut f = StateFile::open(&dir.join("state.json")).unwrap();
        for i in 0..N {
            f.put(Entry {
                list: ListName::Block,
                cidr: Cidr::host(ip(i)),
                origin: "auto-ban".into(),
                reason: Some("escalate.scanners: 11 responses 404 within 60s".into()),
                expires_at: Some(2_000_000_000 + u64::from(i)),
                host: None,
                local: false,
            });
        }
        // 1,000 auto-bans within a second: each marks the file, one write.
        let start = Instant::now();
        for _ in 0..1000 {
            f.save_later();
        }
        f.flush(Instant::now()).unwrap();
        let coalesced = start.elapsed();
        let size = std::fs::metadata(dir.join("state.json")).unwrap().len();
        let start = Instant::now();
        f.save().unwrap();
        let one_write = start.elapsed();
        let start = Instant::now();
        assert!(f.take_expired(1_000_000_000).is_empty());
        let expiry = start.elapsed();
        std::fs::remove_dir_all(&dir).unwrap();
        println!(
            "figure: at {N} bans: sweep with one due {indexed:?} (indexed) vs {walk:?} (walking the bans); \
             state-file entries expiry check {expiry:?}; one state-file write {one_write:?} ({} KiB), \
             1000 auto-bans in 5 s -> one write, {coalesced:?} (was 1000 writes, ~{:?})",
            size >> 10,
            one_write * 1000
        );
    }
}
