//! One desired state: what should be in force, the configuration with the
//! runtime changes of the state file over it (`limit set`, drained
//! servers, weights, switches). A plain value, computed whole from the two
//! whenever either changes ([`Desired::of`]), and put in force by the one
//! reconciler ([`super::reconcile`]), which writes only what differs.
//!
//! List entries and bans added at runtime are not in it: there can be
//! hundreds of thousands of them and escalation adds thousands a second,
//! so they are written to the same reconciler's enforcer one at a time.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Result, anyhow, bail};
use proxy_common::config::FilterConfig;

use crate::{
    config::{Config, LimitZone, RateLimit, units::Rate},
    filter::kernel_config_with,
    state_file::{LimitOverride, RuntimeState},
};

/// The kernel's limits, by their `limit` names.
pub const KERNEL_LIMITS: [&str; 2] = ["pps", "syn"];

/// A `[limit.NAME]` zone's rate and burst in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLimit {
    pub rate: Rate,
    pub burst: u64,
}

/// One upstream server's runtime state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// Takes no new requests.
    pub drained: bool,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct Desired {
    /// The configuration: its lists, flags and all that the runtime does not change.
    pub config: Arc<Config>,
    /// The per-source packet and connection limits in force.
    pub pps: Option<RateLimit>,
    pub syn: Option<RateLimit>,
    /// Every zone of the configuration.
    pub zones: BTreeMap<String, ZoneLimit>,
    /// Every server of the configuration's groups, by `GROUP/ADDR`.
    pub servers: BTreeMap<String, ServerState>,
    /// Groups whose traffic goes to another group (both in the configuration).
    pub switches: BTreeMap<String, String>,
}

impl Desired {
    /// `config` with `runtime` over it. A runtime change that no longer
    /// applies (a limit that cannot be read, a zone the configuration
    /// dropped) is left out and said in the notes; the state file keeps it.
    pub fn of(config: Arc<Config>, runtime: &RuntimeState) -> (Desired, Vec<String>) {
        let mut notes = Vec::new();
        let filter = config.filter.as_ref();
        let (mut pps, mut syn) = (filter.and_then(|f| f.pps), filter.and_then(|f| f.syn));
        let mut zones: BTreeMap<String, ZoneLimit> = config
            .limits
            .iter()
            .map(|(name, z)| (name.clone(), configured(z)))
            .collect();
        for (name, change) in &runtime.limits {
            let applied = match name.as_str() {
                "pps" => kernel_limit(change).map(|l| pps = l),
                "syn" => kernel_limit(change).map(|l| syn = l),
                zone => match config.limits.get(zone) {
                    None => Err(anyhow!("the configuration has no [limit.{zone}]")),
                    Some(z) => zone_limit(z, change).map(|l| {
                        zones.insert(zone.to_string(), l);
                    }),
                },
            };
            if let Err(e) = applied {
                notes.push(format!(
                    "limit {name} from the state file not applied: {e:#}"
                ));
            }
        }
        let mut servers = BTreeMap::new();
        for (group, u) in &config.upstreams {
            for s in &u.servers {
                let key = format!("{group}/{}", s.addr);
                let state = ServerState {
                    drained: runtime.drained.contains(&key),
                    weight: runtime.weights.get(&key).copied().unwrap_or(s.weight),
                };
                servers.insert(key, state);
            }
        }
        let switches = runtime
            .switches
            .iter()
            .filter(|(from, to)| {
                config.upstreams.contains_key(*from) && config.upstreams.contains_key(*to)
            })
            .map(|(from, to)| (from.clone(), to.clone()))
            .collect();
        let desired = Desired {
            config,
            pps,
            syn,
            zones,
            servers,
            switches,
        };
        (desired, notes)
    }

    /// The kernel's `config` map value (without the hints about map
    /// contents), when there is a `[filter]`.
    pub fn kernel_config(&self) -> Option<FilterConfig> {
        let f = self.config.filter.as_ref()?;
        Some(kernel_config_with(f, self.pps, self.syn))
    }

    pub fn ipv6_prefix(&self) -> u8 {
        self.config.ipv6_prefix()
    }

    /// The configuration's allowlist and blocklist.
    pub fn lists(&self) -> (&[crate::cidr::Cidr], &[crate::cidr::Cidr]) {
        self.config
            .filter
            .as_ref()
            .map_or((&[][..], &[][..]), |f| (&f.allow, &f.block))
    }
}

/// Whether `change` can be put in force for the limit `name` of `config`
/// (the daemon refuses a `limit set` that cannot, before keeping it).
pub fn check_limit(config: &Config, name: &str, change: &LimitOverride) -> Result<()> {
    crate::control_socket::protocol::check_burst(name, change.burst).map_err(|e| anyhow!(e))?;
    if KERNEL_LIMITS.contains(&name) {
        return kernel_limit(change).map(drop);
    }
    let zone = config.limits.get(name).ok_or_else(|| {
        anyhow!("no limit {name}: expected pps, syn or a [limit.NAME] zone of the configuration")
    })?;
    zone_limit(zone, change).map(drop)
}

fn configured(zone: &LimitZone) -> ZoneLimit {
    ZoneLimit {
        rate: zone.rate,
        burst: zone.burst,
    }
}

/// A kernel limit as `limit set` writes it: `5000` or `5000r/s`, a burst
/// of one second's worth by default; no rate turns the limit off.
fn kernel_limit(change: &LimitOverride) -> Result<Option<RateLimit>> {
    let Some(text) = &change.rate else {
        return Ok(None);
    };
    let n = text.strip_suffix("r/s").unwrap_or(text);
    let rate = n
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=1_000_000_000).contains(n))
        .ok_or_else(|| anyhow!("rate `{text}`: expected packets per second, 1 to 1000000000"))?;
    Ok(Some(RateLimit::new(rate, change.burst)))
}

/// A zone's limit as `limit set ZONE` writes it: a rate (`50r/s`,
/// `30r/m`), and the zone's burst unless another is given.
fn zone_limit(zone: &LimitZone, change: &LimitOverride) -> Result<ZoneLimit> {
    let Some(text) = &change.rate else {
        bail!(
            "a [limit.{}] zone cannot be turned off; remove it from its routes",
            zone.name
        )
    };
    let rate = text
        .parse::<Rate>()
        .map_err(|e| anyhow!("rate `{text}`: {}", e.0))?;
    Ok(ZoneLimit {
        rate,
        burst: change.burst.unwrap_or(zone.burst),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[filter]\npps = { rate = 1000 }\nsyn = { rate = 100, burst = 7 }\n\n\
                          [limit.api]\nrate = \"10r/s\"\nburst = 20\n\n\
                          [upstream.blue]\nservers = [\"192.0.2.1:80\", \"192.0.2.2:80\"]\n\n\
                          [upstream.green]\nservers = [\"192.0.2.3:80\"]\n\n\
                          [[route]]\nupstream = \"blue\"\n";

    fn change(rate: Option<&str>, burst: Option<u64>) -> LimitOverride {
        LimitOverride {
            rate: rate.map(str::to_string),
            burst,
        }
    }

    #[test]
    fn the_runtime_changes_go_over_the_configuration() {
        let config = Arc::new(Config::parse(CONFIG, "t.toml".as_ref()).unwrap());
        let (plain, notes) = Desired::of(config.clone(), &RuntimeState::default());
        assert!(notes.is_empty());
        assert_eq!(plain.pps, Some(RateLimit::new(1000, None)));
        assert_eq!(
            plain.syn,
            Some(RateLimit {
                rate: 100,
                burst: 7
            })
        );
        assert_eq!(plain.zones["api"].burst, 20);
        assert_eq!(plain.servers.len(), 3);
        assert!(plain.servers.values().all(|s| !s.drained && s.weight == 1));

        let mut runtime = RuntimeState::default();
        runtime.limits.insert("pps".into(), change(None, None));
        runtime
            .limits
            .insert("syn".into(), change(Some("5r/s"), None));
        runtime
            .limits
            .insert("api".into(), change(Some("1r/m"), None));
        runtime
            .limits
            .insert("gone".into(), change(Some("1r/s"), None));
        runtime.drained.push("blue/192.0.2.2:80".into());
        runtime.weights.insert("blue/192.0.2.1:80".into(), 5);
        runtime.switches.insert("blue".into(), "green".into());
        runtime.switches.insert("blue2".into(), "green".into());
        let (d, notes) = Desired::of(config, &runtime);
        assert_eq!(d.pps, None, "turned off");
        assert_eq!(
            d.syn,
            Some(RateLimit { rate: 5, burst: 5 }),
            "burst: a second's worth"
        );
        assert_eq!(d.zones["api"].rate.to_string(), "1r/m");
        assert_eq!(d.zones["api"].burst, 20, "the zone's burst");
        let k = d.kernel_config().unwrap();
        assert_eq!((k.pps_interval_ns, k.syn_interval_ns), (0, 200_000_000));
        assert_eq!(
            d.servers["blue/192.0.2.2:80"],
            ServerState {
                drained: true,
                weight: 1
            }
        );
        assert_eq!(d.servers["blue/192.0.2.1:80"].weight, 5);
        assert_eq!(d.switches.len(), 1, "only between groups that exist");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("limit gone"), "{notes:?}");
    }

    #[test]
    fn a_limit_that_cannot_apply_is_refused() {
        let config = Config::parse(CONFIG, "t.toml".as_ref()).unwrap();
        let check = |name: &str, c: LimitOverride| {
            check_limit(&config, name, &c).map_err(|e| e.to_string())
        };
        assert!(check("pps", change(Some("5000r/s"), Some(10))).is_ok());
        assert!(check("syn", change(None, None)).is_ok());
        assert!(check("api", change(Some("5r/s"), None)).is_ok());
        assert!(
            check("pps", change(Some("fast"), None))
                .unwrap_err()
                .contains("expected packets per second")
        );
        assert!(
            check("nosuch", change(Some("1r/s"), None))
                .unwrap_err()
                .contains("no limit nosuch")
        );
        assert!(
            check("api", change(None, None))
                .unwrap_err()
                .contains("cannot be turned off")
        );
        assert!(
            check("api", change(Some("5r/x"), None))
                .unwrap_err()
                .contains("rate `5r/x`")
        );
        assert!(
            check("api", change(Some("5r/s"), Some(2_000_000)))
                .unwrap_err()
                .contains("maximum")
        );
    }
}
