//! The fleet's hook into the daemon (docs/fleet.md): this host's adds and
//! removes are handed to the fleet task ([`Daemon::share_add`],
//! [`Daemon::share_del`]), and the other hosts' changes are put in force
//! here, by the main loop, through the same [`Daemon::enforce_entry`] and
//! [`Daemon::lift_entry`] the CLI's `block`/`allow` verbs use
//! ([`Daemon::fleet_apply`]). Nothing here waits for Redis.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::{Result, anyhow};
use log::{debug, info, warn};
use tokio::sync::mpsc;

use super::Daemon;
use crate::{
    cidr::Cidr,
    config::FleetThreshold,
    filter::source_scan::SourceScan,
    fleet::{
        Change, Fleet, Incoming,
        counts::Counted,
        entry::Op,
        kernel::{Counter, KernelRules},
    },
    source,
    state_file::{Entry, ListName, unix_now},
};

/// Above this many changes in one batch, each is logged at debug level
/// (escalation on another host can ban thousands a second).
const QUIET_ABOVE: usize = 16;

impl Daemon {
    /// Starts the fleet task when `[fleet]` is configured: this host's
    /// shared entries from the state file are republished, and the log is
    /// read on from where the state file says. The receiver feeds
    /// [`Daemon::fleet_apply`].
    pub fn start_fleet(&mut self) -> Option<mpsc::Receiver<Incoming>> {
        let settings = self.config.fleet.clone()?;
        let now = unix_now();
        let own: Vec<Entry> = self
            .runtime
            .state
            .entries
            .iter()
            .filter(|e| e.host.is_none() && !e.local && !e.expired(now))
            .cloned()
            .collect();
        let metrics = self.shared.load().services.metrics.fleet.clone();
        let shared = self.shared.clone();
        let kernel = self.kernel_rules();
        let zones = move || {
            let state = shared.load();
            let limits = state.limiters.values().filter(|l| l.zone.fleet);
            let mut counted: Vec<Arc<dyn Counted>> =
                limits.map(|l| l.clone() as Arc<dyn Counted>).collect();
            counted.extend(state.escalation.fleet_rules());
            counted.extend(kernel.iter().flat_map(crate::fleet::kernel::counted));
            counted
        };
        if let Err(e) = crate::fleet::counts::spawn(&settings, zones, metrics.clone()) {
            warn!(
                "fleet: fleet-wide limits not started ({e}); they hold on this host's traffic only"
            );
        }
        match Fleet::start(&settings, own, self.runtime.state.fleet.clone(), metrics) {
            Ok((fleet, rx)) => {
                info!(
                    "fleet {}: host {}, Redis {}:{} (never on the packet or request path)",
                    settings.name, settings.host_id, settings.host, settings.port
                );
                self.fleet = Some(fleet);
                Some(rx)
            }
            Err(e) => {
                warn!("fleet: not started ({e}); this host enforces its own entries only");
                None
            }
        }
    }

    /// `[filter] fleet_pps` and `fleet_syn`: the kernel tier's counts,
    /// read from the XDP program's sources maps (a `[fleet]` change needs
    /// a restart, and so do these thresholds).
    fn kernel_rules(&self) -> Option<Arc<KernelRules>> {
        let filter = self.config.filter.as_ref()?;
        let thresholds: Vec<(Counter, FleetThreshold)> = [
            (Counter::Packets, filter.fleet_pps),
            (Counter::Syns, filter.fleet_syn),
        ]
        .into_iter()
        .filter_map(|(c, t)| Some((c, t?)))
        .collect();
        if thresholds.is_empty() {
            return None;
        }
        match SourceScan::open(&filter.pin_dir) {
            Ok(maps) => {
                let sink = self.shared.load().services.escalation.clone();
                let metrics = self.shared.load().services.metrics.fleet.clone();
                let rules = KernelRules::new(&thresholds, Box::new(maps), sink, metrics)?;
                for (counter, t, floor) in rules.describe() {
                    info!(
                        "fleet: {}: more than {} from one source within {:?} on the fleet bans it for {:?} (sources sending this host at least {floor} per period counted, less as more hosts are heard from)",
                        counter.name(),
                        t.count,
                        t.within,
                        t.ban,
                    );
                }
                Some(rules)
            }
            Err(e) => {
                warn!(
                    "fleet: fleet_pps and fleet_syn not counted ({e}); the XDP program's sources maps are needed"
                );
                None
            }
        }
    }

    /// Shares an entry this host added (not `--local` ones).
    pub(super) fn share_add(&self, entry: &Entry) {
        if let Some(f) = &self.fleet
            && !entry.local
        {
            f.publish(Change::add(entry, &f.host));
        }
    }

    pub(super) fn share_del(&self, list: ListName, cidr: Cidr) {
        if let Some(f) = &self.fleet {
            f.publish(Change::del(list, cidr, &f.host));
        }
    }

    /// Puts the other hosts' changes in force, then keeps the log position
    /// with them in the state file (written with the usual coalescing).
    pub fn fleet_apply(&mut self, incoming: Incoming) {
        let Some(me) = self.fleet.as_ref().map(|f| f.host.clone()) else {
            return;
        };
        let (changes, cursor, prune) = match incoming {
            Incoming::Log { changes, cursor } => (changes, cursor, false),
            Incoming::Snapshot {
                entries,
                cursor,
                prune,
            } => (entries, cursor, prune),
        };
        let quiet = changes.len() > QUIET_ABOVE;
        let now = unix_now();
        let prefix = self.config.ipv6_prefix();
        let mut seen = HashSet::new();
        let (mut added, mut removed, mut failed) = (0usize, 0usize, 0usize);
        for c in changes {
            let cidr = if c.list == ListName::Block && c.cidr.is_host() {
                Cidr::host(source::key(c.cidr.addr(), prefix))
            } else {
                c.cidr
            };
            seen.insert((c.list, cidr));
            let result = match c.op {
                // Its own entries: this host's state file is their truth.
                Op::Add if c.host == me => continue,
                Op::Add => self.fleet_add(&c, cidr, now, quiet).map(|n| added += n),
                Op::Del => self.fleet_del(&c, cidr, quiet).map(|n| removed += n),
            };
            if let Err(e) = result {
                failed += 1;
                warn!("fleet: {:?} {} from {}: {e:#}", c.list, c.cidr, c.host);
            }
        }
        if prune {
            // Entries from other hosts that the snapshot no longer has were
            // removed while this host was away.
            let gone: Vec<(ListName, Cidr)> = self
                .runtime
                .state
                .entries
                .iter()
                .filter(|e| e.host.as_ref().is_some_and(|h| *h != me))
                .filter(|e| !seen.contains(&(e.list, e.cidr)))
                .map(|e| (e.list, e.cidr))
                .collect();
            for (list, cidr) in gone {
                match self.lift_entry(list, cidr) {
                    Ok(Some(_)) => removed += 1,
                    Ok(None) => {}
                    Err(e) => warn!("fleet: lifting {list:?} {cidr}: {e:#}"),
                }
            }
        }
        if quiet && added + removed + failed > 0 {
            info!(
                "fleet: {added} entries added and {removed} removed from other hosts ({failed} failed)"
            );
        }
        self.runtime.state.fleet = Some(cursor);
        self.runtime.save_later();
    }

    /// Another host's entry: 1 if it changed what this host enforces.
    fn fleet_add(&mut self, c: &Change, cidr: Cidr, now: u64, quiet: bool) -> Result<usize> {
        let mut entry = c.entry();
        entry.cidr = cidr;
        let Some(ttl) = entry
            .expires_at
            .map(|t| {
                t.checked_sub(now)
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
            })
            .map_or(Some(None), |t| t.map(Some))
        else {
            return Ok(0);
        };
        if self.in_config(c.list, cidr) {
            return Ok(0);
        }
        let old = self.runtime.entry(c.list, cidr);
        if old.is_some_and(|o| {
            o.host == entry.host
                && o.expires_at == entry.expires_at
                && o.reason == entry.reason
                && o.origin == entry.origin
        }) {
            return Ok(0);
        }
        let was_own = old.is_some_and(|o| o.host.is_none() && !o.local);
        let entry = self.enforce_entry(entry, ttl)?;
        if was_own && let Some(f) = &self.fleet {
            // Replaced by the other host's: that host shares it now.
            f.forget(c.key());
        }
        let line = format!(
            "{:?} {} added from fleet host {} ({}{}){}",
            entry.list,
            entry.cidr,
            c.host,
            entry.origin,
            entry
                .reason
                .as_ref()
                .map_or(String::new(), |r| format!(": {r}")),
            ttl.map_or(String::new(), |t| format!(" for {t:?}"))
        );
        if quiet {
            debug!("{line}");
        } else {
            info!("{line}");
        }
        Ok(1)
    }

    /// Another host removed an entry: lifted here too, unless this host
    /// keeps it as its own only (`--local`) or the configuration has it.
    fn fleet_del(&mut self, c: &Change, cidr: Cidr, quiet: bool) -> Result<usize> {
        if self.in_config(c.list, cidr) || self.runtime.entry(c.list, cidr).is_some_and(|e| e.local)
        {
            return Ok(0);
        }
        if let Some(f) = &self.fleet {
            f.forget(c.key());
        }
        if self.lift_entry(c.list, cidr)?.is_none() {
            return Ok(0);
        }
        if quiet {
            debug!("{:?} {} removed from fleet host {}", c.list, cidr, c.host);
        } else {
            info!("{:?} {} removed from fleet host {}", c.list, cidr, c.host);
        }
        Ok(1)
    }

    pub(super) fn fleet_status(&self) -> Result<serde_json::Value> {
        let f = self.fleet.as_ref().ok_or_else(|| {
            anyhow!("this host is not in a fleet (no [fleet] in the configuration)")
        })?;
        Ok(serde_json::to_value(f.status())?)
    }
}

/// The next batch from the fleet task, or never without a fleet; a
/// stopped task ends the fleet (said once).
pub async fn next_incoming(rx: &mut Option<mpsc::Receiver<Incoming>>) -> Option<Incoming> {
    match rx {
        Some(r) => {
            let got = r.recv().await;
            if got.is_none() {
                warn!("fleet: the fleet task stopped; this host enforces its own entries only");
                *rx = None;
            }
            got
        }
        None => std::future::pending().await,
    }
}
