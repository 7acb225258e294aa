//! Bans that escalation rules ask for: into the kernel with the rule and
//! its evidence as the reason, unless the allowlist covers the source or a
//! ban is already in place. An auto-ban costs the main loop no walk of the
//! ban table (the ban index answers) and no state file write of its own
//! (the next sweep writes once for every auto-ban since the last).
//! Escalation's bans stay within `[filter.maps] autobans`
//! ([`super::autobans`]): at the bound the soonest-expiring one gives way,
//! so the operator's bans always fit.

use anyhow::Result;
use log::{debug, info, warn};
use proxy_common::list::ORIGIN_ESCALATION;
use tokio::time::Instant;

use super::Daemon;
use crate::{
    cidr::Cidr,
    escalate::AutoBan,
    filter::List,
    later::unix_later,
    metrics::autoban::AutoBanMetrics,
    runtime::{Entry, ListName, unix_now},
    source,
};

impl Daemon {
    /// The auto-ban bound of the configuration in force.
    fn autoban_bound(&self) -> u32 {
        self.config
            .filter
            .as_ref()
            .map_or(crate::config::MapSizes::default().autobans, |f| {
                f.maps.autobans
            })
    }

    pub fn auto_ban(&mut self, ban: AutoBan) -> Result<()> {
        // Escalation counts by source already; key again in case the prefix
        // changed in between. `shown` is what is banned (`2001:db8:1:2::/64`).
        let prefix = self.config.ipv6_prefix();
        let addr = source::key(ban.addr, prefix);
        let shown = source::prefix(addr, prefix);
        let bound = self.autoban_bound();
        self.autobans.set_bound(bound);
        if self.bans.is_banned(addr, std::time::Instant::now()) {
            return Ok(());
        }
        let f = self.enforcer();
        let allowed = f
            .entries(List::Allow)?
            .iter()
            .any(|(c, _)| c.contains(addr));
        if allowed {
            info!(
                "{shown}: {}; not banned: the allowlist covers it",
                ban.reason()
            );
            return Ok(());
        }
        // One lookup, not a walk of the ban table: a ban in place (the
        // operator's, or an earlier auto-ban) is not replaced.
        if f.banned(addr)? {
            return Ok(());
        }
        if bound == 0 {
            // `autobans = 0`: escalation reports, never bans.
            AutoBanMetrics::add(&self.autobans.metrics().evicted, 1);
            return Ok(());
        }
        let mut evicted = false;
        while let Some(old) = self.autobans.over_bound() {
            self.autobans.remove(old);
            self.bans.lifted(old);
            // It may be gone already (expired and swept by the program).
            let _ = self.enforcer().lift_bans(&[old]);
            self.runtime.remove(ListName::Block, Cidr::host(old));
            AutoBanMetrics::add(&self.autobans.metrics().evicted, 1);
            debug!("auto-ban of {old} evicted to make room for {shown}");
            evicted = true;
        }
        let tier = self.enforcer_ref().tier();
        if let Err(e) = self.enforcer().ban(addr, Some(ban.ttl), ORIGIN_ESCALATION) {
            // Counted and summarised once per interval, not logged per source.
            AutoBanMetrics::add(&self.autobans.metrics().failed, 1);
            debug!("auto-ban of {shown} refused: {e}");
            return Ok(());
        }
        self.autobans.insert(addr, Some(ban.ttl), Instant::now());
        self.bans
            .banned(addr, Some(ban.ttl), std::time::Instant::now());
        self.kick_after(vec![shown], super::kick::AFTER_ESCALATION)?;
        AutoBanMetrics::add(&self.autobans.metrics().made, 1);
        if evicted {
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
        self.runtime.put(Entry {
            list: ListName::Block,
            cidr: Cidr::host(addr),
            origin: "auto-ban".into(),
            reason: Some(ban.reason()),
            expires_at: Some(unix_later(
                unix_now(),
                ban.ttl.max(std::time::Duration::from_secs(1)),
            )),
        });
        self.runtime.save_later();
        Ok(())
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
        let mut lifted = 0;
        while self.autobans.len() > bound as usize {
            let Some(old) = self.autobans.over_bound() else {
                break;
            };
            self.autobans.remove(old);
            self.bans.lifted(old);
            let _ = self.enforcer().lift_bans(&[old]);
            self.runtime.remove(ListName::Block, Cidr::host(old));
            lifted += 1;
        }
        if lifted > 0 {
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
