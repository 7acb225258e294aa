//! What the running daemon does when asked: reloads, list and ban changes,
//! upstream drains, weights and switches. Requests come from the control
//! socket and signals; the main loop runs them one at a time, so the kernel
//! maps and the state file have one writer.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use log::{error, info, warn};
use proxy_common::list::{ORIGIN_CLI, ORIGIN_CONFIG, ORIGIN_ESCALATION};
use serde_json::json;

use super::expiry::BanIndex;
use crate::{
    cidr::Cidr,
    config::Config,
    control::protocol::{ListEntryView, Reply, Request},
    enforcer::Enforcer,
    filter::{Filter, List},
    gate::Gate,
    http::{Shared, State},
    later::unix_later,
    runtime::{Entry, ListName, StateFile, unix_now},
    source,
};

/// The daemon's mutable state, owned by its main loop.
pub struct Daemon {
    /// The file SIGHUP and `rampart reload` re-read; `None` for the built-in configuration.
    pub source: Option<PathBuf>,
    pub config: Arc<Config>,
    pub filter: Option<Filter>,
    /// Enforces the lists, bans and connection rate in userspace when the
    /// filter is not running.
    pub gate: Arc<Gate>,
    pub shared: Shared,
    pub runtime: StateFile,
    /// The workers' listeners, changed by reloads (`None` until serving starts).
    pub listeners: Option<super::listeners::Listeners>,
    /// Every ban in the enforcer and when it expires, for the sweep.
    pub bans: BanIndex,
    /// Escalation's bans in force, soonest-expiring first, within
    /// `[filter.maps] autobans`.
    pub autobans: super::autobans::AutoBans,
    /// The log level set with `rampart log level`, until `reset` or a restart.
    pub log_override: Option<crate::logging::Level>,
}

pub fn origin_name(origin: u32) -> &'static str {
    match origin {
        ORIGIN_CONFIG => "config",
        ORIGIN_CLI => "cli",
        ORIGIN_ESCALATION => "auto-ban",
        _ => "unknown",
    }
}

pub(super) fn list_of(name: ListName) -> List {
    match name {
        ListName::Allow => List::Allow,
        ListName::Block => List::Block,
    }
}

impl Daemon {
    /// The daemon's state before anything is restored: the configuration,
    /// gate and measures are `shared`'s, `filter` the loaded XDP filter (if
    /// it could be loaded), `runtime` the state file; `source` is the file
    /// a reload re-reads.
    pub fn new(
        source: Option<PathBuf>,
        filter: Option<Filter>,
        shared: Shared,
        runtime: StateFile,
    ) -> Daemon {
        let state = shared.load();
        Daemon {
            source,
            config: state.config.clone(),
            filter,
            gate: state.gate.clone(),
            shared: shared.clone(),
            runtime,
            listeners: None,
            bans: BanIndex::default(),
            autobans: super::autobans::AutoBans::new(state.metrics.autobans.clone()),
            log_override: None,
        }
    }

    /// Carries out one control request; errors become the reply's error.
    pub fn handle(&mut self, request: Request) -> Reply {
        if let Err(e) = request.check() {
            return Reply::error(e);
        }
        let result = match request {
            Request::Reload => {
                crate::systemd::reloading();
                let result = self.reload();
                crate::systemd::notify("READY=1");
                result.map(|summary| json!({ "applied": summary }))
            }
            Request::ListAdd {
                list,
                cidr,
                ttl_secs,
                reason,
            } => self.list_add(list, cidr, ttl_secs.map(Duration::from_secs), reason),
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
            // The main loop handles it (it awaits the new daemon).
            Request::Upgrade { .. } => Err(anyhow!("upgrade is handled by the main loop")),
        };
        match result {
            Ok(data) => Reply::ok(data),
            Err(e) => Reply::error(format!("{e:#}")),
        }
    }

    /// Re-reads the configuration and applies it, or keeps the running one.
    pub fn reload(&mut self) -> Result<String> {
        let result = self.try_reload();
        match &result {
            Ok(summary) => info!("reload: {summary}"),
            Err(e) => error!("reload failed, keeping the running configuration: {e:#}"),
        }
        result.map_err(|e| anyhow!("reload failed, the running configuration stays: {e:#}"))
    }

    fn try_reload(&mut self) -> Result<String> {
        let Some(path) = &self.source else {
            bail!("running the built-in configuration; there is no file to re-read")
        };
        let next = Arc::new(Config::load(path)?);
        let mut notes: Vec<String> = Vec::new();
        // Everything that can fail first (new sockets, certificates), so a
        // failed reload changes nothing.
        let plan = match &self.listeners {
            Some(l) => Some(l.prepare(&next)?),
            None => None,
        };
        if next.control != self.config.control {
            notes.push("[control] changes need a restart".into());
        }
        match (self.filter.as_mut(), next.filter.as_ref()) {
            (Some(f), Some(settings)) => {
                let current = self.config.filter.as_ref();
                if current.is_some_and(|c| {
                    c.interfaces != settings.interfaces || c.pin_dir != settings.pin_dir
                }) {
                    notes.push("filter interface or pin_dir changes need a restart".into());
                }
                f.sync(settings)?;
            }
            (None, Some(s)) if !s.interfaces.is_empty() => {
                notes.push("attaching XDP to new interfaces needs a restart".into());
            }
            _ => {}
        }
        self.gate.configure(next.filter.as_ref());
        if let (Some(l), Some(plan)) = (self.listeners.as_mut(), plan) {
            notes.extend(l.commit(plan));
        }
        self.shared
            .store(State::build(next.clone(), Some(&self.shared.load())));
        let before = self.config.clone();
        self.config = next;
        // The enforcer keys IPv6 sources by the new prefix now: its bans too.
        let (was, now) = (before.ipv6_prefix(), self.config.ipv6_prefix());
        match self.rekey_bans(was, now) {
            Ok(note) => notes.extend(note),
            Err(e) => warn!("reload: keying bans by ipv6_prefix /{now}: {e:#}"),
        }
        self.apply_upstream_runtime();
        self.apply_limits();
        self.apply_log();
        // Sources the new lists refuse lose their open connections too.
        if let Err(e) = self.kick_reloaded(&before) {
            warn!("reload: closing refused sources' connections: {e:#}");
        }
        Ok(if notes.is_empty() {
            "configuration applied".to_string()
        } else {
            format!("configuration applied ({})", notes.join("; "))
        })
    }

    /// Where lists and bans are enforced: the kernel maps, or the gate.
    /// Changes go to the gate too when the kernel enforces: its copy is
    /// what the L7 tier checks for clients behind trusted proxies.
    pub fn enforcer(&mut self) -> crate::enforcer::Tiers<'_> {
        crate::enforcer::Tiers {
            kernel: self.filter.as_mut().map(|f| &mut f.maps),
            gate: &self.gate,
        }
    }

    pub fn enforcer_ref(&self) -> &dyn Enforcer {
        match self.filter.as_ref() {
            Some(f) => &f.maps,
            None => &self.gate,
        }
    }

    fn in_config(&self, list: ListName, cidr: Cidr) -> bool {
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
        // A single address on the blocklist is a ban of its source: for
        // IPv6 the whole `ipv6_prefix`, recorded under the prefix's key.
        let cidr = if list == ListName::Block && cidr.is_host() {
            Cidr::host(source::key(cidr.addr(), self.config.ipv6_prefix()))
        } else {
            cidr
        };
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
        let entry = Entry {
            list,
            cidr,
            origin: "cli".into(),
            reason,
            expires_at: ttl.map(|t| unix_later(unix_now(), t.max(Duration::from_secs(1)))),
        };
        info!(
            "{list:?} {cidr} added from the CLI{}{}",
            entry
                .reason
                .as_ref()
                .map_or(String::new(), |r| format!(" ({r})")),
            ttl.map_or(String::new(), |t| format!(" for {t:?}"))
        );
        self.runtime.put(entry.clone());
        self.save();
        Ok(serde_json::to_value(self.view(&entry, unix_now()))?)
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
        let prefix = self.config.ipv6_prefix();
        // A ban is named by any address of its source or by the source's
        // prefix as `block list` shows it (`2001:db8:1:2::/64`).
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
        removed |= self.runtime.remove(list, cidr).is_some();
        if let Some(ban) = ban.filter(|b| *b != cidr) {
            removed |= self.runtime.remove(list, ban).is_some();
        }
        if removed && list == ListName::Allow {
            // What the allowlist overrode now applies to open connections.
            self.kick_unallowed(cidr)?;
        }
        if !removed {
            bail!("{cidr} is not on the {list:?} list");
        }
        info!("{list:?} {cidr} removed from the CLI");
        self.save();
        Ok(json!({ "removed": cidr }))
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
    /// once per `runtime::COALESCE`; `all`: whatever is pending (at shutdown).
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
