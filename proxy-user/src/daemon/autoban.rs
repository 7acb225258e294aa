//! Bans that escalation rules ask for: into the kernel with the rule and
//! its evidence as the reason, unless the allowlist covers the source or a
//! ban is already in place.

use anyhow::Result;
use log::info;
use proxy_common::list::ORIGIN_ESCALATION;

use super::Daemon;
use crate::{
    cidr::Cidr,
    escalate::AutoBan,
    filter::List,
    runtime::{Entry, ListName, unix_now},
    source,
};

impl Daemon {
    pub fn auto_ban(&mut self, ban: AutoBan) -> Result<()> {
        // Escalation counts by source already; key again in case the prefix
        // changed in between. `shown` is what is banned (`2001:db8:1:2::/64`).
        let prefix = self.config.ipv6_prefix();
        let addr = source::key(ban.addr, prefix);
        let shown = source::prefix(addr, prefix);
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
        if f.bans()?
            .iter()
            .any(|b| b.addr == addr && b.remaining != Some(std::time::Duration::ZERO))
        {
            return Ok(());
        }
        f.ban(addr, Some(ban.ttl), ORIGIN_ESCALATION)?;
        info!(
            "{shown} banned ({}) for {:?}: {}",
            f.tier(),
            ban.ttl,
            ban.reason()
        );
        self.runtime.put(Entry {
            list: ListName::Block,
            cidr: Cidr::host(addr),
            origin: "auto-ban".into(),
            reason: Some(ban.reason()),
            expires_at: Some(unix_now() + ban.ttl.as_secs().max(1)),
        });
        self.save();
        Ok(())
    }
}
