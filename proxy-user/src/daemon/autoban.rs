//! Bans that escalation rules ask for: into the kernel with the rule and
//! its evidence as the reason, unless the allowlist covers the source or a
//! ban is already in place. An auto-ban costs the main loop no walk of the
//! ban table (the ban index answers) and no state file write of its own
//! (the next sweep writes once for every auto-ban since the last).

use anyhow::Result;
use log::info;
use proxy_common::list::ORIGIN_ESCALATION;

use super::Daemon;
use crate::{
    cidr::Cidr,
    escalate::AutoBan,
    filter::List,
    later::unix_later,
    runtime::{Entry, ListName, unix_now},
};

impl Daemon {
    pub fn auto_ban(&mut self, ban: AutoBan) -> Result<()> {
        let addr = ban.addr;
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
                "{addr}: {}; not banned: the allowlist covers it",
                ban.reason()
            );
            return Ok(());
        }
        f.ban(addr, Some(ban.ttl), ORIGIN_ESCALATION)?;
        info!(
            "{addr} banned ({}) for {:?}: {}",
            f.tier(),
            ban.ttl,
            ban.reason()
        );
        self.bans
            .banned(addr, Some(ban.ttl), std::time::Instant::now());
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
}
