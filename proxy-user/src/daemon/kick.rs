//! After a ban or a list change that refuses sources, their open
//! connections close too ([`crate::kick`]), in both modes: with
//! the gate, connections accepted before the change would otherwise keep
//! being served; with XDP, their packets are dropped and the sockets would
//! linger until their timeouts.

use std::time::Duration;

use anyhow::Result;

use super::Daemon;
use crate::{cidr::Cidr, filter::List, kick::Kick, source};

/// An escalation ban is reported while the response that passed the rule
/// is being sent: its connections close this much later, so that response
/// still reaches the client (well within the second a kick is due in).
pub const AFTER_ESCALATION: Duration = Duration::from_millis(250);

impl Daemon {
    /// Closes the open connections of `nets`, except allowlisted addresses.
    pub(super) fn kick(&self, nets: Vec<Cidr>) -> Result<()> {
        self.kick_after(nets, Duration::ZERO)
    }

    /// As [`Daemon::kick`], `delay` later.
    pub(super) fn kick_after(&self, nets: Vec<Cidr>, delay: Duration) -> Result<()> {
        if nets.is_empty() {
            return Ok(());
        }
        let except = self
            .enforcer_ref()
            .entries(List::Allow)?
            .into_iter()
            .map(|(c, _)| c)
            .filter(|a| nets.iter().any(|n| overlap(*a, *n)))
            .collect();
        let kicks = self.shared.load().services.kicks.clone();
        if delay.is_zero() {
            kicks.kick(Kick { nets, except });
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                kicks.kick(Kick { nets, except });
            });
        }
        Ok(())
    }

    /// After `removed` left the allowlist: the blocklist entries and bans
    /// it was overriding apply to open connections too.
    pub(super) fn kick_unallowed(&self, removed: Cidr) -> Result<()> {
        let e = self.enforcer_ref();
        let prefix = self.config.ipv6_prefix();
        let nets = e
            .entries(List::Block)?
            .into_iter()
            .map(|(c, _)| c)
            .chain(
                e.bans()?
                    .into_iter()
                    .map(|b| source::prefix(b.addr, prefix)),
            )
            .filter_map(|c| narrower(c, removed))
            .collect();
        self.kick(nets)
    }
}

impl Daemon {
    /// After a reload from `before`: the configuration's new blocklist
    /// entries, and what its removed allowlist entries were overriding.
    pub(super) fn kick_reloaded(&self, before: &crate::config::Config) -> Result<()> {
        let lists = |c: &crate::config::Config| {
            c.filter.as_ref().map_or((Vec::new(), Vec::new()), |f| {
                (f.allow.clone(), f.block.clone())
            })
        };
        let ((allow_was, block_was), (allow_now, block_now)) = (lists(before), lists(&self.config));
        let added: Vec<Cidr> = block_now
            .into_iter()
            .filter(|c| !block_was.contains(c))
            .collect();
        self.kick(added)?;
        for removed in allow_was.into_iter().filter(|c| !allow_now.contains(c)) {
            self.kick_unallowed(removed)?;
        }
        Ok(())
    }
}

fn overlap(a: Cidr, b: Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

/// The addresses `a` and `b` share (one holds the other, or none).
fn narrower(a: Cidr, b: Cidr) -> Option<Cidr> {
    if !overlap(a, b) {
        None
    } else if a.prefix_len() >= b.prefix_len() {
        Some(a)
    } else {
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_of_two_networks_is_the_narrower() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        assert_eq!(
            narrower(c("10.0.0.0/8"), c("10.1.0.0/16")),
            Some(c("10.1.0.0/16"))
        );
        assert_eq!(
            narrower(c("10.1.2.3"), c("10.0.0.0/8")),
            Some(c("10.1.2.3"))
        );
        assert_eq!(narrower(c("10.0.0.0/8"), c("11.0.0.0/8")), None);
    }
}
