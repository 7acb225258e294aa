//! A change of `[filter] ipv6_prefix` changes what one IPv6 source is,
//! and every ban already made is keyed by the old prefix: left alone, a
//! ban would stop matching (the program and the gate look sources up by
//! the new key) or, once it expired, be lifted under the wrong key (issue
//! 13's review). So on a reload that changes it (and at start, when the
//! pinned maps were made under another prefix), the IPv6 bans are keyed
//! again, each keeping every address it covered:
//!
//! - **a shorter prefix** (wider sources): each ban becomes a ban of the new
//!   source that holds it. Bans that fall into one source merge: the
//!   longest-lasting expiry wins, and the operator's origin wins over
//!   escalation's. The source's open connections close, as after any ban.
//! - **a longer prefix** (narrower sources): a ban covered several of the
//!   new sources, and a ban cannot be wider than a source, so it becomes a
//!   blocklist range of the network it covered, with its expiry, origin and
//!   reason (`block list` shows it as a range, `block del` removes it).
//!
//! Per-source rate state is not kept: the XDP limiter's IPv6 sources and
//! the gate's IPv6 connection budgets start afresh, and the L7 zones and
//! escalation rules count new requests under the new keys (the old keys
//! are forgotten as idle).

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Result;
use log::{info, warn};
use proxy_common::list::ORIGIN_ESCALATION;

use super::Daemon;
use crate::{
    cidr::Cidr,
    enforcer::Enforcer as _,
    filter::{BanEntry, List, NewBan, origin_name},
    later::unix_later,
    source,
    state_file::{Entry, ListName, unix_now},
};

/// The bans that fall into one source under a shorter prefix.
struct Merged {
    ttl: Option<Duration>,
    origin: u32,
    /// The state file's entry of the longest-lasting of them.
    entry: Option<Entry>,
}

fn lasting(ttl: Option<Duration>) -> Duration {
    ttl.unwrap_or(Duration::MAX)
}

impl Daemon {
    /// The enforcer now keys IPv6 sources by `new` bits, its bans by `old`:
    /// keys them again (see the module's documentation). Returns what was
    /// done, for the reload's answer.
    pub(super) fn rekey_bans(&mut self, old: u8, new: u8) -> Result<Option<String>> {
        let bans: Vec<_> = self
            .enforcer_ref()
            .bans()?
            .into_iter()
            .filter(|b| b.addr.is_ipv6() && b.remaining != Some(Duration::ZERO))
            .collect();
        if old == new || bans.is_empty() {
            return Ok(None);
        }
        let summary = if new < old {
            self.widen(&bans, new)?
        } else {
            self.narrow(&bans, old)?
        };
        let summary = format!("ipv6_prefix /{old} -> /{new}: {summary}");
        info!("{summary}");
        self.save();
        Ok(Some(summary))
    }

    /// Each ban becomes its `new`-bit source's, merged with the others there.
    fn widen(&mut self, bans: &[BanEntry], new: u8) -> Result<String> {
        let mut groups: BTreeMap<IpAddr, Merged> = BTreeMap::new();
        let mut lift = Vec::new();
        for b in bans {
            let (addr, ttl, origin) = (b.addr, b.remaining, b.origin);
            let key = source::key(addr, new);
            let entry = self.runtime.remove(ListName::Block, Cidr::host(addr));
            self.bans.lifted(addr);
            self.autobans.remove(addr);
            if key != addr {
                lift.push(addr);
            }
            let g = groups.entry(key).or_insert(Merged {
                ttl,
                origin,
                entry: None,
            });
            if lasting(ttl) >= lasting(g.ttl) {
                g.ttl = ttl;
                if entry.is_some() || g.entry.is_none() {
                    g.entry = entry;
                }
            } else if g.entry.is_none() {
                g.entry = entry;
            }
            if origin != ORIGIN_ESCALATION {
                g.origin = origin;
            }
        }
        let add: Vec<NewBan> = groups
            .iter()
            .map(|(key, g)| NewBan {
                addr: *key,
                ttl: g.ttl,
                origin: g.origin,
            })
            .collect();
        // The new bans first, so no address goes unbanned; those a full
        // table refuses are made once the old keys are lifted.
        let first = self.enforcer().replace_bans(&[], &add)?;
        let retry: Vec<NewBan> = first.refused.iter().map(|(i, _)| add[*i]).collect();
        let then = self.enforcer().replace_bans(&lift, &retry)?;
        let lost: Vec<IpAddr> = then.refused.iter().map(|(i, _)| retry[*i].addr).collect();
        if let Some((_, e)) = then.refused.first() {
            warn!("{} re-keyed ban(s) could not be made: {e}", lost.len());
        }
        let (now, clock, unix) = (Instant::now(), tokio::time::Instant::now(), unix_now());
        let mut nets = Vec::new();
        for (key, g) in groups {
            if lost.contains(&key) {
                continue;
            }
            self.bans.banned(key, g.ttl, now);
            let auto = g.origin == ORIGIN_ESCALATION;
            if auto {
                self.autobans.insert(key, g.ttl, clock);
            }
            let origin = match (&g.entry, auto) {
                (_, true) => "auto-ban".to_string(),
                (Some(e), false) if e.origin != "auto-ban" => e.origin.clone(),
                _ => origin_name(g.origin).to_string(),
            };
            self.runtime.put(Entry {
                list: ListName::Block,
                cidr: Cidr::host(key),
                origin,
                host: g.entry.as_ref().and_then(|e| e.host.clone()),
                local: g.entry.as_ref().is_some_and(|e| e.local),
                reason: g.entry.and_then(|e| e.reason),
                expires_at: g.ttl.map(|t| unix_later(unix, t)),
            });
            nets.push(source::prefix(key, new));
        }
        let sources = nets.len();
        // The addresses a wider ban now covers lose their open connections.
        self.kick(nets)?;
        Ok(format!(
            "{} IPv6 ban(s) keyed again as {sources} /{new} source ban(s)",
            bans.len()
        ))
    }

    /// Each ban, wider than a source now, becomes a blocklist range of the
    /// `old`-bit network it covered.
    fn narrow(&mut self, bans: &[BanEntry], old: u8) -> Result<String> {
        let unix = unix_now();
        let (mut lift, mut failed) = (Vec::new(), Vec::new());
        for b in bans {
            let (addr, ttl, origin) = (b.addr, b.remaining, b.origin);
            let net = Cidr::masked(addr, old);
            if let Err(e) = self.enforcer().insert(List::Block, net, origin) {
                failed.push(format!("{net}: {e}"));
                continue;
            }
            lift.push(addr);
            self.bans.lifted(addr);
            self.autobans.remove(addr);
            let entry = self.runtime.remove(ListName::Block, Cidr::host(addr));
            self.runtime.put(Entry {
                list: ListName::Block,
                cidr: net,
                origin: entry
                    .as_ref()
                    .map_or_else(|| origin_name(origin).to_string(), |e| e.origin.clone()),
                reason: entry.as_ref().and_then(|e| e.reason.clone()),
                host: entry.as_ref().and_then(|e| e.host.clone()),
                local: entry.as_ref().is_some_and(|e| e.local),
                expires_at: entry
                    .and_then(|e| e.expires_at)
                    .or_else(|| ttl.map(|t| unix_later(unix, t))),
            });
        }
        self.enforcer().lift_bans(&lift)?;
        if !failed.is_empty() {
            warn!(
                "{} IPv6 ban(s) could not become blocklist ranges and stay keyed by /{old} \
                 (they now cover only their first source): {}",
                failed.len(),
                failed.join("; ")
            );
        }
        Ok(format!(
            "{} IPv6 ban(s) kept as blocklist ranges of the /{old} each covered{}",
            lift.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({} could not be)", failed.len())
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        config::Config, control_socket::protocol::Request, escalate::AutoBan, gate::Admission,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn write(config: &Path, prefix: u8) {
        let dir = config.parent().unwrap();
        std::fs::write(
            config,
            format!(
                "[filter]\ninterfaces = []\nipv6_prefix = {prefix}\n\n[control]\n\
                 socket = \"{0}/control.sock\"\nstate_file = \"{0}/state.json\"\n",
                dir.display()
            ),
        )
        .unwrap();
    }

    /// The daemon without XDP: the gate enforces.
    fn userspace(config: &Path) -> Daemon {
        let cfg = Config::load(config).unwrap();
        Daemon::userspace(cfg, Some(config.to_path_buf())).unwrap()
    }

    fn report(addr: &str, ttl: Duration) -> AutoBan {
        AutoBan {
            addr: ip(addr),
            rule: "scanners".into(),
            count: 1,
            statuses: vec![404],
            route: "probes".into(),
            within: Duration::from_secs(60),
            ttl,
        }
    }

    /// Issue 13 review: after a reload that changed `ipv6_prefix`, bans
    /// stayed keyed by the old prefix, so the gate (which looks sources
    /// up by the new one) let the banned addresses in.
    #[tokio::test]
    async fn a_changed_ipv6_prefix_keys_the_bans_again_in_the_gate() {
        let dir = std::env::temp_dir().join(format!("rampart-rekey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("rampart.toml");
        write(&config, 64);
        let mut d = userspace(&config);
        let cli = |d: &mut Daemon, cidr: &str, ttl_secs: Option<u64>| {
            let reply = d.handle(Request::ListAdd {
                list: ListName::Block,
                cidr: cidr.parse().unwrap(),
                ttl_secs,
                reason: Some(format!("{cidr} by hand")),
                local: false,
            });
            assert!(reply.ok, "{reply:?}");
        };
        // Two of the operator's and one of escalation's in fd72:a:1::/48,
        // and one of escalation's in fd72:b::/48.
        cli(&mut d, "fd72:a:1:1::1", None);
        cli(&mut d, "fd72:a:1:2::1", Some(3600));
        let hour = Duration::from_secs(3600);
        d.auto_bans(vec![
            report("fd72:a:1:3::1", hour / 6),
            report("fd72:b:0:1::1", hour),
        ])
        .unwrap();
        let gate = d.shared.load().services.gate.clone();
        assert_eq!(gate.admit(ip("fd72:a:1:1::77")), Admission::Banned);
        assert_eq!(gate.admit(ip("fd72:a:1:ffff::9")), Admission::Pass);

        // /48: the bans widen to their /48, the three in fd72:a:1:: merge.
        write(&config, 48);
        let summary = d.reload_file().unwrap();
        assert_eq!(gate.admit(ip("fd72:a:1:ffff::9")), Admission::Banned);
        assert!(summary.contains("ipv6_prefix /64 -> /48"), "{summary}");
        let mut bans: Vec<(String, Option<Duration>, u32)> = crate::gate::Gate::bans(&gate)
            .iter()
            .map(|b| (b.addr.to_string(), b.remaining, b.origin))
            .collect();
        bans.sort();
        assert_eq!(bans.len(), 2, "{bans:?}");
        assert_eq!(
            (bans[0].0.as_str(), bans[0].1, bans[0].2),
            ("fd72:a:1::", None, proxy_common::list::ORIGIN_CLI),
            "merged: no expiry wins, and the operator's origin"
        );
        assert_eq!(
            (bans[1].0.as_str(), bans[1].2),
            ("fd72:b::", ORIGIN_ESCALATION)
        );
        assert_eq!(gate.admit(ip("fd72:a:1:ffff::9")), Admission::Banned);
        assert_eq!(gate.admit(ip("fd72:b:0:7::1")), Admission::Banned);
        assert_eq!(gate.admit(ip("fd72:c::1")), Admission::Pass);
        assert!(d.autobans.contains(ip("fd72:b::")) && d.autobans.len() == 1);
        let entries: Vec<String> = d
            .runtime
            .state
            .entries
            .iter()
            .map(|e| format!("{} {}", e.cidr, e.origin))
            .collect();
        assert_eq!(entries, ["fd72:a:1:: cli", "fd72:b:: auto-ban"]);
        // The operator lifts it by any address of the /48.
        let reply = d.handle(Request::ListDel {
            list: ListName::Block,
            cidr: "fd72:a:1:9::1".parse().unwrap(),
        });
        assert!(reply.ok, "{reply:?}");
        assert_eq!(gate.admit(ip("fd72:a:1:1::77")), Admission::Pass);
        cli(&mut d, "fd72:a:1:1::1", None);

        // /128: a ban cannot cover several sources; each becomes the range
        // it covered, with its expiry.
        write(&config, 128);
        let summary = d.reload_file().unwrap();
        assert_eq!(gate.admit(ip("fd72:a:1:ffff::9")), Admission::Blocklisted);
        assert!(summary.contains("kept as blocklist ranges"), "{summary}");
        assert!(
            crate::gate::Gate::bans(&gate).is_empty(),
            "{:?}",
            crate::gate::Gate::bans(&gate)
        );
        assert_eq!(gate.admit(ip("fd72:b:0:7::1")), Admission::Blocklisted);
        assert_eq!(gate.admit(ip("fd72:c::1")), Admission::Pass);
        assert_eq!(d.autobans.len(), 0);
        let entries: Vec<(String, String, bool)> = d
            .runtime
            .state
            .entries
            .iter()
            .map(|e| (e.cidr.to_string(), e.origin.clone(), e.expires_at.is_some()))
            .collect();
        assert_eq!(
            entries,
            [
                ("fd72:a:1::/48".into(), "cli".into(), false),
                ("fd72:b::/48".into(), "auto-ban".into(), true)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
