//! What the running daemon does when asked: each control request goes to
//! the verb that carries it out (reloads in [`super::reload`], limits,
//! upstreams and inspection in their own files), and list and ban changes
//! are here. The main loop runs requests one at a time, so the kernel maps
//! and the state file have one writer.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use log::{error, info, warn};
use proxy_common::list::ORIGIN_CLI;
use serde_json::json;

use super::Daemon;
use crate::{
    cidr::Cidr,
    control_socket::protocol::{ListEntryView, Reply, Request},
    enforcer::Enforcer,
    filter::{List, origin_name},
    later::unix_later,
    source,
    state_file::{Entry, ListName, unix_now},
};

pub(super) fn list_of(name: ListName) -> List {
    match name {
        ListName::Allow => List::Allow,
        ListName::Block => List::Block,
    }
}

impl Daemon {
    /// Carries out one control request; errors become the reply's error.
    pub fn handle(&mut self, request: Request) -> Reply {
        if let Err(e) = request.check() {
            return Reply::error(e);
        }
        let result = match request {
            Request::Reload => self
                .reload_file()
                .map(|summary| json!({ "applied": summary })),
            Request::ListAdd {
                list,
                cidr,
                ttl_secs,
                reason,
                local,
            } => self.list_add(list, cidr, ttl_secs.map(Duration::from_secs), reason, local),
            Request::ListDel { list, cidr } => self.list_del(list, cidr),
            Request::ListShow { list } => self
                .list_show(list)
                .map(|entries| serde_json::to_value(entries).unwrap_or_default()),
            Request::UpstreamList => {
                Ok(serde_json::to_value(self.upstream_list()).unwrap_or_default())
            }
            Request::UpstreamDrain { server, drained } => self.drain(&server, drained),
            Request::UpstreamWeight { server, weight } => self.weight(&server, weight),
            Request::UpstreamSwitch { group, to } => self.switch(&group, to.as_deref()),
            Request::LimitShow => self.limit_show(),
            Request::LimitSet { name, rate, burst } => self.limit_set(&name, rate, burst),
            Request::LimitReset { name } => self.limit_reset(&name),
            Request::IpShow { addr } => self.ip_show(addr),
            Request::LogLevel { level, reset } => self.log_level(level, reset),
            Request::Stats => self.l7_stats(),
            Request::FleetStatus => self.fleet_status(),
            Request::Maintenance { on } => Ok(self.maintenance(on)),
            // The main loop handles it (it awaits the new daemon).
            Request::Upgrade { .. } => Err(anyhow!("upgrade is handled by the main loop")),
        };
        match result {
            Ok(data) => Reply::ok(data),
            Err(e) => Reply::error(format!("{e:#}")),
        }
    }

    /// Shows or sets the maintenance switch (every request 503), kept in
    /// the state file so that a restart keeps it.
    fn maintenance(&mut self, on: Option<bool>) -> serde_json::Value {
        let state = self.shared.load();
        if let Some(on) = on {
            state.services.maintenance.set(on);
            if self.runtime.state.maintenance != on {
                self.runtime.state.maintenance = on;
                self.save();
            }
            info!(
                "maintenance {}",
                if on {
                    "on: every request gets 503"
                } else {
                    "off"
                }
            );
        }
        json!({
            "maintenance": state.services.maintenance.on(),
            "page": state.config.error_pages.get(503).is_some(),
        })
    }

    /// Where lists and bans are enforced: the kernel maps, or the gate.
    /// Changes go to the gate too when the kernel enforces: its copy is
    /// what the L7 tier checks for clients behind trusted proxies.
    pub fn enforcer(&mut self) -> crate::enforcer::Tiers<'_> {
        self.reconciler.enforcer()
    }

    pub fn enforcer_ref(&self) -> &dyn Enforcer {
        self.reconciler.enforcer_ref()
    }

    pub(super) fn in_config(&self, list: ListName, cidr: Cidr) -> bool {
        self.config.filter.as_ref().is_some_and(|f| match list {
            ListName::Allow => f.allow.contains(&cidr),
            ListName::Block => f.block.contains(&cidr),
        })
    }

    fn list_add(
        &mut self,
        list: ListName,
        cidr: Cidr,
        ttl: Option<Duration>,
        reason: Option<String>,
        local: bool,
    ) -> Result<serde_json::Value> {
        if self.in_config(list, cidr) {
            bail!("{cidr} is already on the {list:?} list from the configuration");
        }
        if list == ListName::Block
            && let Some(allowed) = self
                .config
                .filter
                .as_ref()
                .and_then(|f| f.allow.iter().find(|a| a.contains(cidr.addr())))
        {
            warn!("{cidr} is inside the allowlisted {allowed}: the allowlist wins");
        }
        if list == ListName::Block
            && let Some(proxy) = self.config.http.real_ip.as_ref().and_then(|r| {
                r.trusted
                    .iter()
                    .find(|t| t.contains(cidr.addr()) || cidr.contains(t.addr()))
            })
        {
            bail!(
                "{cidr} covers the trusted proxy {proxy}: the kernel tier never bans a trusted \
                 proxy (every client behind it would be refused); block the client's own \
                 address, which the L7 tier refuses behind the proxy, or remove {proxy} from \
                 trusted_proxies first"
            );
        }
        let entry = Entry {
            list,
            cidr,
            origin: "cli".into(),
            reason,
            expires_at: ttl.map(|t| unix_later(unix_now(), t.max(Duration::from_secs(1)))),
            host: None,
            local,
        };
        let entry = self.enforce_entry(entry, ttl)?;
        info!(
            "{list:?} {} added from the CLI{}{}{}",
            entry.cidr,
            entry
                .reason
                .as_ref()
                .map_or(String::new(), |r| format!(" ({r})")),
            ttl.map_or(String::new(), |t| format!(" for {t:?}")),
            if local { ", on this host only" } else { "" }
        );
        self.save();
        self.share_add(&entry);
        Ok(serde_json::to_value(self.view(&entry, unix_now()))?)
    }

    /// Puts a runtime entry in force and in the state file: a single
    /// blocked address becomes a ban of its source (for IPv6 the whole
    /// `ipv6_prefix`, recorded under the prefix's key), and the blocked
    /// sources' open connections close. The CLI's add and the fleet's
    /// entries from other hosts (`daemon/fleet.rs`) both come here.
    pub(super) fn enforce_entry(
        &mut self,
        mut entry: Entry,
        ttl: Option<Duration>,
    ) -> Result<Entry> {
        let list = entry.list;
        if list == ListName::Block && entry.cidr.is_host() {
            entry.cidr = Cidr::host(source::key(entry.cidr.addr(), self.config.ipv6_prefix()));
        }
        let cidr = entry.cidr;
        if list == ListName::Block && cidr.is_host() {
            // The operator's now: never evicted to make room for escalation.
            self.autobans.remove(cidr.addr());
        }
        let mut e = self.enforcer();
        if list == ListName::Block && cidr.is_host() {
            e.ban(cidr.addr(), ttl, ORIGIN_CLI)?;
            self.bans.banned(cidr.addr(), ttl, Instant::now());
        } else {
            e.insert(list_of(list), cidr, ORIGIN_CLI)?;
        }
        if list == ListName::Block {
            // Its open connections close too.
            let prefix = self.config.ipv6_prefix();
            self.kick(vec![if cidr.is_host() {
                source::prefix(cidr.addr(), prefix)
            } else {
                cidr
            }])?;
        }
        self.runtime.put(entry.clone());
        Ok(entry)
    }

    fn list_del(&mut self, list: ListName, cidr: Cidr) -> Result<serde_json::Value> {
        if self.in_config(list, cidr) {
            bail!(
                "{cidr} comes from the configuration ({}); remove it there and reload",
                self.source
                    .as_ref()
                    .map_or("the built-in configuration".into(), |p| p
                        .display()
                        .to_string())
            );
        }
        let Some(removed) = self.lift_entry(list, cidr)? else {
            bail!("{cidr} is not on the {list:?} list");
        };
        info!("{list:?} {cidr} removed from the CLI");
        self.save();
        if !removed.local {
            self.share_del(list, removed.cidr);
        }
        Ok(json!({ "removed": cidr }))
    }

    /// Lifts a runtime entry (a ban named by any address of its source or
    /// by the source's prefix as `block list` shows it,
    /// `2001:db8:1:2::/64`) from the enforcer and the state file. What
    /// was lifted (`local`: it was this host's only), or `None` if nothing was.
    pub(super) fn lift_entry(&mut self, list: ListName, cidr: Cidr) -> Result<Option<Entry>> {
        let prefix = self.config.ipv6_prefix();
        let ban = (list == ListName::Block
            && (cidr.is_host() || (cidr.addr().is_ipv6() && cidr.prefix_len() == prefix)))
            .then(|| Cidr::host(source::key(cidr.addr(), prefix)));
        if let Some(ban) = ban {
            self.autobans.remove(ban.addr());
        }
        let mut e = self.enforcer();
        let mut removed = false;
        if let Some(ban) = ban {
            removed |= e.unban(ban.addr())?;
        }
        removed |= e.remove(list_of(list), cidr)?;
        if let Some(ban) = ban {
            self.bans.lifted(ban.addr());
        }
        let mut known = self.runtime.remove(list, cidr);
        if let Some(ban) = ban.filter(|b| *b != cidr) {
            known = self.runtime.remove(list, ban).or(known);
        }
        removed |= known.is_some();
        if removed && list == ListName::Allow {
            // What the allowlist overrode now applies to open connections.
            self.kick_unallowed(cidr)?;
        }
        Ok(removed.then(|| {
            known.unwrap_or(Entry {
                list,
                cidr: ban.unwrap_or(cidr),
                origin: "cli".into(),
                reason: None,
                expires_at: None,
                host: None,
                local: false,
            })
        }))
    }

    fn view(&self, e: &Entry, now: u64) -> ListEntryView {
        let ban = e.list == ListName::Block && e.cidr.is_host();
        ListEntryView {
            // A ban shows the source it covers (an IPv6 ban its prefix).
            cidr: if ban {
                source::prefix(e.cidr.addr(), self.config.ipv6_prefix())
            } else {
                e.cidr
            },
            kind: if ban {
                "ban".into()
            } else {
                kind(e.cidr).into()
            },
            origin: e.origin.clone(),
            reason: e.reason.clone(),
            expires_in: e.remaining(now).map(|d| d.as_secs()),
            host: e.host.clone(),
        }
    }

    fn list_show(&self, list: ListName) -> Result<Vec<ListEntryView>> {
        let e = self.enforcer_ref();
        let now = unix_now();
        let mut out = Vec::new();
        for (cidr, origin) in e.entries(list_of(list))? {
            let known = self.runtime.entry(list, cidr);
            out.push(match known {
                Some(e) => self.view(e, now),
                None => ListEntryView {
                    cidr,
                    kind: kind(cidr).into(),
                    origin: origin_name(origin).into(),
                    reason: None,
                    expires_in: None,
                    host: None,
                },
            });
        }
        if list == ListName::Block {
            for ban in e.bans()? {
                if ban.remaining == Some(Duration::ZERO) {
                    continue;
                }
                let known = self.runtime.entry(list, Cidr::host(ban.addr));
                out.push(ListEntryView {
                    cidr: source::prefix(ban.addr, self.config.ipv6_prefix()),
                    kind: "ban".into(),
                    origin: known
                        .map_or_else(|| origin_name(ban.origin).into(), |e| e.origin.clone()),
                    reason: known.and_then(|e| e.reason.clone()),
                    expires_in: ban.remaining.map(|d| d.as_secs()),
                    host: known.and_then(|e| e.host.clone()),
                });
            }
        }
        Ok(out)
    }

    /// Once a second: the bans due out of the enforcer, expired runtime
    /// list entries out of it and the state file, and the state file written
    /// if automatic changes are pending. Only what is due is looked at: at
    /// 65,536 bans a sweep with nothing due costs the same as with none.
    pub fn sweep(&mut self) -> Result<()> {
        let due = self.bans.take_due(Instant::now());
        let swept = if due.is_empty() {
            0
        } else {
            self.enforcer().lift_bans(&due)?
        };
        if swept > 0 {
            info!("{swept} expired ban(s) removed");
        }
        let expired = self.runtime.take_expired(unix_now());
        for e in &expired {
            if !(e.list == ListName::Block && e.cidr.is_host()) {
                self.enforcer().remove(list_of(e.list), e.cidr)?;
            }
            info!("{:?} {} expired", e.list, e.cidr);
        }
        if !expired.is_empty() {
            self.runtime.save_later();
        }
        self.flush(false);
        Ok(())
    }

    /// Writes the state file now, after an operator's change.
    pub(super) fn save(&mut self) {
        if let Err(e) = self.runtime.save() {
            error!("saving the runtime state: {e:#}; the change holds until a reboot");
        }
    }

    /// Writes the state file if automatic changes are pending, at most
    /// once per `state_file::COALESCE`; `all`: whatever is pending (at shutdown).
    pub fn flush(&mut self, all: bool) {
        let result = if all {
            self.runtime.flush_all()
        } else {
            self.runtime.flush(Instant::now())
        };
        if let Err(e) = result {
            error!("saving the runtime state: {e:#}; the change holds until a reboot");
        }
    }
}

fn kind(cidr: Cidr) -> &'static str {
    if cidr.is_host() { "address" } else { "range" }
}
