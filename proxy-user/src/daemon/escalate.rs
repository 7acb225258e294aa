//! Bans that escalation rules ask for: into the kernel with the rule and
//! its evidence as the reason, unless the allowlist covers the source or a
//! ban is already in place. An auto-ban costs the main loop no walk of the
//! ban table (the ban index answers) and no state file write of its own
//! (the next sweep writes once for every auto-ban since the last).
//! Reports are taken in batches (up to [`BATCH`] waiting at once), so that
//! a storm of them costs the kernel's presence flags one rewrite a batch.
//! Escalation's bans stay within `[filter.maps] autobans`
//! ([`super::autobans`]): at the bound the soonest-expiring one gives way,
//! so the operator's bans always fit.

use std::{collections::HashSet, net::IpAddr};

use anyhow::Result;
use log::{debug, info, warn};
use proxy_common::list::ORIGIN_ESCALATION;
use tokio::time::Instant;

use super::{Daemon, autobans::AutoBans};
use crate::{
    cidr::Cidr,
    enforcer::Enforcer as _,
    escalate::AutoBan,
    filter::{List, NewBan},
    later::unix_later,
    metrics::autoban::AutoBanMetrics,
    source,
    state_file::{Entry, ListName, unix_now},
};

/// Most escalation reports the main loop takes in one turn.
pub const BATCH: usize = 512;

impl Daemon {
    /// The auto-ban bound of the configuration in force.
    pub(super) fn autoban_bound(&self) -> u32 {
        self.config
            .filter
            .as_ref()
            .map_or(crate::config::MapSizes::default().autobans, |f| {
                f.maps.autobans
            })
    }

    /// The escalation reports waiting (up to [`BATCH`]), as one batch:
    /// the allowlist is read once, and the auto-bans evicted to make room
    /// are lifted together with the new bans made, so the kernel's presence
    /// flags are rewritten once for the batch, not once per eviction (a
    /// scan of every map, about a millisecond). Their connections are
    /// closed by one kick.
    pub fn auto_bans(&mut self, bans: Vec<AutoBan>) -> Result<()> {
        // Escalation counts by source already; key again in case the prefix
        // changed in between. `shown` is what is banned (`2001:db8:1:2::/64`).
        let prefix = self.config.ipv6_prefix();
        let bound = self.autoban_bound();
        self.autobans.set_bound(bound);
        let (now, clock) = (std::time::Instant::now(), Instant::now());
        let allow: Vec<Cidr> = self
            .enforcer_ref()
            .entries(List::Allow)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let mut todo: Vec<(IpAddr, AutoBan)> = Vec::new();
        let mut seen = HashSet::new();
        for ban in bans {
            let addr = source::key(ban.addr, prefix);
            if !seen.insert(addr) || self.bans.is_banned(addr, now) {
                continue;
            }
            if allow.iter().any(|c| c.contains(addr)) {
                info!(
                    "{}: {}; not banned: the allowlist covers it",
                    source::prefix(addr, prefix),
                    ban.reason()
                );
                continue;
            }
            // The kernel tier never bans a trusted proxy: that would refuse
            // every client behind it. Its clients are keyed by their own
            // address (`trusted_proxies`) and refused at L7.
            if self
                .config
                .http
                .real_ip
                .as_ref()
                .is_some_and(|r| r.trusts(addr))
            {
                info!(
                    "{addr}: {}; not banned: a trusted proxy (the clients behind it are \
                     refused at L7 by their own address)",
                    ban.reason()
                );
                continue;
            }
            // One lookup, not a walk of the ban table: a ban in place (the
            // operator's, or an earlier auto-ban) is not replaced.
            if self.enforcer_ref().banned(addr)? {
                continue;
            }
            todo.push((addr, ban));
        }
        if todo.is_empty() {
            return Ok(());
        }
        let metrics = self.autobans.metrics();
        if bound == 0 {
            // `autobans = 0`: escalation reports, never bans.
            AutoBanMetrics::add(&metrics.evicted, todo.len() as u64);
            return Ok(());
        }
        // Room for the batch: the soonest-expiring give way, from the book
        // or from the batch itself (then that ban is never made).
        todo.sort_by_key(|(_, b)| std::cmp::Reverse(b.ttl));
        let mut evicted = Vec::new();
        let mut skipped = 0u64;
        while self.autobans.len() + todo.len() > bound as usize {
            let newest_soonest = todo
                .last()
                .map(|(_, b)| AutoBans::expiry(Some(b.ttl), clock));
            match (self.autobans.soonest(), newest_soonest) {
                (Some((at, old)), Some(new)) if at <= new => {
                    self.autobans.remove(old);
                    evicted.push(old);
                }
                (_, Some(_)) => {
                    todo.pop();
                    skipped += 1;
                }
                (_, None) => break,
            }
        }
        for old in &evicted {
            self.bans.lifted(*old);
            self.runtime.remove(ListName::Block, Cidr::host(*old));
            debug!("auto-ban of {old} evicted to make room");
        }
        let add: Vec<NewBan> = todo
            .iter()
            .map(|(addr, b)| NewBan {
                addr: *addr,
                ttl: Some(b.ttl),
                origin: ORIGIN_ESCALATION,
            })
            .collect();
        let tier = self.enforcer_ref().tier();
        // Lifts that fail leave bans the sweep takes at their expiry.
        let done = self.enforcer().replace_bans(&evicted, &add)?;
        let metrics = self.autobans.metrics();
        AutoBanMetrics::add(&metrics.evicted, evicted.len() as u64 + skipped);
        let mut refused = vec![false; todo.len()];
        for (i, e) in &done.refused {
            // Counted and summarised once per interval, not logged per source.
            debug!("auto-ban of {} refused: {e}", todo[*i].0);
            refused[*i] = true;
        }
        AutoBanMetrics::add(&metrics.failed, done.refused.len() as u64);
        let quiet = !evicted.is_empty() || skipped > 0;
        let mut nets = Vec::new();
        for ((addr, ban), refused) in todo.into_iter().zip(refused) {
            if refused {
                continue;
            }
            let shown = source::prefix(addr, prefix);
            self.autobans.insert(addr, Some(ban.ttl), clock);
            self.bans.banned(addr, Some(ban.ttl), now);
            AutoBanMetrics::add(&self.autobans.metrics().made, 1);
            if quiet {
                // At the bound: the periodic summary says what happened.
                debug!(
                    "{shown} banned ({tier}) for {:?}: {}",
                    ban.ttl,
                    ban.reason()
                );
            } else {
                info!(
                    "{shown} banned ({tier}) for {:?}: {}",
                    ban.ttl,
                    ban.reason()
                );
            }
            let entry = Entry {
                list: ListName::Block,
                cidr: Cidr::host(addr),
                origin: "auto-ban".into(),
                reason: Some(ban.reason()),
                expires_at: Some(unix_later(
                    unix_now(),
                    ban.ttl.max(std::time::Duration::from_secs(1)),
                )),
                host: None,
                local: false,
            };
            // Every host of the fleet bans it too, with the evidence.
            self.share_add(&entry);
            self.runtime.put(entry);
            nets.push(shown);
        }
        self.runtime.save_later();
        self.kick_after(nets, super::kick::AFTER_ESCALATION)
    }

    /// At start: escalation's bans already in force (kept in the pinned
    /// maps, or restored from the state file) go into the book; beyond the
    /// bound (it may have been lowered) the soonest-expiring are lifted.
    pub fn count_autobans(&mut self) -> Result<()> {
        let now = Instant::now();
        let bound = self.autoban_bound();
        self.autobans.set_bound(bound);
        for b in self.enforcer_ref().bans()? {
            if b.origin == ORIGIN_ESCALATION && b.remaining != Some(std::time::Duration::ZERO) {
                self.autobans.insert(b.addr, b.remaining, now);
            }
        }
        let mut over = Vec::new();
        while self.autobans.len() > bound as usize {
            let Some(old) = self.autobans.over_bound() else {
                break;
            };
            self.autobans.remove(old);
            self.bans.lifted(old);
            self.runtime.remove(ListName::Block, Cidr::host(old));
            over.push(old);
        }
        let lifted = over.len();
        if lifted > 0 {
            // All at once: one presence-flag rewrite.
            let _ = self.enforcer().lift_bans(&over);
            warn!(
                "{lifted} auto-ban(s) over [filter.maps] autobans = {bound} lifted, soonest-expiring first"
            );
            self.save();
        }
        Ok(())
    }

    /// Once a second: forget expired auto-bans, follow a reloaded bound,
    /// and say (at most once per interval) when escalation cannot keep up.
    pub fn autoban_tick(&mut self) {
        let now = Instant::now();
        let bound = self.autoban_bound();
        self.autobans.set_bound(bound);
        self.autobans.expire(now);
        if let Some(line) = self.autobans.report(now) {
            warn!("{line}");
        }
    }
}
