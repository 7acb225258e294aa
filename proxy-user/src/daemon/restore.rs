//! At start (and when the gate takes over from XDP): the state file's
//! entries go back into the enforcer (after a reboot the pinned maps are
//! gone; after a restart they are there).
//!
//! The operator's entries (CLI bans and list entries) go back first, then
//! escalation's bans, latest-expiring first and only as many as
//! `[filter.maps] autobans` leaves room for beside the auto-bans already in
//! force: auto-bans can never take room the operator's entries need (issue
//! 13's review: entries went back in the file's order, so a file holding
//! more auto-bans than fit could fill the table before the operator's
//! bans). The auto-bans left over are dropped from the file, as the bound
//! would have lifted them.
//!
//! One pass over the entries, against sets of what is already there
//! (O(n)), and the bans made in one batch each
//! ([`crate::enforcer::Enforcer::replace_bans`]);
//! an entry that cannot go back (a map now smaller than the file, say) is
//! reported and skipped, never a reason not to start.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Result;
use log::{info, warn};
use proxy_common::list::{ORIGIN_CLI, ORIGIN_ESCALATION};

use super::{Daemon, expiry::BanIndex, operate::list_of};
use crate::{
    cidr::Cidr,
    enforcer::Enforcer as _,
    filter::NewBan,
    source,
    state_file::{Entry, ListName, unix_now},
};

/// Entries named in the warning about those that could not be restored.
const SHOWN: usize = 5;

impl Daemon {
    /// At start, before the filter sees a packet: bans pinned under another
    /// `ipv6_prefix` keyed again ([`super::rekey`]), the state file's
    /// entries put back, and escalation's bans in force counted into the
    /// book.
    pub fn restore(&mut self) -> Result<()> {
        let adopted = self
            .reconciler
            .filter_mut()
            .and_then(crate::filter::Filter::take_changed_ipv6_prefix);
        if let Some(was) = adopted {
            self.rekey_bans(was, self.config.ipv6_prefix())?;
        }
        self.restore_lists()?;
        self.count_autobans()
    }

    /// Puts the state file's entries back into the enforcer, the
    /// operator's first (see the module's documentation).
    pub fn restore_lists(&mut self) -> Result<()> {
        let now = unix_now();
        let expired = self.runtime.take_expired(now);
        let entries: Vec<Entry> = self.runtime.state.entries.iter().cloned().collect();
        let prefix = self.config.ipv6_prefix();
        let bound = self.autoban_bound() as usize;
        let f = self.enforcer_ref();
        let present = f.bans()?;
        let live = present
            .iter()
            .filter(|b| b.remaining != Some(Duration::ZERO));
        let mut banned: HashSet<IpAddr> = live.clone().map(|b| b.addr).collect();
        let autobanned = live.filter(|b| b.origin == ORIGIN_ESCALATION).count();
        let mut listed: HashMap<ListName, HashSet<Cidr>> = HashMap::new();
        for name in [ListName::Allow, ListName::Block] {
            let on = f.entries(list_of(name))?.into_iter().map(|(c, _)| c);
            listed.insert(name, on.collect());
        }
        let started = Instant::now();
        let mut index = std::mem::take(&mut self.bans);
        index.seed(&present, started);

        let is_ban = |e: &Entry| e.list == ListName::Block && e.cidr.is_host();
        let (auto, operator): (Vec<&Entry>, Vec<&Entry>) = entries
            .iter()
            .partition(|e| e.origin == "auto-ban" && is_ban(e));
        let (mut restored, mut failed) = (0usize, Vec::new());
        // The operator's: list entries one by one, bans in one batch.
        let mut bans = Vec::new();
        for e in operator {
            let origin = if e.origin == "auto-ban" {
                ORIGIN_ESCALATION
            } else {
                ORIGIN_CLI
            };
            if is_ban(e) {
                bans.push((e, origin));
            } else if !listed[&e.list].contains(&e.cidr) {
                match self.enforcer().insert(list_of(e.list), e.cidr, origin) {
                    Ok(()) => restored += 1,
                    Err(err) => failed.push(format!("{:?} {}: {err}", e.list, e.cidr)),
                }
            }
        }
        let bans = fresh(bans, &mut banned, prefix, now);
        restored += self.restore_bans(&bans, &mut index, started, &mut failed)?;

        // Escalation's: the latest-expiring first, as many as the bound has room for.
        let mut auto = fresh(
            auto.into_iter().map(|e| (e, ORIGIN_ESCALATION)).collect(),
            &mut banned,
            prefix,
            now,
        );
        auto.sort_by_key(|(_, b)| std::cmp::Reverse(b.ttl.unwrap_or(Duration::MAX)));
        let over = auto.split_off(bound.saturating_sub(autobanned).min(auto.len()));
        restored += self.restore_bans(&auto, &mut index, started, &mut failed)?;
        self.bans = index;
        for (e, _) in &over {
            self.runtime.remove(e.list, e.cidr);
        }

        if restored > 0 {
            info!("{restored} runtime list entries restored from the state file");
        }
        if !over.is_empty() {
            warn!(
                "{} auto-ban(s) in the state file not restored: over [filter.maps] autobans = {bound} \
                 ({autobanned} in force already), soonest-expiring first; dropped from the file",
                over.len()
            );
        }
        if !failed.is_empty() {
            warn!(
                "{} of {} state file entries could not be restored (they stay in the file): {}{}",
                failed.len(),
                entries.len(),
                failed[..failed.len().min(SHOWN)].join("; "),
                if failed.len() > SHOWN { "; ..." } else { "" }
            );
        }
        if !expired.is_empty() || !over.is_empty() {
            self.save();
        }
        Ok(())
    }

    /// Makes `bans` in one batch; how many were made (the others are in `failed`).
    fn restore_bans(
        &mut self,
        bans: &[(&Entry, NewBan)],
        index: &mut BanIndex,
        started: Instant,
        failed: &mut Vec<String>,
    ) -> Result<usize> {
        if bans.is_empty() {
            return Ok(0);
        }
        let add: Vec<NewBan> = bans.iter().map(|(_, b)| *b).collect();
        let done = self.enforcer().replace_bans(&[], &add)?;
        let mut refused = vec![false; bans.len()];
        for (i, err) in done.refused {
            refused[i] = true;
            let e = bans[i].0;
            failed.push(format!("{:?} {}: {err}", e.list, e.cidr));
        }
        let mut made = 0;
        for ((_, b), refused) in bans.iter().zip(refused) {
            if !refused {
                index.banned(b.addr, b.ttl, started);
                made += 1;
            }
        }
        Ok(made)
    }
}

/// The bans of `entries` not in force already (`banned`, which they join),
/// keyed by source under today's `prefix`; of several entries for one
/// source (a prefix made shorter since), the longest-lasting is kept.
fn fresh<'a>(
    entries: Vec<(&'a Entry, u32)>,
    banned: &mut HashSet<IpAddr>,
    prefix: u8,
    now: u64,
) -> Vec<(&'a Entry, NewBan)> {
    let mut out: Vec<(&Entry, NewBan)> = Vec::new();
    let mut at: HashMap<IpAddr, usize> = HashMap::new();
    for (e, origin) in entries {
        let addr = source::key(e.cidr.addr(), prefix);
        let ban = NewBan {
            addr,
            ttl: e.remaining(now),
            origin,
        };
        if let Some(&i) = at.get(&addr) {
            let longer = |t: Option<Duration>| t.unwrap_or(Duration::MAX);
            if longer(ban.ttl) > longer(out[i].1.ttl) {
                out[i] = (e, ban);
            }
        } else if banned.insert(addr) {
            at.insert(addr, out.len());
            out.push((e, ban));
        }
    }
    out
}
